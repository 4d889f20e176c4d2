import crypto from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { recordAudit } from '../audit';
import { findClient, listClients } from '../clients/repository';
import { clientView } from '../clients/view';
import {
  changeClient,
  checkClientKeys,
  ClientError,
  clientPolicy,
  createClient,
  createClientWithKeys,
  createPublicClient,
  deleteClient,
  parseGrace,
  rotateClientSecret,
  setClientKeys,
  type ClientKeysInput,
} from '../clients/service';
import { ApiError, apiErrorHandler, bearerToken, checkQuery, readJsonBody, requestId, withRequestId, parseInput as parse } from '../http/api-error';
import { KeyLifecycleError } from '../keys/lifecycle';
import { keyView } from '../keys/view';
import type { Logger } from '../observability/logger';
import type { Kysely } from 'kysely';
import type { Config } from '../config';
import type { Database } from '../db/schema';
import type { KeyLifecycle } from '../keys/lifecycle';
import type { FailureLimiter } from '../ratelimit';
import type { AdminTokens } from './tokens';
import { createTenant, findTenant, listTenants, setTenantDisabled, TenantError, tenantView } from '../tenants/repository';
import { printableProblem } from '../text';
import { findUser, listUsers, publicUser, revokeUserSessions, updateUser } from '../users/repository';
import { normaliseEmail } from '../users/credentials';
import { auditView, listAudit } from './audit';
import { decodeCursor, encodeCursor, type CursorKind } from '../http/cursor';
import type { Permission } from './permissions';
import { blockView, clearBlock, isLimitKey } from '../ratelimit/operators';
import { allows, type AdminCaller } from './tokens';
import { apiKeyAdminRoutes, type ApiKeyAdminDeps } from '../api-keys/admin-routes';
import { resourceAdminRoutes, type ResourceAdminDeps } from '../resources/admin-routes';
import {
  auditQuery,
  createClientBody,
  createTenantBody,
  listUsersQuery,
  patchClientBody,
  patchUserBody,
  PATH_PARAMETERS,
  revokeKeyBody,
  rotateKeysBody,
  rotateSecretBody,
} from './schemas';

/** What the admin API works with: each member is the narrow part of a capability it calls. */
export interface AdminDeps extends ApiKeyAdminDeps, ResourceAdminDeps {
  db: Kysely<Database>;
  now: () => Date;
  settings: Pick<Config, 'issuer' | 'userAudience' | 'clientDefaultAudience' | 'clientTokenTtlMs' | 'production' | 'clientSecretGraceMs'>;
  lifecycle: Pick<KeyLifecycle, 'list' | 'rotate' | 'revoke'>;
  /** This instance's key cache, refreshed at once after a change (the others hear of it by NOTIFY). */
  keys: { refresh(): Promise<void> };
  failures: FailureLimiter;
  adminTokens: Pick<AdminTokens, 'authenticate'>;
}

type Handler = (req: Request, res: Response, caller: AdminCaller, deps: AdminDeps) => Promise<void>;

/** The path parameters (./schemas.ts): a malformed id is a 400, a well-formed unknown one a 404; others must be printable text. */
const PARAMETERS: Readonly<Record<string, { pattern: RegExp; what: string }>> = PATH_PARAMETERS;

/** Refuses a malformed path parameter with 400. */
function checkParameters(req: Request): void {
  for (const [name, value] of Object.entries(req.params as Record<string, unknown>)) {
    if (typeof value !== 'string') continue;
    const problem = printableProblem(value);
    if (problem) throw new ApiError('invalid_request', `path parameter ${name} ${problem}`);
    const rule = PARAMETERS[name];
    if (rule && !rule.pattern.test(value)) throw new ApiError('invalid_request', `path parameter ${name} must be ${rule.what}`);
  }
}

/** The keyset position of a `cursor` query parameter, or a 400 for anything this API did not hand out. */
function pageStart(kind: CursorKind, cursor: string | undefined) {
  if (cursor === undefined) return undefined;
  const position = decodeCursor(kind, cursor);
  if (!position) throw new ApiError('invalid_request', 'cursor: not a cursor returned by this endpoint (pass next_cursor back unchanged)');
  return position;
}

function keyError(error: unknown): never {
  if (error instanceof KeyLifecycleError) {
    const code = error.code === 'ERR_KEY_NOT_FOUND' ? 'not_found' : 'conflict';
    throw new ApiError(code, error.message, error.safeAt ? { details: { safe_at: error.safeAt.toISOString() } } : {});
  }
  throw error;
}

function clientError(error: unknown): never {
  if (error instanceof ClientError) throw new ApiError(error.code === 'ERR_CLIENT_NOT_FOUND' ? 'not_found' : 'invalid_request', error.message);
  throw error;
}

function tenantError(error: unknown): never {
  if (error instanceof TenantError) throw new ApiError('invalid_request', error.message);
  throw error;
}

/**
 * `/admin/v1` (README: "HTTP"): only admin tokens, each route guarded by exactly one permission.
 * 401 when the token is missing, invalid or revoked; 403 when it is valid but lacks the permission.
 * Every change is an audit event with actor `admin-token:<id>` and the request id.
 */
export function adminRoutes(options: { deps: () => AdminDeps | undefined; logger: Logger }): Router {
  // Exact routes (README: "Abuse limits"): `/ADMIN/V1/keys` or `/admin/v1/keys/` must not slip past a proxy rule.
  const router = Router({ caseSensitive: true, strict: true });
  router.use(withRequestId);
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  const guard =
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
  const audit = (deps: AdminDeps, req: Request, caller: AdminCaller, action: string, target: string, details?: Record<string, unknown>) =>
    recordAudit(deps.db, { at: deps.now(), actor: caller.actor, action, target, requestId: requestId(req), details });

  // Keys: the same KeyLifecycle as the CLI; this instance's cache is refreshed at once, the others by NOTIFY.
  router.get(
    '/keys',
    guard('keys:read', async (_req, res, _caller, deps) => {
      res.json({ keys: (await deps.lifecycle.list()).map(keyView) });
    }),
  );
  router.post(
    '/keys/rotate',
    guard('keys:rotate', async (req, res, caller, deps) => {
      const body = parse(rotateKeysBody, req.body ?? {}, 'body');
      const changes = await deps.lifecycle.rotate(caller.actor, { force: body.force, reason: body.reason }).catch(keyError);
      await deps.keys.refresh();
      res.json({ rotated: true, changes });
    }),
  );
  router.post(
    '/keys/:kid/revoke',
    guard('keys:revoke', async (req, res, caller, deps) => {
      const body = parse(revokeKeyBody, req.body ?? {}, 'body');
      const result = await deps.lifecycle.revoke(caller.actor, String(req.params.kid), body.reason ?? 'revoked through the admin API').catch(keyError);
      await deps.keys.refresh();
      res.json({
        revoked: result.kid,
        previous_state: result.previousState,
        changes: result.changes,
        verifier_cache_seconds: result.verifierCacheSeconds,
      });
    }),
  );

  // Clients: the same service as `idp clients`; every change is audited there with the admin token as actor.
  const change = (deps: AdminDeps, req: Request, caller: AdminCaller) => ({ actor: caller.actor, now: deps.now(), requestId: requestId(req) });
  const clientId = (req: Request) => String(req.params.clientId);
  /** private_key_jwt keys of a body (`jwks` or `jwks_uri`, exactly one), or undefined when it has neither. */
  const keysOf = (body: { jwks?: unknown; jwks_uri?: string }): ClientKeysInput | undefined => {
    if (body.jwks !== undefined && body.jwks_uri !== undefined) throw new ApiError('invalid_request', 'body: give jwks or jwks_uri, not both');
    if (body.jwks_uri !== undefined) return { jwksUri: body.jwks_uri };
    return body.jwks === undefined ? undefined : { jwks: body.jwks };
  };

  router.get(
    '/clients',
    guard('clients:read', async (_req, res, _caller, deps) => {
      res.json({ clients: (await listClients(deps.db)).map(clientView) });
    }),
  );
  router.post(
    '/clients',
    guard('clients:write', async (req, res, caller, deps) => {
      const body = parse(createClientBody, req.body ?? {}, 'body');
      const keys = keysOf(body);
      const input = {
        name: body.name,
        scopes: body.scopes,
        audiences: body.audiences,
        tenantId: body.tenant_id,
        tokenTtlSeconds: body.token_ttl_seconds,
        redirectUris: body.redirect_uris,
        postLogoutRedirectUris: body.post_logout_redirect_uris,
        grantTypes: body.grant_types,
        firstParty: body.first_party,
      };
      const method = body.token_endpoint_auth_method;
      if (method === 'private_key_jwt') {
        if (!keys) throw new ApiError('invalid_request', 'body: private_key_jwt needs jwks or jwks_uri');
        const client = await createClientWithKeys(deps.db, { ...input, keys }, clientPolicy(deps.settings), change(deps, req, caller)).catch(clientError);
        // No secret exists for it: it authenticates with assertions signed by its keys.
        res.status(201).json(clientView(client));
        return;
      }
      if (keys) throw new ApiError('invalid_request', 'body: jwks and jwks_uri go with token_endpoint_auth_method "private_key_jwt"');
      if (method === 'none') {
        // A public client: no secret to show, nothing to store but its settings.
        const client = await createPublicClient(deps.db, input, clientPolicy(deps.settings), change(deps, req, caller)).catch(clientError);
        res.status(201).json(clientView(client));
        return;
      }
      const { client, secret } = await createClient(deps.db, { ...input, method }, clientPolicy(deps.settings), change(deps, req, caller)).catch(clientError);
      // The secret is shown once, here; only its hash is stored.
      res.status(201).json({ ...clientView(client), client_secret: secret });
    }),
  );
  router.get(
    '/clients/:clientId',
    guard('clients:read', async (req, res, _caller, deps) => {
      const client = await findClient(deps.db, clientId(req));
      if (!client) throw new ApiError('not_found', `no client ${clientId(req)}`);
      res.json(clientView(client));
    }),
  );
  router.patch(
    '/clients/:clientId',
    guard('clients:write', async (req, res, caller, deps) => {
      const body = parse(patchClientBody, req.body ?? {}, 'body');
      const now = deps.now();
      const policy = clientPolicy(deps.settings);
      const { jwks: _jwks, jwks_uri: _jwksUri, token_endpoint_auth_method: method, ...settings } = body;
      const keys = keysOf(body);
      if (method !== undefined && !keys) throw new ApiError('invalid_request', 'body: private_key_jwt needs jwks or jwks_uri');
      // Keys are checked before anything is written, so a bad key set leaves the other fields unchanged too.
      if (keys) {
        try {
          checkClientKeys(keys, policy);
        } catch (error) {
          clientError(error);
        }
      }
      let client;
      if (!keys || Object.keys(settings).length > 0) {
        client = await changeClient(
          deps.db,
          clientId(req),
          {
            name: body.name,
            scopes: body.scopes,
            audiences: body.audiences,
            tokenTtlSeconds: body.token_ttl_seconds,
            disabledAt: body.disabled === undefined ? undefined : body.disabled ? now : null,
            redirectUris: body.redirect_uris,
            postLogoutRedirectUris: body.post_logout_redirect_uris,
            grantTypes: body.grant_types,
            firstParty: body.first_party,
          },
          policy,
          { ...change(deps, req, caller), now },
        ).catch(clientError);
      }
      // Replacing the keys (a client with a secret loses it): audited as client.keys-replaced.
      if (keys) client = await setClientKeys(deps.db, clientId(req), keys, policy, { ...change(deps, req, caller), now }).catch(clientError);
      res.json(clientView(client as NonNullable<typeof client>));
    }),
  );
  router.delete(
    '/clients/:clientId',
    guard('clients:write', async (req, res, caller, deps) => {
      await deleteClient(deps.db, clientId(req), change(deps, req, caller)).catch(clientError);
      res.status(204).end();
    }),
  );
  router.post(
    '/clients/:clientId/secret',
    guard('clients:write', async (req, res, caller, deps) => {
      const body = parse(rotateSecretBody, req.body ?? {}, 'body');
      const graceMs = body.grace === undefined ? deps.settings.clientSecretGraceMs : parseGrace(body.grace);
      if (graceMs === undefined) throw new ApiError('invalid_request', `grace "${body.grace}" is not a duration such as 0s, 1h or 1d`);
      const rotated = await rotateClientSecret(deps.db, clientId(req), graceMs, change(deps, req, caller)).catch(clientError);
      res.json({
        client_id: clientId(req),
        client_secret: rotated.secret,
        previous_secret_valid_until: rotated.previousValidUntil ? rotated.previousValidUntil.toISOString() : null,
      });
    }),
  );

  router.get(
    '/users',
    guard('users:read', async (req, res, _caller, deps) => {
      const query = parse(listUsersQuery, req.query, 'query');
      const page = await listUsers(deps.db, {
        email: query.email === undefined ? undefined : normaliseEmail(query.email),
        tenantId: query.tenant_id,
        limit: query.limit,
        after: pageStart('users', query.cursor),
      });
      res.json({ users: page.users.map(publicUser), next_cursor: page.next ? encodeCursor('users', page.next) : null });
    }),
  );
  router.patch(
    '/users/:userId',
    guard('users:write', async (req, res, caller, deps) => {
      const body = parse(patchUserBody, req.body ?? {}, 'body');
      const id = String(req.params.userId);
      const db = deps.db;
      const existing = await findUser(db, id);
      if (!existing) throw new ApiError('not_found', `no user has id "${id}"`);
      if (body.tenant_id && !(await findTenant(db, body.tenant_id))) throw new ApiError('invalid_request', `tenant_id: no tenant "${body.tenant_id}"`);
      const now = deps.now();
      const updated = await db.transaction().execute(async (trx) => {
        const row = await updateUser(trx, id, {
          role: body.role,
          tenantId: body.tenant_id,
          disabledAt: body.disabled === undefined ? undefined : body.disabled ? (existing.disabled_at ?? now) : null,
          now,
        });
        const changed = Object.keys(body);
        await recordAudit(trx, { at: now, actor: caller.actor, action: 'user.updated', target: id, requestId: requestId(req), details: { changed, ...body } });
        if (body.disabled === true) {
          // A disabled account keeps no open session: its refresh tokens die with them.
          for (const sid of await revokeUserSessions(trx, id, 'account disabled', now)) {
            await recordAudit(trx, { at: now, actor: caller.actor, action: 'session.revoked', target: sid, reason: 'account disabled', requestId: requestId(req) });
          }
        }
        return row;
      });
      res.json(publicUser(updated ?? existing));
    }),
  );

  router.get(
    '/tenants',
    guard('tenants:read', async (_req, res, _caller, deps) => {
      res.json({ tenants: (await listTenants(deps.db)).map(tenantView) });
    }),
  );
  router.get(
    '/tenants/:tenantId',
    guard('tenants:read', async (req, res, _caller, deps) => {
      const tenant = await findTenant(deps.db, String(req.params.tenantId));
      if (!tenant) throw new ApiError('not_found', `no tenant "${String(req.params.tenantId)}"`);
      res.json(tenantView(tenant));
    }),
  );
  router.post(
    '/tenants',
    guard('tenants:write', async (req, res, caller, deps) => {
      const body = parse(createTenantBody, req.body ?? {}, 'body');
      const id = body.id ?? crypto.randomUUID();
      const db = deps.db;
      if (await findTenant(db, id)) throw new ApiError('conflict', `tenant "${id}" already exists`);
      const tenant = await createTenant(db, { id, name: body.name, now: deps.now() }).catch(tenantError);
      await audit(deps, req, caller, 'tenant.created', id, { name: tenant.name });
      res.status(201).json(tenantView(tenant));
    }),
  );
  router.delete(
    '/tenants/:tenantId',
    guard('tenants:write', async (req, res, caller, deps) => {
      const id = String(req.params.tenantId);
      const db = deps.db;
      const tenant = await findTenant(db, id);
      if (!tenant) throw new ApiError('not_found', `no tenant "${id}"`);
      // Disabled, not deleted: its users, clients and audit trail keep pointing at it.
      if (!tenant.disabled_at) {
        await setTenantDisabled(db, id, deps.now());
        await audit(deps, req, caller, 'tenant.disabled', id);
      }
      res.json(tenantView((await findTenant(db, id)) ?? tenant));
    }),
  );

  router.get(
    '/audit',
    guard('audit:read', async (req, res, _caller, deps) => {
      const query = parse(auditQuery, req.query, 'query');
      const { cursor, ...filter } = query;
      const page = await listAudit(deps.db, { ...filter, after: pageStart('audit', cursor) });
      res.json({ events: page.events.map(auditView), next_cursor: page.next ? encodeCursor('audit', page.next) : null });
    }),
  );

  // Abuse limits (README: "Abuse limits"): the blocks in force, and lifting one on every instance.
  router.get(
    '/limits',
    guard('limits:read', async (_req, res, _caller, deps) => {
      const now = deps.now();
      res.json({ blocks: (await deps.failures.listBlocks()).map((block) => blockView(block, now)) });
    }),
  );
  router.delete(
    '/limits/:key',
    guard('limits:write', async (req, res, caller, deps) => {
      const key = String(req.params.key);
      if (!isLimitKey(key)) throw new ApiError('invalid_request', 'not a limit key such as oauth:ip:203.0.113.7 (see GET /admin/v1/limits)');
      const cleared = await clearBlock(deps.failures, deps.db, key, { actor: caller.actor, at: deps.now(), requestId: requestId(req) });
      if (!cleared) throw new ApiError('not_found', 'nothing is counted under this key');
      res.json({ cleared: key });
    }),
  );

  router.use('/api-keys', apiKeyAdminRoutes(guard));
  router.use('/resources', resourceAdminRoutes(guard));

  router.use(() => {
    throw new ApiError('not_found', 'no such endpoint under /admin/v1 (keys, clients, users, tenants, audit, limits, api-keys, resources)');
  });
  router.use(apiErrorHandler(options.logger));
  return router;
}
