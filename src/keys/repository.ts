import { sql, type Kysely, type Transaction } from 'kysely';
import type { Envelope } from '../crypto/envelope';
import type { Database, KeyState, SigningKeyRow } from '../db/schema';
import type { KeyMaterial } from './material';

type Db = Kysely<Database> | Transaction<Database>;

/** Purpose bound into every key's ciphertext (AAD): a JWT signing key can only ever be one. */
export const SIGNING_PURPOSE = 'jwt-signing';

/** The channel on which every key change is announced to every instance. */
export const KEYS_CHANNEL = 'idp_keys';

/** One advisory lock serialises every key transition across instances. */
const KEYS_LOCK = 0x1d9_4b17;

export const PUBLISHED_STATES: readonly KeyState[] = ['current', 'next', 'previous'];

export async function lockKeys(trx: Transaction<Database>): Promise<void> {
  await sql`select pg_advisory_xact_lock(${KEYS_LOCK})`.execute(trx);
}

/**
 * The database server's clock at this moment (`clock_timestamp()`, not the transaction's start time,
 * which precedes any wait for the lock): the one clock every instance shares, whatever its own says.
 */
export async function databaseTime(db: Db): Promise<Date> {
  const { rows } = await sql<{ now: Date | string }>`select clock_timestamp() as now`.execute(db);
  return new Date((rows[0] as { now: Date | string }).now);
}

export async function announceKeyChange(trx: Transaction<Database>): Promise<void> {
  await sql`select pg_notify(${KEYS_CHANNEL}, 'changed')`.execute(trx);
}

export function listKeys(db: Db): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'desc').orderBy('kid').execute();
}

export function listPublishedKeys(db: Db): Promise<SigningKeyRow[]> {
  return db
    .selectFrom('signing_keys')
    .selectAll()
    .where('state', 'in', PUBLISHED_STATES)
    .orderBy('created_at', 'desc')
    .execute();
}

export function findKey(db: Db, kid: string): Promise<SigningKeyRow | undefined> {
  return db.selectFrom('signing_keys').selectAll().where('kid', '=', kid).executeTakeFirst();
}

export async function insertKey(
  db: Db,
  material: KeyMaterial,
  envelope: Envelope,
  state: 'current' | 'next',
  now: Date,
): Promise<void> {
  await db
    .insertInto('signing_keys')
    .values({
      kid: material.kid,
      state,
      purpose: SIGNING_PURPOSE,
      alg: 'RS256',
      bits: material.bits,
      public_jwk: JSON.stringify(material.publicJwk),
      certificate: material.certificate,
      x5t_s256: material.x5tS256,
      encrypted_private_key: envelope.ciphertext,
      wrapped_data_key: envelope.wrappedDataKey,
      mek_id: envelope.mekId,
      envelope_version: envelope.version,
      created_at: now,
      published_at: now,
      activated_at: state === 'current' ? now : null,
      deactivated_at: null,
      retired_at: null,
    })
    .execute();
}

export async function setState(
  db: Db,
  kid: string,
  from: KeyState,
  to: 'current' | 'previous',
  now: Date,
): Promise<void> {
  const result = await db
    .updateTable('signing_keys')
    .set(to === 'current' ? { state: 'current', activated_at: now } : { state: 'previous', deactivated_at: now })
    .where('kid', '=', kid)
    .where('state', '=', from)
    .executeTakeFirst();
  if (result.numUpdatedRows !== 1n) throw new Error(`key ${kid} was not ${from}`);
}

/** Retires or revokes a key: out of the JWKS, and its private material destroyed. */
export async function destroyKey(db: Db, kid: string, to: 'retired' | 'revoked', now: Date): Promise<void> {
  await db
    .updateTable('signing_keys')
    .set({
      state: to,
      retired_at: now,
      encrypted_private_key: null,
      wrapped_data_key: null,
      mek_id: null,
      envelope_version: null,
      deactivated_at: sql<Date>`coalesce(deactivated_at, ${now})`,
    })
    .where('kid', '=', kid)
    .execute();
}

export function envelopeOf(row: SigningKeyRow): Envelope | undefined {
  if (row.encrypted_private_key === null || row.wrapped_data_key === null || row.mek_id === null) return undefined;
  return {
    version: row.envelope_version ?? 0,
    mekId: row.mek_id,
    wrappedDataKey: Buffer.from(row.wrapped_data_key),
    ciphertext: Buffer.from(row.encrypted_private_key),
  };
}

export async function updateEnvelope(db: Db, kid: string, envelope: Envelope): Promise<void> {
  await db
    .updateTable('signing_keys')
    .set({ wrapped_data_key: envelope.wrappedDataKey, mek_id: envelope.mekId, envelope_version: envelope.version })
    .where('kid', '=', kid)
    .execute();
}
