import { Router, type Request, type Response } from 'express';
import { ApiError, apiErrorHandler } from '../http/api-error';
import { requestId, withRequestId } from '../http/request';
import { readJsonBody } from '../http/json-body';
import { bearerToken, checkQueryText, parseInput as parse } from '../http/input';
import type { Logger } from '../observability/logger';
import { apiKeyError, exactMount, keyIdParam, requestedExpiry } from './http';
import { pagePosition } from '../http/cursor';
import { userCreateApiKeyBody, userListApiKeysQuery } from './schemas';
import type { ApiKeys } from './service';
import type { CursorCodec } from '../http/cursor';
import { apiKeyView, type CreatedApiKeyView } from './view';

/** What the user routes need: the keys, and the user API's authentication of an access token. */
export interface ApiKeyUserDeps {
  apiKeys: ApiKeys;
  users: { authenticate(token: string): Promise<{ user: { id: string } }> };
  cursors: CursorCodec;
  now: () => Date;
}

export const USER_API_KEYS_PATH = '/auth/v1/api-keys';

/**
 * `/auth/v1/api-keys` (docs/api-keys.md "API keys": a user creates, lists and revokes its own keys with its access
 * token (401 without a live one, the same as the rest of /auth/v1). A user never sees or revokes
 * another user's key: those are "not found". The key is in the creation response only.
 */
export function apiKeyUserRoutes(options: { deps: () => ApiKeyUserDeps | undefined; logger: Logger; base?: string }): Router {
  const router = Router({ caseSensitive: true, strict: true });
  router.use(exactMount(options.base ?? USER_API_KEYS_PATH));
  router.use(withRequestId);
  router.use(checkQueryText);
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  const caller = async (req: Request) => {
    const deps = options.deps();
    if (!deps) throw new ApiError('temporarily_unavailable', 'the service is starting; retry in a second', { headers: { 'Retry-After': '1' } });
    const { user } = await deps.users.authenticate(bearerToken(req));
    return { deps, userId: user.id, actor: `user:${user.id}` };
  };

  router.post('/', async (req: Request, res: Response) => {
    const { deps, userId, actor } = await caller(req);
    // The body is read only once the caller is known: an anonymous caller gets 401, never a parse error.
    await readJsonBody(req, res);
    const body = parse(userCreateApiKeyBody, req.body ?? {}, 'body');
    const { key, row } = await deps.apiKeys
      .create({ owner: { kind: 'user', id: userId }, name: body.name, scopes: body.scopes, expiresAt: requestedExpiry(body, deps.now()) }, { actor, requestId: requestId(req) })
      .catch(apiKeyError);
    const created: CreatedApiKeyView = { ...apiKeyView(row, deps.now()), key };
    res.status(201).json(created);
  });

  router.get('/', async (req: Request, res: Response) => {
    const { deps, userId } = await caller(req);
    const query = parse(userListApiKeysQuery, req.query, 'query');
    const page = await deps.apiKeys.list({ userId, limit: query.limit, cursor: pagePosition(deps.cursors, 'api-keys', query.cursor) });
    const now = deps.now();
    res.json({ api_keys: page.rows.map((row) => apiKeyView(row, now)), next_cursor: page.next ? deps.cursors.encode('api-keys', page.next) : null });
  });

  router.delete('/:id', async (req: Request, res: Response) => {
    const { deps, userId, actor } = await caller(req);
    const id = keyIdParam(req);
    const row = await deps.apiKeys.revoke(id, { actor, requestId: requestId(req), reason: 'revoked by its owner' }, { owner: { kind: 'user', id: userId } }).catch(apiKeyError);
    res.json(apiKeyView(row, deps.now()));
  });

  router.use(() => {
    throw new ApiError('not_found', 'no such endpoint under /auth/v1/api-keys (GET and POST /, DELETE /{id})');
  });
  router.use(apiErrorHandler(options.logger));
  return router;
}
