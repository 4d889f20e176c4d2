import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import { genericPlanKeys, prepared, type DatabaseHandle } from '../db';
import { keysetPage, type KeysetPosition } from '../http/cursor';
import type { ClientRegistrar, Database, StoredClientJwks, StoredRegistrationMetadata, TokenEndpointAuthMethod } from '../db/schema';
import { defaultGrantTypes, resolveGrantTypes } from './grant-types';

type Db = Kysely<Database> | Transaction<Database>;

/** A client as the rest of the service sees it (the tenant's state folded in). Secrets are hashes only. */
export interface Client {
  id: string;
  name: string;
  /**
   * The scopes it may request. A dynamically registered client's are those it registered (RFC 7591
   * `scope`), and none when it registered none: it is then bounded by the flow's rules alone.
   */
  scopes: readonly string[];
  /** Allowed `aud` values; the first is the default. */
  audiences: readonly string[];
  tenantId: string | null;
  /** The client's tenant exists and is disabled: no tokens, and its tokens are inactive. */
  tenantDisabled: boolean;
  /** Per-client access token lifetime; null means IDP_CLIENT_TOKEN_TTL. */
  tokenTtlSeconds: number | null;
  disabledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /**
   * How the client authenticates: a secret (Basic or form), assertions signed by its keys (docs/private-key-jwt.md
   * "Clients without shared secrets: `private_key_jwt`"), or nothing but its `client_id` (a public client, docs/oauth.md "Public clients".
   */
  authMethod: 'client_secret' | 'private_key_jwt' | 'none';
  /** The RFC 7591 name it was registered with (a secret client accepts both Basic and the form). */
  tokenEndpointAuthMethod: TokenEndpointAuthMethod;
  /** SHA-256 of the secret; null for a private_key_jwt or public client, which have none. */
  secretHash: Uint8Array | null;
  previousSecretHash: Uint8Array | null;
  previousSecretExpiresAt: Date | null;
  /** private_key_jwt: the registered public keys, or null when they are published at `jwksUri`. */
  jwks: StoredClientJwks | null;
  jwksUri: string | null;
  /** The authorization-code flow's redirect URIs, matched by src/clients/redirect-uris.ts. */
  redirectUris: readonly string[];
  postLogoutRedirectUris: readonly string[];
  /** The grants it may use at the token endpoint, resolved: the default by rule when none were set. */
  grantTypes: readonly string[];
  /** Never asked for consent. */
  firstParty: boolean;
  registeredBy: ClientRegistrar;
}

/** The channel the `idp_clients` trigger notifies on: payload `client:<id>` or `tenant:<id>`. */
export const CLIENTS_CHANNEL = 'idp_clients';

/** The columns a Client is made of. */
const CLIENT_COLUMNS = [
  'c.id',
  'c.name',
  'c.scopes',
  'c.audiences',
  'c.tenant_id',
  'c.token_ttl_seconds',
  'c.disabled_at',
  'c.created_at',
  'c.updated_at',
  'c.token_endpoint_auth_method',
  'c.secret_hash',
  'c.previous_secret_hash',
  'c.previous_secret_expires_at',
  'c.jwks',
  'c.jwks_uri',
  'c.redirect_uris',
  'c.post_logout_redirect_uris',
  'c.grant_types',
  'c.first_party',
  'c.registered_by',
] as const;

/** The ones clientReader sends as milliseconds since the epoch. */
const TIMESTAMP_COLUMNS: ReadonlySet<string> = new Set(['c.disabled_at', 'c.created_at', 'c.updated_at', 'c.previous_secret_expires_at']);

function selectClientRows(db: Db) {
  return db.selectFrom('oauth_clients as c').select(CLIENT_COLUMNS);
}

/** With the tenant's state folded in. */
function selectClients(db: Db) {
  return selectClientRows(db).leftJoin('tenants as t', 't.id', 'c.tenant_id').select('t.disabled_at as tenant_disabled_at');
}

type ClientRow = Awaited<ReturnType<ReturnType<typeof selectClientRows>['executeTakeFirstOrThrow']>>;

/** A client without its tenant's state. */
type TenantlessClient = Omit<Client, 'tenantDisabled'>;

function toTenantlessClient(row: ClientRow): TenantlessClient {
  return {
    id: row.id,
    name: row.name,
    scopes: Object.freeze([...row.scopes]),
    audiences: Object.freeze([...row.audiences]),
    tenantId: row.tenant_id,
    tokenTtlSeconds: row.token_ttl_seconds,
    disabledAt: row.disabled_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    authMethod: authMethodOf(row.token_endpoint_auth_method),
    tokenEndpointAuthMethod: row.token_endpoint_auth_method,
    secretHash: row.secret_hash,
    previousSecretHash: row.previous_secret_hash,
    previousSecretExpiresAt: row.previous_secret_expires_at,
    jwks: row.jwks,
    jwksUri: row.jwks_uri,
    redirectUris: Object.freeze([...row.redirect_uris]),
    postLogoutRedirectUris: Object.freeze([...row.post_logout_redirect_uris]),
    grantTypes: Object.freeze([...resolveGrantTypes(row.grant_types, row.redirect_uris)]),
    firstParty: row.first_party,
    registeredBy: row.registered_by,
  };
}

function toClient(row: ClientRow & { tenant_disabled_at: Date | null }): Client {
  return { ...toTenantlessClient(row), tenantDisabled: row.tenant_disabled_at !== null };
}

export function authMethodOf(method: TokenEndpointAuthMethod): Client['authMethod'] {
  return method === 'client_secret_basic' || method === 'client_secret_post' ? 'client_secret' : method;
}

export async function findClient(db: Db, id: string): Promise<Client | undefined> {
  const row = await selectClients(db).where('c.id', '=', id).executeTakeFirst();
  return row && toClient(row);
}

/**
 * A client as the client cache reads it: without its tenant's state, which the cache keeps apart
 * (clients are many, their tenants few), and with when it was last used (by any instance), so that a
 * use within the interval writes nothing.
 */
export interface ClientRead {
  /** Its tenantDisabled is false until the cache, which knows the tenants' states, sets it. */
  client: Client;
  lastUsedAt: Date | null;
}

/** A client row as `clientReader` reads it: one JSON array, in CLIENT_COLUMNS' order and then its last use (oauth_client_uses). */
type ClientJsonRow = [
  id: string,
  name: string,
  scopes: string[],
  audiences: string[],
  tenantId: string | null,
  tokenTtlSeconds: number | null,
  disabledAt: number | null,
  createdAt: number,
  updatedAt: number,
  tokenEndpointAuthMethod: TokenEndpointAuthMethod,
  secretHashHex: string | null,
  previousSecretHashHex: string | null,
  previousSecretExpiresAt: number | null,
  jwks: StoredClientJwks | null,
  jwksUri: string | null,
  redirectUris: string[],
  postLogoutRedirectUris: string[],
  grantTypes: string[] | null,
  firstParty: boolean,
  registeredBy: ClientRegistrar,
  lastUsedAt: number | null,
];

/** A frozen empty list, shared by every client read with none (most have no redirect URIs). */
const NONE: readonly string[] = Object.freeze([]);
/** A list parsed for this row alone, frozen in place rather than copied. */
const frozen = (list: string[]): readonly string[] => (list.length === 0 ? NONE : Object.freeze(list));
/** Milliseconds since the epoch, as the statement sends timestamps (no text to parse). */
const dateOrNull = (ms: number | null): Date | null => (ms === null ? null : new Date(ms));
/** A fresh array, not a slice of the driver's shared 8 KiB slab, which a cached client would keep alive. */
const jsonBytes = (hex: string | null): Uint8Array | null => (hex === null ? null : new Uint8Array(Buffer.from(hex, 'hex')));

/**
 * The client of one row, built in one step: its lists are the ones JSON.parse made for this row
 * (frozen, not copied), its timestamps numbers. Its tenant's state is false until the cache sets it.
 */
function fromJsonRow(json: ClientJsonRow): ClientRead {
  const [id, name, scopes, audiences, tenantId, tokenTtlSeconds, disabledAt, createdAt, updatedAt, method, secretHash, previousSecretHash, previousSecretExpiresAt, jwks, jwksUri, redirectUris, postLogoutRedirectUris, grantTypes, firstParty, registeredBy, lastUsedAt] = json;
  const redirects = frozen(redirectUris);
  const client: Client = {
    id,
    name,
    scopes: frozen(scopes),
    audiences: frozen(audiences),
    tenantId,
    tenantDisabled: false,
    tokenTtlSeconds,
    disabledAt: dateOrNull(disabledAt),
    createdAt: new Date(createdAt),
    updatedAt: new Date(updatedAt),
    authMethod: authMethodOf(method),
    tokenEndpointAuthMethod: method,
    secretHash: jsonBytes(secretHash),
    previousSecretHash: jsonBytes(previousSecretHash),
    previousSecretExpiresAt: dateOrNull(previousSecretExpiresAt),
    jwks,
    jwksUri,
    redirectUris: redirects,
    postLogoutRedirectUris: frozen(postLogoutRedirectUris),
    grantTypes: frozen(grantTypes ?? [...defaultGrantTypes(redirects)]),
    firstParty,
    registeredBy,
  };
  return { client, lastUsedAt: dateOrNull(lastUsedAt) };
}

/** What the client cache reads clients with: `read(ids)` gives the clients of `ids` that exist. */
export type ClientReader = (ids: readonly string[]) => Promise<Map<string, ClientRead>>;

/**
 * The clients of `ids` that exist, in one statement (`id = any($1)`, an index scan of the primary key,
 * prepared): the client cache reads the clients missing at the same moment together, so this is the
 * token endpoint's cost of a client not in memory. What makes it cheap, all measured
 * (docs/scale-and-faults.md "Clients not in memory"):
 * - each row is one JSON array (`json_build_array`), which the driver hands to one JSON.parse,
 *   instead of 21 columns each through its own type parser (timestamps, bytea, jsonb): a third of the
 *   driver's time per statement; its timestamps are numbers, and the client is built from it in one step;
 * - the statement is compiled once, here, not built again for every batch, and sent on the
 *   process's statement lane (DatabaseHandle.laneRows), past Kysely and the pool;
 * - its ids are padded (genericPlanKeys) so that Postgres plans it once per connection, not at
 *   every execution;
 * - the client's last use (oauth_client_uses) comes by a scalar subquery, one primary-key probe a
 *   row: as a join it was planned as a hash join over the whole table while that was small, and the
 *   generic plan, kept, scanned it ever after; an operator's client has no use recorded (see
 *   ClientCache.recordUse), so its row skips the probe.
 */
export function clientReader(handle: Pick<DatabaseHandle, 'db' | 'laneRows'>): ClientReader {
  // Milliseconds, truncated as a Date made from the text would be: a number is cheaper to send and to read.
  const milliseconds = (ref: RawBuilder<unknown>) => sql`floor(extract(epoch from ${ref}) * 1000)::int8`;
  const columns = [...CLIENT_COLUMNS.map((column) => {
    const ref = sql.ref(column);
    if (column === 'c.secret_hash' || column === 'c.previous_secret_hash') return sql`encode(${ref}, 'hex')`;
    if (TIMESTAMP_COLUMNS.has(column)) return milliseconds(ref);
    return ref;
  }), milliseconds(sql`(case when c.registered_by <> 'operator' then (select u.used_at from oauth_client_uses u where u.client_id = c.id) end)`)];
  const statement = prepared(
    'idp_clients_by_id',
    handle.db
      .selectFrom('oauth_clients as c')
      .select(sql<ClientJsonRow>`json_build_array(${sql.join(columns)})`.as('row'))
      .where('c.id', '=', (eb) => eb.fn.any(eb.val<string[]>([])))
      .compile(),
  );
  return async (ids) => {
    const rows = await handle.laneRows(statement, [genericPlanKeys(ids)]);
    const found = new Map<string, ClientRead>();
    for (const { row } of rows) {
      const read = fromJsonRow(row);
      found.set(read.client.id, read);
    }
    return found;
  };
}

/** Whether each of the tenants of `ids` that exist is disabled, in one statement. */
export async function findTenantsDisabled(db: Db, ids: readonly string[]): Promise<Map<string, boolean>> {
  const query = db
    .selectFrom('tenants')
    .select(['id', 'disabled_at'])
    .where('id', '=', (eb) => eb.fn.any(eb.val(genericPlanKeys(ids))))
    .compile();
  const { rows } = await db.executeQuery(prepared('idp_tenants_disabled', query));
  return new Map(rows.map((row) => [row.id, row.disabled_at !== null]));
}

export interface ClientPage {
  clients: Client[];
  /** Where the next page starts (the last row's position); absent on the last page. */
  next?: KeysetPosition;
}

/**
 * Clients by creation, newest first, in keyset pages over (created_at, id) as the users are listed
 * (stable while clients are registered meanwhile): each page is a range of oauth_clients_created_at_id,
 * however many clients there are and however deep the cursor.
 */
export async function listClients(db: Db, page: { limit: number; after?: KeysetPosition }): Promise<ClientPage> {
  let query = selectClients(db);
  const after = page.after;
  // A row comparison, one index range from the cursor on (the equivalent `or` reads every row before it).
  if (after) query = query.where((eb) => eb(eb.refTuple('c.created_at', 'c.id'), '<', eb.tuple(after.at, after.id)));
  const rows = await query.orderBy('c.created_at', 'desc').orderBy('c.id', 'desc').limit(page.limit + 1).execute();
  const { items, next } = keysetPage(rows, page.limit, (row) => ({ at: row.created_at, id: row.id }));
  const clients = items.map(toClient);
  return next ? { clients, next } : { clients };
}

/** A client's keys (private_key_jwt): exactly one of the two. */
export type ClientKeySource = { jwks: StoredClientJwks; jwksUri?: undefined } | { jwksUri: string; jwks?: undefined };

export interface NewClientRow {
  id: string;
  name: string;
  /** A secret's hash, or null with `keys` (a private_key_jwt client) or for a public client. */
  secretHash: Uint8Array | null;
  keys?: ClientKeySource;
  /** Default: client_secret_basic with a secret, private_key_jwt with keys, none without either. */
  tokenEndpointAuthMethod?: TokenEndpointAuthMethod;
  redirectUris?: readonly string[];
  postLogoutRedirectUris?: readonly string[];
  /** Null or absent: the default by rule. */
  grantTypes?: readonly string[] | null;
  firstParty?: boolean;
  registeredBy?: ClientRegistrar;
  /** A dynamic registration's other metadata (docs/agents.md "Dynamic client registration". */
  registrationMetadata?: StoredRegistrationMetadata;
  scopes: readonly string[];
  audiences: readonly string[];
  tenantId: string | null;
  tokenTtlSeconds: number | null;
  now: Date;
}

export async function insertClient(db: Db, client: NewClientRow): Promise<void> {
  await db
    .insertInto('oauth_clients')
    .values({
      id: client.id,
      name: client.name,
      secret_hash: client.secretHash,
      previous_secret_hash: null,
      previous_secret_expires_at: null,
      scopes: JSON.stringify(client.scopes),
      audiences: JSON.stringify(client.audiences),
      tenant_id: client.tenantId,
      token_ttl_seconds: client.tokenTtlSeconds,
      disabled_at: null,
      created_at: client.now,
      updated_at: client.now,
      jwks: client.keys?.jwks ? JSON.stringify(client.keys.jwks) : null,
      jwks_uri: client.keys?.jwksUri ?? null,
      token_endpoint_auth_method: client.tokenEndpointAuthMethod ?? (client.secretHash ? 'client_secret_basic' : client.keys ? 'private_key_jwt' : 'none'),
      redirect_uris: JSON.stringify(client.redirectUris ?? []),
      post_logout_redirect_uris: JSON.stringify(client.postLogoutRedirectUris ?? []),
      grant_types: client.grantTypes ? JSON.stringify(client.grantTypes) : null,
      first_party: client.firstParty ?? false,
      registered_by: client.registeredBy ?? 'operator',
      registration_metadata: client.registrationMetadata ? JSON.stringify(client.registrationMetadata) : null,
    })
    .execute();
}

/**
 * Replaces a client's keys; a client that had a secret loses it (and its previous one) and
 * authenticates with private_key_jwt from now on. False when there is no such client.
 */
export async function replaceClientKeys(db: Db, id: string, keys: ClientKeySource, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('oauth_clients')
    .set({
      jwks: keys.jwks ? JSON.stringify(keys.jwks) : null,
      jwks_uri: keys.jwksUri ?? null,
      token_endpoint_auth_method: 'private_key_jwt',
      secret_hash: null,
      previous_secret_hash: null,
      previous_secret_expires_at: null,
      updated_at: now,
    })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/** The current secret becomes the previous one (valid until `previousValidUntil`, or not at all when null). */
export async function replaceClientSecret(db: Db, id: string, secretHash: Uint8Array, previousValidUntil: Date | null, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('oauth_clients')
    .set((eb) => ({
      previous_secret_hash: previousValidUntil ? eb.ref('secret_hash') : null,
      previous_secret_expires_at: previousValidUntil,
      secret_hash: secretHash,
      updated_at: now,
    }))
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

export interface ClientChanges {
  name?: string;
  scopes?: readonly string[];
  audiences?: readonly string[];
  tokenTtlSeconds?: number | null;
  /** A date disables the client; null enables it again. */
  disabledAt?: Date | null;
  redirectUris?: readonly string[];
  postLogoutRedirectUris?: readonly string[];
  /** Null: back to the default by rule. */
  grantTypes?: readonly string[] | null;
  firstParty?: boolean;
}

export async function updateClient(db: Db, id: string, changes: ClientChanges, now: Date): Promise<boolean> {
  const result = await db
    .updateTable('oauth_clients')
    .set({
      ...(changes.name !== undefined && { name: changes.name }),
      ...(changes.scopes !== undefined && { scopes: JSON.stringify(changes.scopes) }),
      ...(changes.audiences !== undefined && { audiences: JSON.stringify(changes.audiences) }),
      ...(changes.tokenTtlSeconds !== undefined && { token_ttl_seconds: changes.tokenTtlSeconds }),
      ...(changes.disabledAt !== undefined && { disabled_at: changes.disabledAt }),
      ...(changes.redirectUris !== undefined && { redirect_uris: JSON.stringify(changes.redirectUris) }),
      ...(changes.postLogoutRedirectUris !== undefined && { post_logout_redirect_uris: JSON.stringify(changes.postLogoutRedirectUris) }),
      ...(changes.grantTypes !== undefined && { grant_types: changes.grantTypes === null ? null : JSON.stringify(changes.grantTypes) }),
      ...(changes.firstParty !== undefined && { first_party: changes.firstParty }),
      updated_at: now,
    })
    .where('id', '=', id)
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/**
 * Records a use of each of `ids` that still exists (one statement for all, on the statement lane), at
 * most once per `intervalMs` across every instance: a client whose use is more recent is left out
 * before any row is touched. A use is a row of oauth_client_uses, inserted at the first use and then
 * updated in place (HOT: no index covers used_at), never the client's own row, so it announces
 * nothing to the client caches. Its commit is asynchronous (this transaction only): a crash of
 * Postgres within the WAL writer's next flush may lose the last uses, which moves the sweep of unused
 * clients by at most one interval. Returns how many were written. Rows are locked in the primary
 * key's order, so two instances writing overlapping sets cannot deadlock.
 */
export async function touchClients(handle: Pick<DatabaseHandle, 'db' | 'laneRows'>, ids: readonly string[], now: Date, intervalMs: number): Promise<number> {
  const parameters = { now, ids: genericPlanKeys([...new Set(ids)]), writtenAfter: new Date(now.getTime() - intervalMs) };
  const statement = prepared(
    'idp_clients_used',
    sql<{ client_id: string }>`
    insert into oauth_client_uses (client_id, used_at)
    select c.id, ${parameters.now}::timestamptz from oauth_clients c
     where c.id = any(${parameters.ids}::text[])
       and coalesce((select u.used_at from oauth_client_uses u where u.client_id = c.id), '-infinity') <= ${parameters.writtenAfter}::timestamptz
       and set_config('synchronous_commit', 'off', true) is not null
     order by c.id
    on conflict (client_id) do update set used_at = excluded.used_at
    returning client_id`.compile(handle.db),
  );
  return (await handle.laneRows(statement, statement.parameters)).length;
}

export async function deleteClient(db: Db, id: string): Promise<boolean> {
  const result = await db.deleteFrom('oauth_clients').where('id', '=', id).executeTakeFirst();
  return result.numDeletedRows === 1n;
}

/**
 * `scopes_supported` of the discovery metadata: the scopes enabled clients *without a tenant* may
 * request, distinct, in code-point order, at most `limit`. Discovery is public: a tenant's scope
 * names are that tenant's business, and the document stays small however many clients there are.
 */
export async function listAllowedScopes(db: Db, limit: number): Promise<string[]> {
  const result = await sql<{ scope: string }>`
    select distinct s.scope collate "C" as scope
      from oauth_clients c cross join lateral jsonb_array_elements_text(c.scopes) as s(scope)
     where c.disabled_at is null and c.tenant_id is null
     order by 1
     limit ${limit}`.execute(db);
  return result.rows.map((r) => r.scope);
}
