import crypto from 'node:crypto';
import { errors, type JWTPayload } from 'jose';
import type { Kysely } from 'kysely';
import { recordAudit } from '../audit';
import { formatDuration } from '../config/duration';
import type { AdminTokenRow, Database } from '../db/schema';
import { ServiceError } from '../errors';
import { checkName, InvalidNameError } from '../text';
import { adminAudience } from '../tokens/audiences';
import type { Signer } from '../tokens/sign';
import type { TokenVerifier } from '../tokens/verify';
import { describeExpiry, invalidToken } from '../users/access-token';
import { isPermission, PERMISSIONS, type Permission } from './permissions';
import { quoted } from '../text';

/** The `token_type` claim of admin tokens (docs/tokens.md "Tokens". */
export const ADMIN_TOKEN_TYPE = 'admin';

/** Admin token ids are UUIDs (the `jti`); anything else is refused before it reaches a query. */
const TOKEN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class AdminTokenError extends Error {
  constructor(
    readonly code: 'ERR_PERMISSION' | 'ERR_TTL' | 'ERR_NOT_FOUND' | 'ERR_REVOKED' | 'ERR_DESCRIPTION',
    message: string,
  ) {
    super(message);
    this.name = 'AdminTokenError';
  }
}

/** An admin token as `admin-token list` shows it; the token itself is never stored. */
export interface AdminTokenView {
  id: string;
  permissions: string[];
  is_super_admin: boolean;
  description: string | null;
  created_by: string;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
}

export function adminTokenView(row: AdminTokenRow): AdminTokenView {
  return {
    id: row.id,
    permissions: row.permissions,
    is_super_admin: row.is_super_admin,
    description: row.description,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at.toISOString(),
    revoked_at: row.revoked_at ? row.revoked_at.toISOString() : null,
  };
}

/** The `admin-token issue` JSON shape (docs/operating.md "The admin CLI". */
export interface IssuedAdminToken {
  id: string;
  token: string;
  expires_at: string;
  permissions: string[];
}

/** The verified caller of the admin API. */
export interface AdminCaller {
  id: string;
  permissions: ReadonlySet<Permission>;
  isSuperAdmin: boolean;
  /** `admin-token:<id>`: the actor of audit events and key transitions. */
  actor: string;
}

export interface AdminTokensDeps {
  db: Kysely<Database>;
  verifier: TokenVerifier;
  /** Needed to issue; the admin API only verifies. */
  sign?: Signer;
  now: () => Date;
  settings: { issuer: string; defaultTtlMs: number; retentionMs: number };
}

/**
 * Admin tokens: signed JWTs (typ at+jwt, aud `$IDP_ISSUER/admin`) registered in `admin_tokens`, so
 * that they can be listed and revoked. The row is read on every admin request: revocation holds on
 * every instance at once, and the permissions of the row, not only of the token, decide.
 */
export class AdminTokens {
  constructor(private readonly deps: AdminTokensDeps) {}

  async issue(request: { permissions: readonly string[]; superAdmin: boolean; ttlMs?: number; description?: string; actor: string }): Promise<IssuedAdminToken> {
    const sign = this.deps.sign;
    if (!sign) throw new Error('AdminTokens was built without a signer');
    const unknown = request.permissions.filter((p) => !isPermission(p));
    if (unknown.length > 0) {
      throw new AdminTokenError('ERR_PERMISSION', `unknown permission ${unknown.map(quoted).join(', ')}; known: ${PERMISSIONS.join(', ')}`);
    }
    if (request.permissions.length === 0 && !request.superAdmin) {
      throw new AdminTokenError('ERR_PERMISSION', 'give at least one --permission, or --super');
    }
    const { defaultTtlMs, retentionMs, issuer } = this.deps.settings;
    const ttlMs = request.ttlMs ?? defaultTtlMs;
    // A token must never outlive the retention of its signing key, or verifiers would reject it early.
    if (ttlMs > retentionMs) {
      throw new AdminTokenError('ERR_TTL', `ttl ${formatDuration(ttlMs)} exceeds the key retention IDP_KEY_RETENTION (${formatDuration(retentionMs)})`);
    }
    if (ttlMs < 1_000) throw new AdminTokenError('ERR_TTL', 'ttl must be at least 1s');
    let description: string | null = null;
    if (request.description !== undefined) {
      try {
        description = checkName(request.description, 'the description', 500);
      } catch (error) {
        if (error instanceof InvalidNameError) throw new AdminTokenError('ERR_DESCRIPTION', error.message);
        throw error;
      }
    }
    const permissions = request.superAdmin ? [...PERMISSIONS] : [...new Set(request.permissions)];
    const id = crypto.randomUUID();
    const now = this.deps.now();
    const iat = Math.floor(now.getTime() / 1000);
    const exp = iat + Math.floor(ttlMs / 1000);
    const token = await sign(
      {
        iss: issuer,
        sub: `admin-token:${id}`,
        aud: adminAudience(issuer),
        exp,
        iat,
        nbf: iat,
        jti: id,
        token_type: ADMIN_TOKEN_TYPE,
        permissions,
        is_super_admin: request.superAdmin,
      },
      'at+jwt',
    );
    const expiresAt = new Date(exp * 1000);
    await this.deps.db.transaction().execute(async (trx) => {
      await trx
        .insertInto('admin_tokens')
        .values({
          id,
          permissions: JSON.stringify(permissions),
          is_super_admin: request.superAdmin,
          description,
          created_by: request.actor,
          created_at: now,
          expires_at: expiresAt,
        })
        .execute();
      await recordAudit(trx, {
        at: now,
        actor: request.actor,
        action: 'admin_token.issued',
        target: id,
        details: { permissions, is_super_admin: request.superAdmin, expires_at: expiresAt.toISOString() },
      });
    });
    return { id, token, expires_at: expiresAt.toISOString(), permissions };
  }

  list(): Promise<AdminTokenRow[]> {
    return this.deps.db.selectFrom('admin_tokens').selectAll().orderBy('created_at', 'desc').orderBy('id').execute();
  }

  async revoke(id: string, actor: string, requestId?: string): Promise<AdminTokenRow> {
    if (!TOKEN_ID.test(id)) throw new AdminTokenError('ERR_NOT_FOUND', `no admin token has id ${quoted(id)} (an id is a UUID)`);
    const now = this.deps.now();
    return this.deps.db.transaction().execute(async (trx) => {
      const row = await trx.selectFrom('admin_tokens').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
      if (!row) throw new AdminTokenError('ERR_NOT_FOUND', `no admin token has id "${id}"`);
      if (row.revoked_at) throw new AdminTokenError('ERR_REVOKED', `admin token ${id} was already revoked at ${row.revoked_at.toISOString()}`);
      const revoked = await trx
        .updateTable('admin_tokens')
        .set({ revoked_at: now, revoked_by: actor })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
      await recordAudit(trx, { at: now, actor, action: 'admin_token.revoked', target: id, requestId });
      return revoked;
    });
  }

  /** The caller of an admin request, or a 401: missing, forged, expired, foreign-kind or revoked token. */
  async authenticate(token: string): Promise<AdminCaller> {
    const now = this.deps.now();
    let payload: JWTPayload;
    try {
      payload = await this.deps.verifier.verify(token, { audience: adminAudience(this.deps.settings.issuer), typ: 'at+jwt', now });
    } catch (error) {
      if (error instanceof errors.JWTExpired && typeof error.payload.exp === 'number') {
        throw new ServiceError('token_expired', `admin token expired ${describeExpiry(error.payload.exp * 1000, now)}; issue a new one with \`idp admin-token issue\``);
      }
      if (error instanceof errors.JWTClaimValidationFailed) {
        throw new ServiceError('invalid_token', 'not an admin token: the admin API accepts only tokens from `idp admin-token issue`', {
          logDetail: `${error.claim}: ${error.reason}`,
        });
      }
      throw invalidToken(error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error));
    }
    // Only tokens this class issued have a UUID `jti`: a signed token with anything else is not one.
    if (payload.token_type !== ADMIN_TOKEN_TYPE || typeof payload.jti !== 'string' || !TOKEN_ID.test(payload.jti)) {
      throw new ServiceError('invalid_token', 'not an admin token: the admin API accepts only tokens from `idp admin-token issue`', {
        logDetail: `token_type=${String(payload.token_type)}, jti ${typeof payload.jti === 'string' && TOKEN_ID.test(payload.jti) ? 'a UUID' : 'not a UUID'}`,
      });
    }
    const row = await this.deps.db.selectFrom('admin_tokens').selectAll().where('id', '=', payload.jti).executeTakeFirst();
    if (!row) throw invalidToken(`admin token ${payload.jti} is signed but not registered`);
    if (row.revoked_at) throw new ServiceError('invalid_token', `admin token ${row.id} was revoked at ${row.revoked_at.toISOString()}`);
    // The row is the record of the token: its expiry holds even if the JWT claims a later one.
    if (row.expires_at.getTime() <= now.getTime()) {
      throw new ServiceError('token_expired', `admin token expired ${describeExpiry(row.expires_at.getTime(), now)}; issue a new one with \`idp admin-token issue\``);
    }
    const permissions = new Set(row.permissions.filter(isPermission));
    return { id: row.id, permissions, isSuperAdmin: row.is_super_admin, actor: `admin-token:${row.id}` };
  }
}

/** True when the caller holds `permission` (a super-admin token holds every one). */
export function allows(caller: AdminCaller, permission: Permission): boolean {
  return caller.isSuperAdmin || caller.permissions.has(permission);
}
