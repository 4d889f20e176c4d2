import { Router, type Request, type Response } from 'express';
import type { Kysely } from 'kysely';
import { recordAudit } from '../audit';
import type { Database, UserRow } from '../db/schema';
import { ApiError, apiErrorHandler } from '../http/api-error';
import { bearerToken, checkQueryText } from '../http/input';
import { requestId, withRequestId } from '../http/request';
import type { Logger } from '../observability/logger';
import { revokeApplicationSessions } from '../users/repository';
import { exactMount } from '../api-keys/http';
import * as repo from './repository';

export const GRANTS_PATH = '/auth/v1/grants';

export interface GrantsDeps {
  db: Kysely<Database>;
  logger: Logger;
  now(): Date;
  /** The caller of /auth/v1: a /auth/v1 access token of a live session; a ServiceError (mapped to 401) otherwise. */
  authenticate(token: string): Promise<{ user: UserRow }>;
}

/** One remembered consent as GET /auth/v1/grants lists it. */
export interface GrantView {
  client_id: string;
  client_name: string;
  scopes: string[];
  resources: string[];
  granted_at: string;
  updated_at: string;
}

/**
 * `/auth/v1/grants` (docs/sign-in.md "Consent": the caller's remembered consents, and withdrawing one,
 * which also ends every session that client got from the user (its refresh tokens stop working, and
 * its access tokens are refused by introspection and userinfo). Audited as consent.withdrawn.
 */
export function grantsRouter(deps: GrantsDeps): Router {
  const router = Router({ caseSensitive: true, strict: true });
  // `/auth/v1/grants/` is not `/auth/v1/grants` (docs/http-api.md "Routes are exact".
  router.use(exactMount(GRANTS_PATH));
  router.use(withRequestId);
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  router.use(checkQueryText);

  router.get('/', async (req: Request, res: Response) => {
    const { user } = await deps.authenticate(bearerToken(req));
    const rows = await repo.listConsents(deps.db, user.id);
    const grants: GrantView[] = rows.map((r) => ({
      client_id: r.client_id,
      client_name: r.client_name,
      scopes: r.scopes,
      resources: r.resources,
      granted_at: r.created_at.toISOString(),
      updated_at: r.updated_at.toISOString(),
    }));
    res.json({ grants });
  });

  router.delete('/:clientId', async (req: Request, res: Response) => {
    const { user } = await deps.authenticate(bearerToken(req));
    const clientId = req.params.clientId as string;
    const now = deps.now();
    const withdrawn = await deps.db.transaction().execute(async (trx) => {
      if (!(await repo.deleteConsent(trx, user.id, clientId))) return false;
      const ended = await revokeApplicationSessions(trx, user.id, clientId, 'consent withdrawn', now);
      await recordAudit(trx, {
        at: now,
        actor: `user:${user.id}`,
        action: 'consent.withdrawn',
        target: clientId,
        requestId: requestId(req),
        details: { client_id: clientId, ended_sessions: ended },
      });
      return true;
    });
    if (!withdrawn) throw new ApiError('not_found', 'you have not granted this client anything');
    res.status(204).end();
  });

  router.use((_req: Request, _res: Response) => {
    throw new ApiError('not_found', 'no such endpoint under /auth/v1/grants (GET /auth/v1/grants, DELETE /auth/v1/grants/{client_id})');
  });
  router.use(apiErrorHandler(deps.logger));
  return router;
}
