import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema';
import { deleteInBatches } from '../db/sweep';

/**
 * The replay guard of client assertions (SPEC §10): a `jti` is accepted once per client until its
 * assertion expires, on every instance, because the primary key (client_id, jti) lives in Postgres.
 */

/** The longest `jti` accepted (a UUID is 36 characters; openid-client sends 43). */
export const MAX_JTI_LENGTH = 256;

/**
 * Records the `jti` of an accepted assertion until `expiresAt`. True when it was new (or its earlier
 * use has expired and not been swept yet); false for a replay. One statement: two instances racing on
 * the same `jti` cannot both get true.
 */
export async function recordAssertionJti(db: Kysely<Database>, clientId: string, jti: string, expiresAt: Date, now: Date): Promise<boolean> {
  const result = await db
    .insertInto('client_assertion_jtis')
    .values({ client_id: clientId, jti, expires_at: expiresAt })
    .onConflict((oc) =>
      oc
        .columns(['client_id', 'jti'])
        .doUpdateSet({ expires_at: expiresAt })
        .where('client_assertion_jtis.expires_at', '<=', now),
    )
    .executeTakeFirst();
  return (result.numInsertedOrUpdatedRows ?? 0n) === 1n;
}

/**
 * Deletes the jtis of assertions that have expired, in bounded batches. The table's primary key has
 * two columns, so the batches are found by `ctid` (the row's physical address, stable while the
 * statement holds the row locked; Postgres finds rows by it directly).
 */
export function sweepAssertionJtis(db: Kysely<Database>, now: Date): Promise<number> {
  return deleteInBatches(db, { table: 'client_assertion_jtis', key: 'ctid', where: sql`expires_at <= ${now}` });
}
