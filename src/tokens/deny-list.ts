import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema';

/**
 * The `jti` deny-list of revoked JWT access tokens (docs/http-api.md "HTTP": revocation): one row per revoked
 * token, kept until the token's own `exp` (then swept), shared by every instance. Every token kind
 * that issues JWT access tokens checks and writes it here.
 */

type Db = Kysely<Database> | Transaction<Database>;

export async function accessTokenRevoked(db: Db, jti: string): Promise<boolean> {
  return (await db.selectFrom('revoked_access_tokens').select('jti').where('jti', '=', jti).executeTakeFirst()) !== undefined;
}

/** Revokes one token by `jti`; revoking it again changes nothing. */
export async function denyAccessToken(db: Db, token: { jti: string; clientId: string; expiresAt: Date; now: Date }): Promise<void> {
  await db
    .insertInto('revoked_access_tokens')
    .values({ jti: token.jti, client_id: token.clientId, expires_at: token.expiresAt, revoked_at: token.now })
    .onConflict((oc) => oc.column('jti').doNothing())
    .execute();
}

/** Whether any of `jtis` is revoked: one query, for a token and the tokens it was delegated from. */
export async function anyAccessTokenRevoked(db: Db, jtis: readonly string[]): Promise<boolean> {
  if (jtis.length === 0) return false;
  return (await db.selectFrom('revoked_access_tokens').select('jti').where('jti', 'in', jtis).limit(1).executeTakeFirst()) !== undefined;
}
