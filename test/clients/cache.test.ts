import crypto from 'node:crypto';
import { CompiledQuery, sql, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely';
import { ClientCache } from '../../src/clients/cache';
import { insertClient, updateClient } from '../../src/clients/repository';
import { hashClientSecret } from '../../src/clients/secret';
import { LISTENER_APPLICATION_NAME, type DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { createTenant } from '../../src/tenants/repository';
import { captureLogs } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { clientNotificationsDelivered } from '../helpers/notifications';
import { waitFor } from '../multiprocess/processes';

/** Records every statement the cache sends, compiled: the cache's whole conversation with the database. */
class StatementLog implements KyselyPlugin {
  readonly statements: CompiledQuery[] = [];
  constructor(private readonly handle: () => DatabaseHandle) {}
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    this.statements.push(this.handle().db.getExecutor().compileQuery(args.node, args.queryId));
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

describe(`the client cache: bounded by IDP_CLIENT_CACHE_SIZE, fresh by notification (${usingPostgres ? 'Postgres' : 'PGlite'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let log: StatementLog;
  let cache: ClientCache;
  const logs = captureLogs();
  const MAX = 3;

  const newClient = async (tenantId: string | null = null): Promise<string> => {
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
    });
    return id;
  };
  /** The cache's own reads, as the database received them. */
  const reads = () => log.statements.length;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
    log = new StatementLog(() => handle);
    cache = new ClientCache({ handle: { ...handle, db: handle.db.withPlugin(log) }, logger: createLogger('info', logs.stream), maxEntries: MAX });
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

  if (usingPostgres) {
    it('runs no periodic work: with nothing changing, holding clients costs no query at all, however long', async () => {
      const id = await newClient();
      await clientNotificationsDelivered(handle);
      // A cache made under fake timers, so that any timer it sets runs below: a day of them, at once.
      jest.useFakeTimers({ doNotFake: ['Date', 'hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate'] });
      try {
        const own = new StatementLog(() => handle);
        const idle = new ClientCache({ handle: { ...handle, db: handle.db.withPlugin(own) }, logger: createLogger('silent'), maxEntries: MAX });
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
      const plan = await handle.db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain ${statement.sql}`, [...statement.parameters]));
      const text = plan.rows.map((r) => r['QUERY PLAN']).join('\n');
      expect(text).toMatch(/Index Scan using oauth_clients_pkey on oauth_clients c/);
      expect(text).not.toMatch(/Seq Scan on oauth_clients/);
    });
  }
});
