import crypto from 'node:crypto';
import { CompiledQuery, sql, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryId, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely';
import { CLIENT_BATCH_SIZE, ClientCache } from '../../src/clients/cache';
import { findClient, insertClient, updateClient, type Client } from '../../src/clients/repository';
import { hashClientSecret } from '../../src/clients/secret';
import { LISTENER_APPLICATION_NAME, type DatabaseHandle } from '../../src/db';
import type { ClientRegistrar } from '../../src/db/schema';
import { migrateToLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { createTenant } from '../../src/tenants/repository';
import { captureLogs } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { clientNotificationsDelivered } from '../helpers/notifications';
import { waitFor } from '../multiprocess/processes';

/**
 * Records every statement the cache sends, each time it runs, through Kysely or on the statement
 * lane: the cache's whole conversation with the database. A statement is compiled once and run many times (its parameters are not seen here, only
 * its text), so each is recorded when its result comes back, not when it is compiled.
 */
class StatementLog implements KyselyPlugin {
  readonly statements: CompiledQuery[] = [];
  private readonly compiled = new WeakMap<QueryId, CompiledQuery>();
  constructor(private readonly handle: () => DatabaseHandle) {}
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.compiled.set(args.queryId, this.handle().db.getExecutor().compileQuery(args.node, args.queryId));
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const statement = this.compiled.get(args.queryId);
    if (statement) this.statements.push(statement);
    return args.result;
  }
  /** `handle` with its Kysely statements and those on its statement lane (laneRows) recorded here. */
  on(handle: DatabaseHandle): DatabaseHandle {
    return {
      ...handle,
      db: handle.db.withPlugin(this),
      laneRows: async (statement, parameters) => {
        const rows = await handle.laneRows(statement, parameters);
        this.statements.push(statement);
        return rows;
      },
    };
  }
}

describe(`the client cache: bounded by IDP_CLIENT_CACHE_SIZE, fresh by notification (${usingPostgres ? 'Postgres' : 'PGlite'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let log: StatementLog;
  let cache: ClientCache;
  const logs = captureLogs();
  const MAX = 3;

  const newClient = async (tenantId: string | null = null, registeredBy: ClientRegistrar = 'operator'): Promise<string> => {
    const id = crypto.randomBytes(16).toString('base64url');
    await insertClient(handle.db, {
      id,
      name: `client ${id}`,
      secretHash: hashClientSecret(crypto.randomBytes(32).toString('base64url')),
      scopes: ['read'],
      audiences: ['https://api.test'],
      tenantId,
      tokenTtlSeconds: null,
      now: new Date(),
      registeredBy,
    });
    return id;
  };
  /** A dynamically registered client: the kind whose uses are written (for the sweep of unused ones). */
  const newDynamicClient = () => newClient(null, 'dynamic');
  /** The cache's own reads, as the database received them. */
  const reads = () => log.statements.length;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
    log = new StatementLog(() => handle);
    cache = new ClientCache({ handle: log.on(handle), logger: createLogger('info', logs.stream), maxEntries: MAX });
    await cache.start();
  });

  afterAll(async () => {
    await cache?.stop();
    await database?.drop();
  });

  it('keeps at most IDP_CLIENT_CACHE_SIZE clients; one that fell out costs exactly one query when used again', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await newClient());
    // Let the creations' notifications pass: they concern clients not in memory, so they cost nothing.
    await clientNotificationsDelivered(handle);
    const before = reads();
    for (const id of ids) expect((await cache.get(id))?.id).toBe(id);
    expect(reads() - before).toBe(5);
    expect(cache.size).toBe(MAX);

    // The three most recently used are in memory: answered without a query (and without a promise).
    for (const id of ids.slice(2)) expect(cache.get(id)).toMatchObject({ id });
    expect(reads() - before).toBe(5);

    // The first fell out: one query, by primary key, and it is in memory again.
    const first = ids[0] as string;
    expect(cache.peek(first)).toBeUndefined();
    expect((await cache.get(first))?.id).toBe(first);
    expect(reads() - before).toBe(6);
    expect(log.statements.at(-1)?.sql).toMatch(/where "c"\."id" = any\(\$1\)/);
    expect(cache.get(first)).toMatchObject({ id: first });
    expect(cache.size).toBe(MAX);

    // Concurrent misses share one read.
    const second = ids[1] as string;
    const [a, b] = await Promise.all([cache.get(second), cache.get(second)]);
    expect(a?.id).toBe(second);
    expect(b).toBe(a);
    expect(reads() - before).toBe(7);
  });

  it('a change to a client in memory is announced by the database and read again at once, with no request', async () => {
    const id = await newClient();
    await clientNotificationsDelivered(handle);
    await cache.get(id);
    expect(cache.peek(id)?.disabledAt).toBeNull();

    await updateClient(handle.db, id, { disabledAt: new Date() }, new Date());
    const fresh = await waitFor('the disabled client is back in memory', () => (cache.peek(id)?.disabledAt ? cache.peek(id) : undefined), 5_000);
    expect(fresh?.disabledAt).toBeInstanceOf(Date);
  });

  it("keeps a client whose creation is announced only after its first read (the notification comes late, the client stays in memory)", async () => {
    const id = await newClient();
    await clientNotificationsDelivered(handle);
    await cache.get(id);
    const before = reads();
    // Exactly what the trigger sends on creation, arriving after the read that kept the client.
    await sql`select pg_notify('idp_clients', ${`client:${id}`})`.execute(handle.db);
    await waitFor('the client was read again', () => (reads() > before ? true : undefined), 5_000);
    await waitFor('the client is in memory', () => cache.peek(id), 5_000);
    expect(reads() - before).toBe(1);
  });

  it("drops the clients of a tenant that changes (they are read again on use)", async () => {
    await createTenant(handle.db, { id: 'acme', name: 'Acme', now: new Date() });
    const member = await newClient('acme');
    await clientNotificationsDelivered(handle);
    expect((await cache.get(member))?.tenantDisabled).toBe(false);
    await handle.db.updateTable('tenants').set({ disabled_at: new Date() }).where('id', '=', 'acme').execute();
    await waitFor('the member is dropped', () => (cache.peek(member) === undefined ? true : undefined), 5_000);
    expect((await cache.get(member))?.tenantDisabled).toBe(true);
  });

  it('reads the misses of different clients that arrive together in one statement, at most CLIENT_BATCH_SIZE ids each; each caller gets its own client', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push(await newClient());
    await clientNotificationsDelivered(handle);
    const before = reads();
    const clients = await Promise.all(ids.map((id) => cache.get(id)));
    expect(clients.map((client) => client?.id)).toEqual(ids);
    expect(reads() - before).toBe(1);
    // One statement answered all twenty, so it carried all twenty ids.
    expect(log.statements.at(-1)?.sql).toMatch(/from "oauth_clients" as "c" where "c"\."id" = any\(\$1\)$/);

    // Ids that exist nowhere are read like any other (and not kept): 2 × CLIENT_BATCH_SIZE + 1 of them, three statements.
    const unknown = Array.from({ length: 2 * CLIENT_BATCH_SIZE + 1 }, (_, i) => `unknown-${i}`);
    const beforeUnknown = reads();
    expect(await Promise.all(unknown.map((id) => cache.get(id)))).toEqual(unknown.map(() => undefined));
    expect(reads() - beforeUnknown).toBe(3);
  });

  it('reads every field of a client exactly as the admin read does (one JSON array a row: dates, hashes, keys, lists)', async () => {
    await createTenant(handle.db, { id: 'initech', name: 'Initech', now: new Date() });
    const secretId = crypto.randomBytes(16).toString('base64url');
    await insertClient(handle.db, {
      id: secretId,
      name: 'every field "quoted" ü',
      secretHash: hashClientSecret('current'),
      scopes: ['read', 'write'],
      audiences: ['https://api.test', 'https://other.test'],
      tenantId: 'initech',
      tokenTtlSeconds: 120,
      redirectUris: ['https://app.test/cb', 'http://127.0.0.1/cb'],
      postLogoutRedirectUris: ['https://app.test/bye'],
      grantTypes: ['authorization_code', 'refresh_token'],
      firstParty: true,
      registeredBy: 'dynamic',
      now: new Date('2026-01-02T03:04:05.678Z'),
    });
    await sql`update oauth_clients set previous_secret_hash = ${hashClientSecret('previous')}, previous_secret_expires_at = ${new Date('2026-01-03T00:00:00.001Z')},
                disabled_at = ${new Date('2026-01-04T00:00:00.999Z')} where id = ${secretId}`.execute(handle.db);
    await sql`insert into oauth_client_uses (client_id, used_at) values (${secretId}, ${new Date('2026-01-05T00:00:00.5Z')})`.execute(handle.db);
    const keysId = crypto.randomBytes(16).toString('base64url');
    const jwk = { kty: 'RSA', n: crypto.randomBytes(256).toString('base64url'), e: 'AQAB', kid: 'k1', alg: 'RS256', use: 'sig' };
    await insertClient(handle.db, { id: keysId, name: 'keys', secretHash: null, keys: { jwks: { keys: [jwk] } }, scopes: [], audiences: ['https://api.test'], tenantId: null, tokenTtlSeconds: null, now: new Date() });
    const uriId = crypto.randomBytes(16).toString('base64url');
    await insertClient(handle.db, { id: uriId, name: 'uri', secretHash: null, keys: { jwksUri: 'https://keys.test/jwks.json' }, scopes: ['read'], audiences: ['https://api.test'], tenantId: null, tokenTtlSeconds: null, now: new Date() });
    await clientNotificationsDelivered(handle);

    for (const id of [secretId, keysId, uriId]) {
      const admin = await findClient(handle.db, id);
      const cached = await cache.get(id);
      expect(cached).toBeDefined();
      const bytes = (hash: Uint8Array | null | undefined) => (hash ? Buffer.from(hash).toString('hex') : hash);
      expect({ ...cached, secretHash: bytes(cached?.secretHash), previousSecretHash: bytes(cached?.previousSecretHash) }).toEqual({
        ...admin,
        secretHash: bytes(admin?.secretHash),
        previousSecretHash: bytes(admin?.previousSecretHash),
      });
    }
    const secretClient = cache.peek(secretId);
    expect(secretClient).toMatchObject({ tenantId: 'initech', tokenTtlSeconds: 120, firstParty: true, registeredBy: 'dynamic', authMethod: 'client_secret' });
    expect(secretClient?.previousSecretExpiresAt?.toISOString()).toBe('2026-01-03T00:00:00.001Z');
    expect(secretClient?.disabledAt?.toISOString()).toBe('2026-01-04T00:00:00.999Z');
    expect(secretClient?.createdAt.toISOString()).toBe('2026-01-02T03:04:05.678Z');
    expect(Buffer.from(secretClient?.secretHash ?? []).equals(Buffer.from(hashClientSecret('current')))).toBe(true);
    // Its own memory, not a view of a buffer the driver shares with other rows.
    expect(secretClient?.secretHash?.byteLength).toBe(secretClient?.secretHash?.buffer.byteLength);
    expect(cache.peek(keysId)?.jwks).toEqual({ keys: [jwk] });
    expect(cache.peek(uriId)?.jwksUri).toBe('https://keys.test/jwks.json');
  });

  it("reads a tenant's state once for its clients, and again after the tenant changed", async () => {
    await createTenant(handle.db, { id: 'globex', name: 'Globex', now: new Date() });
    const members = [await newClient('globex'), await newClient('globex')];
    await clientNotificationsDelivered(handle);
    const before = reads();
    const clients = await Promise.all(members.map((id) => cache.get(id)));
    expect(clients.map((client) => client?.tenantDisabled)).toEqual([false, false]);
    expect(log.statements.slice(before).map((s) => /from "(\w+)"(?= as | where )/.exec(s.sql)?.[1])).toEqual(['oauth_clients', 'tenants']);

    // Its state is in memory: another member costs its own read only.
    const late = await newClient('globex');
    await clientNotificationsDelivered(handle);
    const beforeLate = reads();
    expect((await cache.get(late))?.tenantDisabled).toBe(false);
    expect(reads() - beforeLate).toBe(1);

    await handle.db.updateTable('tenants').set({ disabled_at: new Date() }).where('id', '=', 'globex').execute();
    await waitFor('the members are dropped', () => (cache.peek(late) === undefined ? true : undefined), 5_000);
    const beforeChange = reads();
    expect((await cache.get(late))?.tenantDisabled).toBe(true);
    expect(reads() - beforeChange).toBe(2);
  });

  it("writes the uses of many clients in one statement; a client whose use another process wrote within the minute is not written again", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await newDynamicClient());
    await clientNotificationsDelivered(handle);
    const writes = (statements: CompiledQuery[]) => statements.filter((s) => s.sql.includes('insert into oauth_client_uses')).length;
    const lastUsed = async () => {
      const rows = await handle.db.selectFrom('oauth_client_uses').select(['client_id', 'used_at']).where('client_id', 'in', ids).execute();
      return ids.map((id) => rows.find((r) => r.client_id === id)?.used_at ?? null);
    };

    const first = new StatementLog(() => handle);
    const one = new ClientCache({ handle: first.on(handle), logger: createLogger('silent'), maxEntries: 10 });
    const clients = await Promise.all(ids.map(async (id) => (await one.get(id)) as Client));
    for (const client of clients) one.recordUse(client);
    await waitFor('the uses are written', async () => ((await lastUsed()).every((at) => at !== null) ? true : undefined), 5_000);
    expect(writes(first.statements)).toBe(1);

    // Another process reads them with their last use, a moment old: their uses write nothing.
    const second = new StatementLog(() => handle);
    const other = new ClientCache({ handle: second.on(handle), logger: createLogger('silent'), maxEntries: 10 });
    for (const client of await Promise.all(ids.map(async (id) => (await other.get(id)) as Client))) other.recordUse(client);
    await other.stop();
    expect(writes(second.statements)).toBe(0);
    await one.stop();
  });

  it("writes no use of an operator's client: only the sweep of unused self-registered clients reads uses, and it never deletes one", async () => {
    const ids = [await newClient(), await newClient(), await newDynamicClient()];
    await clientNotificationsDelivered(handle);
    const log = new StatementLog(() => handle);
    const own = new ClientCache({ handle: log.on(handle), logger: createLogger('silent'), maxEntries: 10 });
    const clients = await Promise.all(ids.map(async (id) => (await own.get(id)) as Client));
    expect(clients.map((c) => c.registeredBy)).toEqual(['operator', 'operator', 'dynamic']);
    for (const client of clients) own.recordUse(client);
    await own.stop();
    const rows = await handle.db.selectFrom('oauth_client_uses').select('client_id').where('client_id', 'in', ids).execute();
    expect(rows.map((r) => r.client_id)).toEqual([ids[2]]);
    expect(log.statements.filter((s) => s.sql.includes('insert into oauth_client_uses'))).toHaveLength(1);
  });

  it('writes the uses still waiting when it stops', async () => {
    const id = await newDynamicClient();
    await clientNotificationsDelivered(handle);
    const own = new ClientCache({ handle, logger: createLogger('silent'), maxEntries: 10 });
    own.recordUse((await own.get(id)) as Client);
    await own.stop();
    const row = await handle.db.selectFrom('oauth_client_uses').select('used_at').where('client_id', '=', id).executeTakeFirstOrThrow();
    expect(row.used_at).toBeInstanceOf(Date);
  });

  if (usingPostgres) {
    it('runs no periodic work: with nothing changing, holding clients costs no query at all, however long', async () => {
      const id = await newClient();
      await clientNotificationsDelivered(handle);
      // A cache made under fake timers, so that any timer it sets runs below: a day of them, at once.
      jest.useFakeTimers({ doNotFake: ['Date', 'hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate'] });
      try {
        const own = new StatementLog(() => handle);
        const idle = new ClientCache({ handle: own.on(handle), logger: createLogger('silent'), maxEntries: MAX });
        await idle.start();
        expect((await idle.get(id))?.id).toBe(id);
        expect(own.statements).toHaveLength(1);
        await jest.advanceTimersByTimeAsync(24 * 3_600_000);
        expect(idle.peek(id)?.id).toBe(id);
        expect(own.statements).toHaveLength(1);
      } finally {
        jest.useRealTimers();
      }
    });

    it('is cleared when its listening connection is re-established, and says so', async () => {
      const held = cache.size;
      expect(held).toBeGreaterThan(0);
      const admin = await database.open();
      await sql`select pg_terminate_backend(pid) from pg_stat_activity
                 where datname = current_database() and application_name = ${LISTENER_APPLICATION_NAME}`.execute(admin.db);
      const line = await waitFor('the catch-up is logged', () => logs.lines.find((l) => String(l.msg).startsWith('client cache caught up')), 15_000);
      expect(line).toMatchObject({ level: 30, dropped: held });
      expect(cache.size).toBe(0);
    });

    it('finds a client that is not in memory with an index scan on 20,000 clients (EXPLAIN)', async () => {
      await sql`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at)
                select 'bulk-' || g, 'bulk', sha256(g::text::bytea), '["read"]', '["https://api.test"]', now(), now()
                  from generate_series(1, 20000) g`.execute(handle.db);
      await sql`analyze oauth_clients`.execute(handle.db);
      await cache.get('bulk-12345');
      const statement = log.statements.at(-1) as CompiledQuery;
      const plan = await handle.db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain ${statement.sql}`, [['bulk-12345']]));
      const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(text).toMatch(/Index Scan using oauth_clients_pkey on oauth_clients c/);
      expect(text).not.toMatch(/Seq Scan on oauth_clients/);
    });
  }
});
