import { type Kysely, type Transaction } from 'kysely';
import type { Database, SessionRow, UserRow } from '../db/schema';
import { keysetPage } from '../http/cursor';

type Db = Kysely<Database> | Transaction<Database>;

/** A user as every API shows it: never the password hash. */
export interface PublicUser {
  id: string;
  email: string;
  role: string;
  tenant_id: string | null;
  created_at: string;
  updated_at: string;
  last_sign_in_at: string | null;
  disabled_at: string | null;
}

export function publicUser(row: UserRow): PublicUser {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: row.id,
    email: row.email,
    role: row.role,
    tenant_id: row.tenant_id,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    last_sign_in_at: iso(row.last_sign_in_at),
    disabled_at: iso(row.disabled_at),
  };
}

export class DuplicateEmailError extends Error {
  readonly code = 'ERR_DUPLICATE_EMAIL';
}

export async function insertUser(db: Db, user: { id: string; email: string; passwordHash: string; now: Date }): Promise<UserRow> {
  try {
    return await db
      .insertInto('users')
      .values({ id: user.id, email: user.email, password_hash: user.passwordHash, created_at: user.now, updated_at: user.now })
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (error) {
    if ((error as { code?: string }).code === '23505') throw new DuplicateEmailError('email already registered');
    throw error;
  }
}

export function findUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
}

export function findUser(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface UserPage {
  users: UserRow[];
  /** Where the next page starts (the last row's position); absent on the last page. */
  next?: { at: Date; id: string };
}

/** Users by creation, newest first, in keyset pages over (created_at, id) (stable under concurrent sign-ups). */
export async function listUsers(db: Db, filter: { email?: string; tenantId?: string; limit: number; after?: { at: Date; id: string } }): Promise<UserPage> {
  let query = db.selectFrom('users').selectAll();
  if (filter.email) query = query.where('email', '=', filter.email);
  if (filter.tenantId) query = query.where('tenant_id', '=', filter.tenantId);
  const after = filter.after;
  if (after) {
    // A row comparison, which Postgres turns into one index range: the equivalent `or` made it read
    // every row before the cursor (500,001 index entries for a middle page of a million).
    query = query.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(after.at, after.id)));
  }
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit + 1).execute();
  const { items: users, next } = keysetPage(rows, filter.limit, (row) => ({ at: row.created_at, id: row.id }));
  return next ? { users, next } : { users };
}

export async function updateUser(db: Db, id: string, changes: { role?: string; tenantId?: string | null; disabledAt?: Date | null; now: Date }): Promise<UserRow | undefined> {
  return db
    .updateTable('users')
    .set({
      updated_at: changes.now,
      ...(changes.role !== undefined ? { role: changes.role } : {}),
      ...(changes.tenantId !== undefined ? { tenant_id: changes.tenantId } : {}),
      ...(changes.disabledAt !== undefined ? { disabled_at: changes.disabledAt } : {}),
    })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

export async function touchSignIn(db: Db, id: string, now: Date): Promise<void> {
  await db.updateTable('users').set({ last_sign_in_at: now }).where('id', '=', id).execute();
}

/** What a session opened for an application (the authorization-code flow) carries besides its user. */
export interface ApplicationSession {
  clientId: string;
  /** The granted scopes, space-separated. */
  scope: string;
  /** The granted resources (the tokens' `aud`); empty: IDP_USER_AUDIENCE. */
  resources: readonly string[];
  browserSessionId: string | null;
  authTime: Date;
}

export async function insertSession(db: Db, session: { id: string; userId: string; now: Date; application?: ApplicationSession }): Promise<void> {
  const app = session.application;
  await db
    .insertInto('sessions')
    .values({
      id: session.id,
      user_id: session.userId,
      created_at: session.now,
      ...(app && {
        client_id: app.clientId,
        scope: app.scope,
        audience: JSON.stringify(app.resources),
        browser_session_id: app.browserSessionId,
        auth_time: app.authTime,
      }),
    })
    .execute();
}

/** The application a session was opened for, or undefined for a /auth/v1 session. */
export function applicationOf(session: SessionRow): ApplicationSession | undefined {
  if (session.client_id === null) return undefined;
  return {
    clientId: session.client_id,
    scope: session.scope ?? '',
    resources: session.audience ?? [],
    browserSessionId: session.browser_session_id,
    authTime: session.auth_time ?? session.created_at,
  };
}

/**
 * The session of an access token with its user and whether the user's tenant is disabled, in one
 * query: what the user API checks on every request.
 */
export async function findSessionWithUser(db: Db, sessionId: string): Promise<{ session: SessionRow; user: UserRow; tenantDisabled: boolean } | undefined> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .leftJoin('tenants', 'tenants.id', 'users.tenant_id')
    .selectAll('users')
    .select([
      'tenants.disabled_at as tenant_disabled_at',
      'sessions.id as session_id',
      'sessions.created_at as session_created_at',
      'sessions.refreshed_at as session_refreshed_at',
      'sessions.revoked_at as session_revoked_at',
      'sessions.revoked_reason as session_revoked_reason',
      'sessions.client_id as session_client_id',
      'sessions.scope as session_scope',
      'sessions.audience as session_audience',
      'sessions.browser_session_id as session_browser_session_id',
      'sessions.auth_time as session_auth_time',
    ])
    .where('sessions.id', '=', sessionId)
    .executeTakeFirst();
  if (!row) return undefined;
  const {
    session_id,
    session_created_at,
    session_refreshed_at,
    session_revoked_at,
    session_revoked_reason,
    session_client_id,
    session_scope,
    session_audience,
    session_browser_session_id,
    session_auth_time,
    tenant_disabled_at,
    ...user
  } = row;
  return {
    user,
    tenantDisabled: tenant_disabled_at !== null,
    session: {
      id: session_id,
      user_id: user.id,
      created_at: session_created_at,
      refreshed_at: session_refreshed_at,
      revoked_at: session_revoked_at,
      revoked_reason: session_revoked_reason,
      client_id: session_client_id,
      scope: session_scope,
      audience: session_audience,
      browser_session_id: session_browser_session_id,
      auth_time: session_auth_time,
    },
  };
}

/** Revokes one session; returns false when it was already revoked (or does not exist). */
export async function revokeSession(db: Db, sessionId: string, reason: string, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('sessions')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('id', '=', sessionId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Revokes the open sessions a user's sign-in gave one application (its consent withdrawn); returns their ids. */
export async function revokeApplicationSessions(db: Db, userId: string, clientId: string, reason: string, now: Date): Promise<string[]> {
  const rows = await db
    .updateTable('sessions')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('user_id', '=', userId)
    .where('client_id', '=', clientId)
    .where('revoked_at', 'is', null)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Revokes the open sessions that applications got from one browser session (its sign-out); returns their ids. */
export async function revokeBrowserSessionSessions(db: Db, browserSessionId: string, reason: string, now: Date): Promise<string[]> {
  const rows = await db
    .updateTable('sessions')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('browser_session_id', '=', browserSessionId)
    .where('revoked_at', 'is', null)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

/** Whether an access token's `jti` is on the deny-list (revoked by its client, or by a code's replay). */
export async function isAccessTokenRevoked(db: Db, jti: string): Promise<boolean> {
  return (await db.selectFrom('revoked_access_tokens').select('jti').where('jti', '=', jti).executeTakeFirst()) !== undefined;
}

/** Revokes every open session of a user (account disabled); returns their ids. */
export async function revokeUserSessions(db: Db, userId: string, reason: string, now: Date): Promise<string[]> {
  const rows = await db
    .updateTable('sessions')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

export async function insertRefreshToken(db: Db, token: { hash: string; sessionId: string; now: Date; expiresAt: Date }): Promise<void> {
  await db
    .insertInto('refresh_tokens')
    .values({ token_hash: token.hash, session_id: token.sessionId, created_at: token.now, expires_at: token.expiresAt })
    .execute();
}

/**
 * Marks a refresh token used, atomically: of two requests presenting the same token, exactly one
 * gets the row; the other sees it used (reuse). Returns the row as it was before, if unused.
 * `successor`: the replacing token sealed under this one (only with a reuse interval), kept in the same write.
 */
export async function consumeRefreshToken(db: Db, hash: string, now: Date, successor: Uint8Array | null = null): Promise<{ session_id: string; expires_at: Date } | undefined> {
  return db
    .updateTable('refresh_tokens')
    .set({ used_at: now, successor })
    .where('token_hash', '=', hash)
    .where('used_at', 'is', null)
    .returning(['session_id', 'expires_at'])
    .executeTakeFirst();
}

/**
 * One link of a session's chain of refresh tokens, locked until the transaction ends: a concurrent
 * rotation of the same token waits, so the chain read is the chain as it is.
 */
export function lockRefreshTokenLink(
  db: Db,
  hash: string,
): Promise<{ session_id: string; expires_at: Date; used_at: Date | null; successor: Uint8Array | null } | undefined> {
  return db.selectFrom('refresh_tokens').select(['session_id', 'expires_at', 'used_at', 'successor']).where('token_hash', '=', hash).forUpdate().executeTakeFirst();
}

/** Forgets the sealed successors of tokens rotated before `usedBefore` (the reuse interval has passed for them). */
export async function clearSuccessors(db: Db, usedBefore: Date): Promise<number> {
  const result = await db.updateTable('refresh_tokens').set({ successor: null }).where('successor', 'is not', null).where('used_at', '<', usedBefore).executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export function findRefreshToken(db: Db, hash: string): Promise<{ session_id: string; created_at: Date; expires_at: Date; used_at: Date | null } | undefined> {
  return db.selectFrom('refresh_tokens').select(['session_id', 'created_at', 'expires_at', 'used_at']).where('token_hash', '=', hash).executeTakeFirst();
}

export async function markSessionRefreshed(db: Db, sessionId: string, now: Date): Promise<void> {
  await db.updateTable('sessions').set({ refreshed_at: now }).where('id', '=', sessionId).execute();
}
