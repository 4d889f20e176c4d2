import crypto from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { recordAudit } from '../audit';
import { findClient, listClients } from '../clients/repository';
import { clientView } from '../clients/view';
import { changeClient, ClientError, createClient, deleteClient, parseScope, rotateClientSecret, type ClientPolicy } from '../clients/service';
import { parseDuration } from '../config/duration';
import { ApiError, apiErrorHandler, bearerToken, readJsonBody, requestId, withRequestId } from '../http/api-error';
import { KeyLifecycleError } from '../keys/lifecycle';
import { keyView } from '../keys/view';
import type { Logger } from '../observability/logger';
import type { Services } from '../services';
import { createTenant, findTenant, listTenants, setTenantDisabled, tenantView } from '../tenants/repository';
import { decodeCursor, findUser, listUsers, publicUser, revokeUserSessions, updateUser } from '../users/repository';
import { normaliseEmail } from '../users/credentials';
import { auditView, listAudit } from './audit';
import type { Permission } from './permissions';
import { allows, type AdminCaller } from './tokens';
import { apiKeyAdminRoutes } from '../api-keys/admin-routes';

type Handler = (req: Request, res: Response, caller: AdminCaller, services: Services) => Promise<void>;

const pageLimit = z.coerce.number().int().min(1).max(500).default(100);

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    throw new ApiError('invalid_request', `${what}: ${where}${issue?.message ?? 'invalid'}`);
  }
  return result.data;
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

/** `scopes` as an array or an RFC 6749 space-separated string. */
const scopesField = z.union([z.array(z.string().max(200)).max(100), z.string().max(4000)]).transform((value, ctx) => {
  const scopes = typeof value === 'string' ? parseScope(value) : value;
  if (!scopes) {
    ctx.addIssue({ code: 'custom', message: 'malformed scope string' });
    return z.NEVER;
  }
  return scopes;
});

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * `/admin/v1` (SPEC §4): only admin tokens, each route guarded by exactly one permission.
 * 401 when the token is missing, invalid or revoked; 403 when it is valid but lacks the permission.
 * Every change is an audit event with actor `admin-token:<id>` and the request id.
 */
export function adminRoutes(options: { services: () => Services | undefined; logger: Logger }): Router {
  const router = Router();
  router.use(withRequestId);
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });

  const guard =
    (permission: Permission, handler: Handler) =>
    async (req: Request, res: Response): Promise<void> => {
      const services = options.services();
      if (!services) throw new ApiError('temporarily_unavailable', 'the service is starting; retry in a second', { headers: { 'Retry-After': '1' } });
      const caller = await services.adminTokens.authenticate(bearerToken(req));
      if (!allows(caller, permission)) {
        throw new ApiError('forbidden', `admin token ${caller.id} lacks the permission "${permission}"`);
      }
      // The body is read only once the caller is known: an anonymous caller gets 401, never a parse error.
      if (req.method !== 'GET') await readJsonBody(req, res);
      await handler(req, res, caller, services);
    };
  const audit = (services: Services, req: Request, caller: AdminCaller, action: string, target: string, details?: Record<string, unknown>) =>
    recordAudit(services.handle.db, { at: services.now(), actor: caller.actor, action, target, requestId: requestId(req), details });

  // Keys: the same KeyLifecycle as the CLI; this instance's cache is refreshed at once, the others by NOTIFY.
  router.get(
    '/keys',
    guard('keys:read', async (_req, res, _caller, services) => {
      res.json({ keys: (await services.lifecycle.list()).map(keyView) });
    }),
  );
  router.post(
    '/keys/rotate',
    guard('keys:rotate', async (req, res, caller, services) => {
      const body = parse(z.object({ force: z.boolean().default(false), reason: z.string().max(500).optional() }).default({ force: false }), req.body ?? {}, 'body');
      const changes = await services.lifecycle.rotate(caller.actor, { force: body.force, reason: body.reason }).catch(keyError);
      await services.keys.refresh();
      res.json({ rotated: true, changes });
    }),
  );
  router.post(
    '/keys/:kid/revoke',
    guard('keys:revoke', async (req, res, caller, services) => {
      const body = parse(z.object({ reason: z.string().min(1).max(500).optional() }).default({}), req.body ?? {}, 'body');
      const result = await services.lifecycle.revoke(caller.actor, String(req.params.kid), body.reason ?? 'revoked through the admin API').catch(keyError);
      await services.keys.refresh();
      res.json({
        revoked: result.kid,
        previous_state: result.previousState,
        changes: result.changes,
        verifier_cache_seconds: result.verifierCacheSeconds,
      });
    }),
  );

  // Clients: the same service as `idp clients`; every change is audited there with the admin token as actor.
  const clientPolicy = (services: Services): ClientPolicy => ({
    defaultAudience: services.config.clientDefaultAudience,
    maxTokenTtlMs: services.config.clientTokenTtlMs,
  });
  const change = (services: Services, req: Request, caller: AdminCaller) => ({ actor: caller.actor, now: services.now(), requestId: requestId(req) });
  const clientId = (req: Request) => String(req.params.id);

  router.get(
    '/clients',
    guard('clients:read', async (_req, res, _caller, services) => {
      res.json({ clients: (await listClients(services.handle.db)).map(clientView) });
    }),
  );
  router.post(
    '/clients',
    guard('clients:write', async (req, res, caller, services) => {
      const body = parse(
        z
          .object({
            name: z.string().max(200),
            scopes: scopesField,
            audiences: z.array(z.string().max(2048)).max(50).optional(),
            tenant_id: z.string().regex(TENANT_ID, 'a tenant id').nullable().optional(),
            token_ttl_seconds: z.number().int().positive().nullable().optional(),
          })
          .strict(),
        req.body ?? {},
        'body',
      );
      const { client, secret } = await createClient(
        services.handle.db,
        { name: body.name, scopes: body.scopes, audiences: body.audiences, tenantId: body.tenant_id, tokenTtlSeconds: body.token_ttl_seconds },
        clientPolicy(services),
        change(services, req, caller),
      ).catch(clientError);
      // The secret is shown once, here; only its hash is stored.
      res.status(201).json({ ...clientView(client), client_secret: secret });
    }),
  );
  router.get(
    '/clients/:id',
    guard('clients:read', async (req, res, _caller, services) => {
      const client = await findClient(services.handle.db, clientId(req));
      if (!client) throw new ApiError('not_found', `no client ${clientId(req)}`);
      res.json(clientView(client));
    }),
  );
  router.patch(
    '/clients/:id',
    guard('clients:write', async (req, res, caller, services) => {
      const body = parse(
        z
          .object({
            name: z.string().max(200).optional(),
            scopes: scopesField.optional(),
            audiences: z.array(z.string().max(2048)).max(50).optional(),
            token_ttl_seconds: z.number().int().positive().nullable().optional(),
            disabled: z.boolean().optional(),
          })
          .strict(),
        req.body ?? {},
        'body',
      );
      const now = services.now();
      const client = await changeClient(
        services.handle.db,
        clientId(req),
        {
          name: body.name,
          scopes: body.scopes,
          audiences: body.audiences,
          tokenTtlSeconds: body.token_ttl_seconds,
          disabledAt: body.disabled === undefined ? undefined : body.disabled ? now : null,
        },
        clientPolicy(services),
        { ...change(services, req, caller), now },
      ).catch(clientError);
      res.json(clientView(client));
    }),
  );
  router.delete(
    '/clients/:id',
    guard('clients:write', async (req, res, caller, services) => {
      await deleteClient(services.handle.db, clientId(req), change(services, req, caller)).catch(clientError);
      res.status(204).end();
    }),
  );
  router.post(
    '/clients/:id/secret',
    guard('clients:write', async (req, res, caller, services) => {
      const body = parse(z.object({ grace: z.string().max(20).optional() }).strict(), req.body ?? {}, 'body');
      let graceMs = services.config.clientSecretGraceMs;
      if (body.grace !== undefined) {
        const parsed = /^0+[smhd]?$/.test(body.grace) ? 0 : parseDuration(body.grace);
        if (parsed === undefined) throw new ApiError('invalid_request', `grace "${body.grace}" is not a duration such as 0s, 1h or 1d`);
        graceMs = parsed;
      }
      const rotated = await rotateClientSecret(services.handle.db, clientId(req), graceMs, change(services, req, caller)).catch(clientError);
      res.json({
        client_id: clientId(req),
        client_secret: rotated.secret,
        previous_secret_valid_until: rotated.previousValidUntil ? rotated.previousValidUntil.toISOString() : null,
      });
    }),
  );

  router.get(
    '/users',
    guard('users:read', async (req, res, _caller, services) => {
      const query = parse(
        z.object({ email: z.string().max(254).optional(), tenant_id: z.string().max(64).optional(), limit: pageLimit, cursor: z.string().max(200).optional() }),
        req.query,
        'query',
      );
      const cursor = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
      if (query.cursor !== undefined && !cursor) throw new ApiError('invalid_request', 'cursor: not a cursor returned by this endpoint');
      const page = await listUsers(services.handle.db, {
        email: query.email === undefined ? undefined : normaliseEmail(query.email),
        tenantId: query.tenant_id,
        limit: query.limit,
        cursor,
      });
      res.json({ users: page.users.map(publicUser), next_cursor: page.next ?? null });
    }),
  );
  router.patch(
    '/users/:id',
    guard('users:write', async (req, res, caller, services) => {
      const body = parse(
        z
          .object({
            role: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'lower-case letters, digits, _ or -, at most 32').optional(),
            tenant_id: z.string().regex(TENANT_ID, 'a tenant id').nullable().optional(),
            disabled: z.boolean().optional(),
          })
          .strict(),
        req.body ?? {},
        'body',
      );
      const id = String(req.params.id);
      const db = services.handle.db;
      const existing = z.uuid().safeParse(id).success ? await findUser(db, id) : undefined;
      if (!existing) throw new ApiError('not_found', `no user has id "${id}"`);
      if (body.tenant_id && !(await findTenant(db, body.tenant_id))) throw new ApiError('invalid_request', `tenant_id: no tenant "${body.tenant_id}"`);
      const now = services.now();
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
    guard('tenants:read', async (_req, res, _caller, services) => {
      res.json({ tenants: (await listTenants(services.handle.db)).map(tenantView) });
    }),
  );
  router.get(
    '/tenants/:id',
    guard('tenants:read', async (req, res, _caller, services) => {
      const tenant = await findTenant(services.handle.db, String(req.params.id));
      if (!tenant) throw new ApiError('not_found', `no tenant "${String(req.params.id)}"`);
      res.json(tenantView(tenant));
    }),
  );
  router.post(
    '/tenants',
    guard('tenants:write', async (req, res, caller, services) => {
      const body = parse(
        z.object({ id: z.string().regex(TENANT_ID, 'letters, digits, _ . -, at most 64').optional(), name: z.string().trim().min(1).max(200) }).strict(),
        req.body ?? {},
        'body',
      );
      const id = body.id ?? crypto.randomUUID();
      const db = services.handle.db;
      if (await findTenant(db, id)) throw new ApiError('conflict', `tenant "${id}" already exists`);
      const tenant = await createTenant(db, { id, name: body.name, now: services.now() });
      await audit(services, req, caller, 'tenant.created', id, { name: body.name });
      res.status(201).json(tenantView(tenant));
    }),
  );
  router.delete(
    '/tenants/:id',
    guard('tenants:write', async (req, res, caller, services) => {
      const id = String(req.params.id);
      const db = services.handle.db;
      const tenant = await findTenant(db, id);
      if (!tenant) throw new ApiError('not_found', `no tenant "${id}"`);
      // Disabled, not deleted: its users, clients and audit trail keep pointing at it.
      if (!tenant.disabled_at) {
        await setTenantDisabled(db, id, services.now());
        await audit(services, req, caller, 'tenant.disabled', id);
      }
      res.json(tenantView((await findTenant(db, id)) ?? tenant));
    }),
  );

  router.get(
    '/audit',
    guard('audit:read', async (req, res, _caller, services) => {
      const date = z.iso.datetime({ offset: true }).transform((t) => new Date(t));
      const query = parse(
        z.object({
          actor: z.string().max(200).optional(),
          action: z.string().max(100).optional(),
          target: z.string().max(300).optional(),
          since: date.optional(),
          until: date.optional(),
          limit: pageLimit,
          cursor: z.string().max(200).optional(),
        }),
        req.query,
        'query',
      );
      if (query.cursor !== undefined && !decodeCursor(query.cursor)) throw new ApiError('invalid_request', 'cursor: not a cursor returned by this endpoint');
      const page = await listAudit(services.handle.db, query);
      res.json({ events: page.events.map(auditView), next_cursor: page.next ?? null });
    }),
  );

  router.use('/api-keys', apiKeyAdminRoutes(guard));

  router.use(() => {
    throw new ApiError('not_found', 'no such endpoint under /admin/v1 (keys, clients, users, tenants, audit)');
  });
  router.use(apiErrorHandler(options.logger));
  return router;
}
