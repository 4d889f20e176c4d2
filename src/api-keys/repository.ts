import { keysetPage, type KeysetPosition } from '../http/cursor';
import type { Kysely, Transaction } from 'kysely';
import type { ApiKeyRow, Database } from '../db/schema';

type Db = Kysely<Database> | Transaction<Database>;

/** The channel of the api_keys and owner triggers: `key:<id>`, `user:<id>`, `client:<id>`, `tenant:<id>`. */
export const API_KEYS_CHANNEL = 'idp_api_keys';

export type ApiKeyOwner = { kind: 'user'; id: string } | { kind: 'client'; id: string };

/** What the owner of a key may do now, read with the key. */
export interface OwnerState {
  owner: ApiKeyOwner;
  tenantId: string | null;
  disabled: boolean;
  /** The owner's tenant exists and is disabled. */
  tenantDisabled: boolean;
  /** A client's allowed scopes and audiences (the first the default); undefined for a user. */
  clientScopes: readonly string[] | undefined;
  clientAudiences: readonly string[] | undefined;
  clientTokenTtlSeconds: number | null;
}

/** A key with its owner's state, as the cache holds it. Never leaves the process with its hash. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  owner: ApiKeyOwner;
  tenantId: string | null;
  scopes: readonly string[];
  secretHash: Uint8Array;
  expiresAt: Date | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  ownerState: OwnerState;
}

export function ownerOf(row: Pick<ApiKeyRow, 'user_id' | 'client_id'>): ApiKeyOwner {
  return row.user_id !== null ? { kind: 'user', id: row.user_id } : { kind: 'client', id: row.client_id as string };
}

function selectWithOwner(db: Db) {
  return db
    .selectFrom('api_keys as k')
    .leftJoin('users as u', 'u.id', 'k.user_id')
    .leftJoin('oauth_clients as c', 'c.id', 'k.client_id')
    .leftJoin('tenants as t', 't.id', 'k.tenant_id')
    .selectAll('k')
    .select([
      'u.disabled_at as user_disabled_at',
      'c.disabled_at as client_disabled_at',
      'c.scopes as client_scopes',
      'c.audiences as client_audiences',
      'c.token_ttl_seconds as client_token_ttl_seconds',
      't.disabled_at as tenant_disabled_at',
    ]);
}

type RowWithOwner = Awaited<ReturnType<ReturnType<typeof selectWithOwner>['executeTakeFirstOrThrow']>>;

function toRecord(row: RowWithOwner): ApiKeyRecord {
  const owner = ownerOf(row);
  return {
    id: row.id,
    name: row.name,
    owner,
    tenantId: row.tenant_id,
    scopes: Object.freeze([...row.scopes]),
    secretHash: row.secret_hash,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
    ownerState: {
      owner,
      tenantId: row.tenant_id,
      disabled: (owner.kind === 'user' ? row.user_disabled_at : row.client_disabled_at) !== null,
      tenantDisabled: row.tenant_disabled_at !== null,
      clientScopes: row.client_scopes ? Object.freeze([...row.client_scopes]) : undefined,
      clientAudiences: row.client_audiences ? Object.freeze([...row.client_audiences]) : undefined,
      clientTokenTtlSeconds: row.client_token_ttl_seconds,
    },
  };
}

export async function findApiKeyRecord(db: Db, id: string): Promise<ApiKeyRecord | undefined> {
  const row = await selectWithOwner(db).where('k.id', '=', id).executeTakeFirst();
  return row && toRecord(row);
}

export async function findApiKeyRecords(db: Db, ids: readonly string[]): Promise<ApiKeyRecord[]> {
  if (ids.length === 0) return [];
  return (await selectWithOwner(db).where('k.id', 'in', ids).execute()).map(toRecord);
}

export function findApiKey(db: Db, id: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The owner's state, or undefined when it does not exist. */
export async function findOwnerState(db: Db, owner: ApiKeyOwner): Promise<OwnerState | undefined> {
  if (owner.kind === 'user') {
    const row = await db
      .selectFrom('users as u')
      .leftJoin('tenants as t', 't.id', 'u.tenant_id')
      .select(['u.tenant_id', 'u.disabled_at', 't.disabled_at as tenant_disabled_at'])
      .where('u.id', '=', owner.id)
      .executeTakeFirst();
    if (!row) return undefined;
    return {
      owner,
      tenantId: row.tenant_id,
      disabled: row.disabled_at !== null,
      tenantDisabled: row.tenant_disabled_at !== null,
      clientScopes: undefined,
      clientAudiences: undefined,
      clientTokenTtlSeconds: null,
    };
  }
  const row = await db
    .selectFrom('oauth_clients as c')
    .leftJoin('tenants as t', 't.id', 'c.tenant_id')
    .select(['c.tenant_id', 'c.disabled_at', 'c.scopes', 'c.audiences', 'c.token_ttl_seconds', 't.disabled_at as tenant_disabled_at'])
    .where('c.id', '=', owner.id)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    owner,
    tenantId: row.tenant_id,
    disabled: row.disabled_at !== null,
    tenantDisabled: row.tenant_disabled_at !== null,
    clientScopes: Object.freeze([...row.scopes]),
    clientAudiences: Object.freeze([...row.audiences]),
    clientTokenTtlSeconds: row.token_ttl_seconds,
  };
}

/** Takes a row lock on the owner, so that concurrent creations for one owner count its keys one at a time. */
export async function lockOwner(trx: Transaction<Database>, owner: ApiKeyOwner): Promise<void> {
  if (owner.kind === 'user') await trx.selectFrom('users').select('id').where('id', '=', owner.id).forUpdate().execute();
  else await trx.selectFrom('oauth_clients').select('id').where('id', '=', owner.id).forUpdate().execute();
}

export interface NewApiKeyRow {
  id: string;
  name: string;
  owner: ApiKeyOwner;
  tenantId: string | null;
  scopes: readonly string[];
  secretHash: Uint8Array;
  expiresAt: Date | null;
  createdBy: string;
  now: Date;
}

export async function insertApiKey(db: Db, key: NewApiKeyRow): Promise<ApiKeyRow> {
  return db
    .insertInto('api_keys')
    .values({
      id: key.id,
      name: key.name,
      user_id: key.owner.kind === 'user' ? key.owner.id : null,
      client_id: key.owner.kind === 'client' ? key.owner.id : null,
      tenant_id: key.tenantId,
      scopes: JSON.stringify(key.scopes),
      secret_hash: key.secretHash,
      expires_at: key.expiresAt,
      created_at: key.now,
      created_by: key.createdBy,
      last_used_at: null,
      revoked_at: null,
      revoked_by: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Keys of an owner that still work or could work again (not revoked, not expired). */
export async function countLiveKeys(db: Db, owner: ApiKeyOwner, now: Date): Promise<number> {
  const row = await db
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where(owner.kind === 'user' ? 'user_id' : 'client_id', '=', owner.id)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Revokes a key (once); returns the row when this call revoked it. */
export async function revokeApiKeyRow(db: Db, id: string, actor: string, now: Date): Promise<ApiKeyRow | undefined> {
  return db
    .updateTable('api_keys')
    .set({ revoked_at: now, revoked_by: actor })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Records a use, at most once per `intervalMs` across every instance: the condition makes a
 * second instance's write within the interval a no-op. (The trigger ignores this column, so it
 * invalidates no cache.)
 */
export async function touchApiKey(db: Db, id: string, now: Date, intervalMs: number): Promise<boolean> {
  const result = await db
    .updateTable('api_keys')
    .set({ last_used_at: now })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<=', new Date(now.getTime() - intervalMs))]))
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

export interface ApiKeyFilter {
  userId?: string;
  clientId?: string;
  tenantId?: string;
  limit: number;
  cursor?: KeysetPosition;
}

/** Keys newest first in keyset pages over (created_at, id). */
export async function listApiKeys(db: Db, filter: ApiKeyFilter): Promise<{ rows: ApiKeyRow[]; next?: KeysetPosition }> {
  let query = db.selectFrom('api_keys').selectAll();
  if (filter.userId !== undefined) query = query.where('user_id', '=', filter.userId);
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (filter.tenantId !== undefined) query = query.where('tenant_id', '=', filter.tenantId);
  const cursor = filter.cursor;
  if (cursor) {
    // A row comparison: one index range from the cursor on (an `or` would read every row before it).
    query = query.where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(cursor.at, cursor.id)));
  }
  const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit + 1).execute();
  const { items, next } = keysetPage(rows, filter.limit, (row) => ({ at: row.created_at, id: row.id }));
  return next ? { rows: items, next } : { rows: items };
}

/** The RFC 7009 deny-list of JWT access tokens (shared with client access tokens). */
