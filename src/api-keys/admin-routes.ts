import { Router, type Request, type Response } from 'express';
import { ApiError } from '../http/api-error';
import { requestId } from '../http/request';
import { parseInput as parse } from '../http/input';
import { apiKeyError, exactMount, keyIdParam, requestedExpiry } from './http';
import { pagePosition } from '../http/cursor';
import { adminCreateApiKeyBody, adminListApiKeysQuery, revokeApiKeyBody } from './schemas';
import type { ApiKeyOwner, ApiKeys } from './service';
import type { CursorCodec } from '../http/cursor';
import { apiKeyView, type CreatedApiKeyView } from './view';

export type ApiKeyPermission = 'api-keys:read' | 'api-keys:write';

/** What the admin routes need from the services. */
export interface ApiKeyAdminDeps {
  apiKeys: ApiKeys;
  cursors: CursorCodec;
  now: () => Date;
}

export type ApiKeyAdminHandler = (req: Request, res: Response, caller: { actor: string }, deps: ApiKeyAdminDeps) => Promise<void>;

/**
 * The admin API's guard (src/admin/routes.ts): authenticates the admin token (401), checks the one
 * permission (403), reads the JSON body of a non-GET request, then calls the handler.
 */
export type ApiKeyAdminGuard = (permission: ApiKeyPermission, handler: ApiKeyAdminHandler) => (req: Request, res: Response) => Promise<void>;

export const ADMIN_API_KEYS_PATH = '/admin/v1/api-keys';

/**
 * `/admin/v1/api-keys` (docs/http-api.md "HTTP", "API keys"), mounted inside the admin router so that it shares its guard,
 * request ids, `no-store` and error serializer:
 * - `GET /?user_id=&client_id=&tenant_id=&limit=&cursor=` (`api-keys:read`): newest first, keyset
 *   pages; pass `next_cursor` back as `cursor`;
 * - `GET /{id}` (`api-keys:read`);
 * - `POST /` `{user_id | client_id, name, scopes?, expires_in? | expires_at?}` (`api-keys:write`):
 *   201 with the key, shown once;
 * - `DELETE /{id}` or `POST /{id}/revoke` `{reason?}` (`api-keys:write`): the revoked key.
 * Every change is audited with actor `admin-token:<id>`.
 */
export function apiKeyAdminRoutes(guard: ApiKeyAdminGuard, base = ADMIN_API_KEYS_PATH): Router {
  const router = Router({ caseSensitive: true, strict: true });
  router.use(exactMount(base));

  router.get(
    '/',
    guard('api-keys:read', async (req, res, _caller, deps) => {
      const query = parse(adminListApiKeysQuery, req.query, 'query');
      const page = await deps.apiKeys.list({
        userId: query.user_id?.toLowerCase(),
        clientId: query.client_id,
        tenantId: query.tenant_id,
        limit: query.limit,
        cursor: pagePosition(deps.cursors, 'api-keys', query.cursor),
      });
      const now = deps.now();
      res.json({ api_keys: page.rows.map((row) => apiKeyView(row, now)), next_cursor: page.next ? deps.cursors.encode('api-keys', page.next) : null });
    }),
  );

  router.get(
    '/:id',
    guard('api-keys:read', async (req, res, _caller, deps) => {
      const id = keyIdParam(req);
      const row = await deps.apiKeys.find(id);
      if (!row) throw new ApiError('not_found', `no API key ${id}`);
      res.json(apiKeyView(row, deps.now()));
    }),
  );

  router.post(
    '/',
    guard('api-keys:write', async (req, res, caller, deps) => {
      const body = parse(adminCreateApiKeyBody, req.body ?? {}, 'body');
      if ((body.user_id === undefined) === (body.client_id === undefined)) throw new ApiError('invalid_request', 'body: give exactly one owner, user_id or client_id');
      const owner: ApiKeyOwner = body.user_id !== undefined ? { kind: 'user', id: body.user_id.toLowerCase() } : { kind: 'client', id: body.client_id as string };
      const { key, row } = await deps.apiKeys
        .create({ owner, name: body.name, scopes: body.scopes, expiresAt: requestedExpiry(body, deps.now()) }, { actor: caller.actor, requestId: requestId(req) })
        .catch(apiKeyError);
      const created: CreatedApiKeyView = { ...apiKeyView(row, deps.now()), key };
      res.status(201).json(created);
    }),
  );

  const revoke = (reasonOf: (req: Request) => string | undefined) =>
    guard('api-keys:write', async (req, res, caller, deps) => {
      const id = keyIdParam(req);
      const row = await deps.apiKeys.revoke(id, { actor: caller.actor, requestId: requestId(req), reason: reasonOf(req) ?? 'revoked through the admin API' }).catch(apiKeyError);
      res.json(apiKeyView(row, deps.now()));
    });
  router.delete(
    '/:id',
    revoke(() => undefined),
  );
  router.post(
    '/:id/revoke',
    revoke((req) => parse(revokeApiKeyBody, req.body ?? {}, 'body').reason),
  );
  return router;
}
