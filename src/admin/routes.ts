import { Router, type Request, type Response } from 'express';
import { ApiError, apiErrorHandler } from '../http/api-error';
import { withRequestId } from '../http/request';
import { bearerToken, checkQuery } from '../http/input';
import { readJsonBody } from '../http/json-body';
import type { Logger } from '../observability/logger';
import type { Permission } from './permissions';
import { allows } from './tokens';
import { apiKeyAdminRoutes } from '../api-keys/admin-routes';
import { resourceAdminRoutes } from '../resources/admin-routes';
import { checkParameters, type AdminDeps, type Guard, type Handler } from './http';
import { keyRoutes } from './keys-routes';
import { clientRoutes } from './clients-routes';
import { userRoutes } from './users-routes';
import { tenantRoutes } from './tenants-routes';
import { auditRoutes } from './audit-routes';
import { limitRoutes } from './limits-routes';

export type { AdminDeps } from './http';

/**
 * `/admin/v1` (docs/http-api.md "HTTP": only admin tokens, each route guarded by exactly one permission.
 * 401 when the token is missing, invalid or revoked; 403 when it is valid but lacks the permission.
 * Every change is an audit event with actor `admin-token:<id>` and the request id.
 */
export function adminRoutes(options: { deps: () => AdminDeps | undefined; logger: Logger }): Router {
  // Exact routes (docs/security.md "Abuse limits and the threat model": `/ADMIN/V1/keys` or `/admin/v1/keys/` must not slip past a proxy rule.
  const router = Router({ caseSensitive: true, strict: true });
  router.use(withRequestId);
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  const guard: Guard =
    (permission: Permission, handler: Handler) =>
    async (req: Request, res: Response): Promise<void> => {
      const deps = options.deps();
      if (!deps) throw new ApiError('temporarily_unavailable', 'the service is starting; retry in a second', { headers: { 'Retry-After': '1' } });
      const caller = await deps.adminTokens.authenticate(bearerToken(req));
      if (!allows(caller, permission)) {
        throw new ApiError('forbidden', `admin token ${caller.id} lacks the permission "${permission}"`);
      }
      // Input is read only once the caller is known: an anonymous caller gets 401, never a 400.
      checkParameters(req);
      checkQuery(req);
      if (req.method !== 'GET') await readJsonBody(req, res);
      await handler(req, res, caller, deps);
    };


  keyRoutes(router, guard);
  clientRoutes(router, guard);
  userRoutes(router, guard);
  tenantRoutes(router, guard);
  auditRoutes(router, guard);
  limitRoutes(router, guard);


  router.use('/api-keys', apiKeyAdminRoutes(guard));
  router.use('/resources', resourceAdminRoutes(guard));

  router.use(() => {
    throw new ApiError('not_found', 'no such endpoint under /admin/v1 (keys, clients, users, tenants, audit, limits, api-keys, resources)');
  });
  router.use(apiErrorHandler(options.logger));
  return router;
}
