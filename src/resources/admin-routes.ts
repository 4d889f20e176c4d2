import { Router, type NextFunction, type Request, type Response } from 'express';
import { ServiceError } from '../errors';
import { requestId } from '../http/request';
import { parseInput as parse } from '../http/input';
import type { Resources } from './service';
import { createResourceBody } from './schemas';
import { resourceView } from './view';

export type ResourcePermission = 'resources:read' | 'resources:write';

/** What the admin routes need. */
export interface ResourceAdminDeps {
  resources: Pick<Resources, 'get' | 'list' | 'create' | 'delete'>;
}

export type ResourceAdminHandler = (req: Request, res: Response, caller: { actor: string }, deps: ResourceAdminDeps) => Promise<void>;

/** The admin API's guard (src/admin/routes.ts): admin token (401), the one permission (403), the JSON body, then the handler. */
export type ResourceAdminGuard = (permission: ResourcePermission, handler: ResourceAdminHandler) => (req: Request, res: Response) => Promise<void>;

export const ADMIN_RESOURCES_PATH = '/admin/v1/resources';

/** Routes are exact (docs/security.md "Abuse limits and the threat model": `/admin/v1/resources/` is not `/admin/v1/resources`. */
function exactMount(base: string) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const path = req.originalUrl.split('?')[0] ?? '';
    if (req.baseUrl !== base || path.endsWith('/')) return next('router');
    next();
  };
}

/**
 * `/admin/v1/resources` (docs/oauth.md "Resources", mounted inside the admin router so that it shares its
 * guard, request ids, `no-store` and error serializer:
 * - `GET /` (`resources:read`): every resource, in URL order;
 * - `POST /` `{url, name, scopes}` (`resources:write`): 201 with the resource; 409 when the URL is registered;
 * - `GET /{url}`, `DELETE /{url}` (`resources:read` / `resources:write`): the resource URL
 *   percent-encoded as one path segment (`encodeURIComponent`); DELETE answers the deleted resource.
 * Every change is audited with actor `admin-token:<id>`.
 */
export function resourceAdminRoutes(guard: ResourceAdminGuard, base = ADMIN_RESOURCES_PATH): Router {
  const router = Router({ caseSensitive: true, strict: true });
  router.use(exactMount(base));
  const url = (req: Request) => String(req.params.url);

  router.get(
    '/',
    guard('resources:read', async (_req, res, _caller, deps) => {
      res.json({ resources: (await deps.resources.list()).map(resourceView) });
    }),
  );
  router.post(
    '/',
    guard('resources:write', async (req, res, caller, deps) => {
      const body = parse(createResourceBody, req.body ?? {}, 'body');
      const resource = await deps.resources.create(body, { actor: caller.actor, requestId: requestId(req) });
      res.status(201).json(resourceView(resource));
    }),
  );
  router.get(
    '/:url',
    guard('resources:read', async (req, res, _caller, deps) => {
      const resource = await deps.resources.get(url(req));
      if (!resource) throw new ServiceError('not_found', `no resource ${url(req)}`);
      res.json(resourceView(resource));
    }),
  );
  router.delete(
    '/:url',
    guard('resources:write', async (req, res, caller, deps) => {
      const deleted = await deps.resources.delete(url(req), { actor: caller.actor, requestId: requestId(req) });
      res.json(resourceView(deleted));
    }),
  );
  return router;
}
