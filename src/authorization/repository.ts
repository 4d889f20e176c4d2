import { sql, type Kysely, type Transaction } from 'kysely';
import type { AuthorizationCodeRow, BrowserSessionRow, Database, UserRow } from '../db/schema';
import { deleteInBatches } from '../db/sweep';

type Db = Kysely<Database> | Transaction<Database>;

// ---- Browser sessions

export async function insertBrowserSession(db: Db, row: { id: string; tokenHash: string; userId: string; now: Date; authTime: Date; expiresAt: Date }): Promise<void> {
  await db
    .insertInto('browser_sessions')
    .values({ id: row.id, token_hash: row.tokenHash, user_id: row.userId, created_at: row.now, last_seen_at: row.now, auth_time: row.authTime, expires_at: row.expiresAt })
    .execute();
}

/** A browser session by its cookie's hash, with its user and whether the user's tenant is disabled. */
export async function findBrowserSession(db: Db, tokenHash: string): Promise<{ session: BrowserSessionRow; user: UserRow; tenantDisabled: boolean } | undefined> {
  return browserSessionWithUser(db).where('b.token_hash', '=', tokenHash).executeTakeFirst().then(splitBrowserSession);
}

export async function findBrowserSessionById(db: Db, id: string): Promise<{ session: BrowserSessionRow; user: UserRow; tenantDisabled: boolean } | undefined> {
  return browserSessionWithUser(db).where('b.id', '=', id).executeTakeFirst().then(splitBrowserSession);
}

function browserSessionWithUser(db: Db) {
  return db
    .selectFrom('browser_sessions as b')
    .innerJoin('users as u', 'u.id', 'b.user_id')
    .leftJoin('tenants as t', 't.id', 'u.tenant_id')
    .selectAll('u')
    .select([
      'b.id as b_id',
      'b.token_hash as b_token_hash',
      'b.created_at as b_created_at',
      'b.last_seen_at as b_last_seen_at',
      'b.auth_time as b_auth_time',
      'b.expires_at as b_expires_at',
      'b.ended_at as b_ended_at',
      'b.ended_reason as b_ended_reason',
      't.disabled_at as tenant_disabled_at',
    ]);
}

type BrowserSessionJoin = Awaited<ReturnType<ReturnType<typeof browserSessionWithUser>['executeTakeFirstOrThrow']>>;

function splitBrowserSession(row: BrowserSessionJoin | undefined) {
  if (!row) return undefined;
  const { b_id, b_token_hash, b_created_at, b_last_seen_at, b_auth_time, b_expires_at, b_ended_at, b_ended_reason, tenant_disabled_at, ...user } = row;
  return {
    user,
    tenantDisabled: tenant_disabled_at !== null,
    session: {
      id: b_id,
      token_hash: b_token_hash,
      user_id: user.id,
      created_at: b_created_at,
      last_seen_at: b_last_seen_at,
      auth_time: b_auth_time,
      expires_at: b_expires_at,
      ended_at: b_ended_at,
      ended_reason: b_ended_reason,
    },
  };
}

export async function touchBrowserSession(db: Db, id: string, now: Date): Promise<void> {
  await db.updateTable('browser_sessions').set({ last_seen_at: now }).where('id', '=', id).where('ended_at', 'is', null).execute();
}

/** Ends a browser session; false when it had already ended. */
export async function endBrowserSession(db: Db, id: string, reason: string, now: Date): Promise<boolean> {
  const result = await db.updateTable('browser_sessions').set({ ended_at: now, ended_reason: reason }).where('id', '=', id).where('ended_at', 'is', null).executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

// ---- Interactions

export interface InteractionRow {
  id: string;
  kind: 'authorize' | 'logout';
  binding_hash: string;
  csrf_hash: string;
  request: Record<string, unknown>;
  created_at: Date;
  expires_at: Date;
}

export async function insertInteraction(db: Db, row: InteractionRow): Promise<void> {
  await db
    .insertInto('authorization_interactions')
    .values({ ...row, request: JSON.stringify(row.request) })
    .execute();
}

export async function findInteraction(db: Db, id: string): Promise<InteractionRow | undefined> {
  return db.selectFrom('authorization_interactions').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function replaceInteractionCsrf(db: Db, id: string, csrfHash: string): Promise<void> {
  await db.updateTable('authorization_interactions').set({ csrf_hash: csrfHash }).where('id', '=', id).execute();
}

/** Deletes an interaction once its form has been answered; false when another request got there first. */
export async function deleteInteraction(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('authorization_interactions').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

// ---- Consents

export interface ConsentRow {
  user_id: string;
  client_id: string;
  scopes: string[];
  resources: string[];
  created_at: Date;
  updated_at: Date;
}

export async function findConsent(db: Db, userId: string, clientId: string): Promise<ConsentRow | undefined> {
  return db.selectFrom('consents').selectAll().where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
}

/** Records a consent, adding the scopes and resources to what the user had already granted the client. */
export async function grantConsent(db: Db, consent: { userId: string; clientId: string; scopes: readonly string[]; resources: readonly string[]; now: Date }): Promise<void> {
  await db
    .insertInto('consents')
    .values({
      user_id: consent.userId,
      client_id: consent.clientId,
      // Sorted, as the union below keeps them.
      scopes: JSON.stringify([...new Set(consent.scopes)].sort()),
      resources: JSON.stringify([...new Set(consent.resources)].sort()),
      created_at: consent.now,
      updated_at: consent.now,
    })
    .onConflict((oc) =>
      oc.columns(['user_id', 'client_id']).doUpdateSet({
        // The union, sorted.
        scopes: sql`(select coalesce(jsonb_agg(distinct s collate "C" order by s collate "C"), '[]'::jsonb) from jsonb_array_elements_text(consents.scopes || excluded.scopes) as s)`,
        resources: sql`(select coalesce(jsonb_agg(distinct r collate "C" order by r collate "C"), '[]'::jsonb) from jsonb_array_elements_text(consents.resources || excluded.resources) as r)`,
        updated_at: consent.now,
      }),
    )
    .execute();
}

/** A user's consents with each client's name, most recent first. */
export async function listConsents(db: Db, userId: string): Promise<Array<ConsentRow & { client_name: string }>> {
  return db
    .selectFrom('consents as c')
    .innerJoin('oauth_clients as o', 'o.id', 'c.client_id')
    .selectAll('c')
    .select('o.name as client_name')
    .where('c.user_id', '=', userId)
    .orderBy('c.updated_at', 'desc')
    .orderBy('c.client_id')
    .execute();
}

export async function deleteConsent(db: Db, userId: string, clientId: string): Promise<boolean> {
  const result = await db.deleteFrom('consents').where('user_id', '=', userId).where('client_id', '=', clientId).executeTakeFirst();
  return result.numDeletedRows > 0n;
}

// ---- Authorization codes

export interface NewCode {
  codeHash: string;
  clientId: string;
  userId: string;
  redirectUri: string;
  redirectUriSent: boolean;
  codeChallenge: string;
  scopes: readonly string[];
  resources: readonly string[];
  nonce: string | null;
  authTime: Date;
  browserSessionId: string | null;
  now: Date;
  expiresAt: Date;
}

export async function insertCode(db: Db, code: NewCode): Promise<void> {
  await db
    .insertInto('authorization_codes')
    .values({
      code_hash: code.codeHash,
      client_id: code.clientId,
      user_id: code.userId,
      redirect_uri: code.redirectUri,
      redirect_uri_sent: code.redirectUriSent,
      code_challenge: code.codeChallenge,
      scopes: JSON.stringify(code.scopes),
      resources: JSON.stringify(code.resources),
      nonce: code.nonce,
      auth_time: code.authTime,
      browser_session_id: code.browserSessionId,
      created_at: code.now,
      expires_at: code.expiresAt,
    })
    .execute();
}

/**
 * A code's row, locked until the transaction ends (two redemptions of one code are serialised
 * here), with its user, whether the user's tenant is disabled and whether the browser session it
 * came from has ended since: one round trip for everything a redemption checks.
 */
export async function lockCode(
  db: Transaction<Database>,
  codeHash: string,
): Promise<{ code: AuthorizationCodeRow; user: UserRow | undefined; tenantDisabled: boolean; browserSessionEnded: boolean } | undefined> {
  const row = await db
    .selectFrom('authorization_codes as c')
    .leftJoin('users as u', 'u.id', 'c.user_id')
    .leftJoin('tenants as t', 't.id', 'u.tenant_id')
    .leftJoin('browser_sessions as b', 'b.id', 'c.browser_session_id')
    .selectAll('c')
    .select([
      'u.id as u_id',
      'u.email as u_email',
      'u.password_hash as u_password_hash',
      'u.role as u_role',
      'u.tenant_id as u_tenant_id',
      'u.created_at as u_created_at',
      'u.updated_at as u_updated_at',
      'u.last_sign_in_at as u_last_sign_in_at',
      'u.disabled_at as u_disabled_at',
      't.disabled_at as tenant_disabled_at',
      'b.ended_at as browser_ended_at',
    ])
    .where('c.code_hash', '=', codeHash)
    .forUpdate('c')
    .executeTakeFirst();
  if (!row) return undefined;
  const { u_id, u_email, u_password_hash, u_role, u_tenant_id, u_created_at, u_updated_at, u_last_sign_in_at, u_disabled_at, tenant_disabled_at, browser_ended_at, ...code } = row;
  const user: UserRow | undefined =
    u_id === null
      ? undefined
      : {
          id: u_id,
          email: u_email as string,
          password_hash: u_password_hash as string,
          role: u_role as string,
          tenant_id: u_tenant_id,
          created_at: u_created_at as Date,
          updated_at: u_updated_at as Date,
          last_sign_in_at: u_last_sign_in_at,
          disabled_at: u_disabled_at,
        };
  return { code, user, tenantDisabled: tenant_disabled_at !== null, browserSessionEnded: browser_ended_at !== null };
}

export async function markCodeRedeemed(db: Db, codeHash: string, redeemed: { now: Date; sessionId: string; jti: string; accessTokenExpiresAt: Date }): Promise<void> {
  await db
    .updateTable('authorization_codes')
    .set({ used_at: redeemed.now, session_id: redeemed.sessionId, access_token_jti: redeemed.jti, access_token_expires_at: redeemed.accessTokenExpiresAt })
    .where('code_hash', '=', codeHash)
    .execute();
}

// ---- Sweeps

/** Deletes interactions past their expiry, browser sessions past their absolute expiry, and codes a day past theirs. */
export async function sweepExpired(db: Kysely<Database>, now: Date): Promise<void> {
  // In bounded batches (src/db/sweep.ts): a backlog (a flood of abandoned sign-in pages) is never one long delete.
  await deleteInBatches(db, { table: 'authorization_interactions', key: 'id', where: sql`expires_at < ${now}` });
  // A used code is kept a day past its expiry: presented again meanwhile, it still revokes its tokens.
  await deleteInBatches(db, { table: 'authorization_codes', key: 'code_hash', where: sql`expires_at < ${new Date(now.getTime() - 86_400_000)}` });
  await deleteInBatches(db, { table: 'browser_sessions', key: 'id', where: sql`expires_at < ${now}` });
}
