import crypto from 'node:crypto';
import { sql } from 'kysely';
import { clientReader, findTenantsDisabled, insertClient, touchClients } from '../../src/clients/repository';
import { hashClientSecret } from '../../src/clients/secret';
import { genericPlanKeys, openDatabase, prepared, type DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';

it('genericPlanKeys pads with the first key to 10 values, and leaves 10 or more, or none, as they are', () => {
  expect(genericPlanKeys(['a', 'b', 'c'])).toEqual(['a', 'b', 'c', 'a', 'a', 'a', 'a', 'a', 'a', 'a']);
  const eleven = Array.from({ length: 11 }, (_, i) => `k${i}`);
  expect(genericPlanKeys(eleven)).toEqual(eleven);
  expect(genericPlanKeys([])).toEqual([]);
});

// Named prepared statements, and so plan caching, exist on Postgres only: PGlite runs each statement as it is.
if (usingPostgres) describe('the client cache statements keep one generic plan per connection (Postgres)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const ids: string[] = [];

  /**
   * The plans a prepared statement was executed with, on the pool's one connection or on the
   * statement lane (prepared statements are each connection's own).
   */
  const plans = async (name: string, connection: 'pool' | 'lane' = 'pool') => {
    const query = sql<{ generic_plans: string; custom_plans: string }>`select generic_plans, custom_plans from pg_prepared_statements where name = ${name}`;
    const rows = connection === 'pool' ? (await query.execute(handle.db)).rows : await handle.laneRows(prepared('idp_test_plans', query.compile(handle.db)), [name]);
    return { generic: Number(rows[0]?.generic_plans ?? 0), custom: Number(rows[0]?.custom_plans ?? 0) };
  };
  /** 12 executions: Postgres's five custom tries, then the generic plan (an invalidation meanwhile, new statistics, may cost one more try). */
  const plannedOnceAfterTries = (executions: { generic: number; custom: number }) => {
    expect(executions.generic + executions.custom).toBe(12);
    expect(executions.custom).toBeLessThanOrEqual(6);
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await openDatabase({ databaseUrl: database.databaseUrl, dataDir: 'unused', logger: createLogger('silent'), poolSize: 1 });
    await migrateToLatest(handle);
    for (let i = 0; i < 30; i++) {
      const id = crypto.randomBytes(16).toString('base64url');
      await insertClient(handle.db, { id, name: `client ${i}`, secretHash: hashClientSecret(id), scopes: [], audiences: ['https://api.test'], tenantId: null, tokenTtlSeconds: null, now: new Date() });
      ids.push(id);
    }
    // Enough rows, with statistics, for the planner to weigh an index scan as it does on a real table.
    await sql`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at)
              select 'bulk-' || g, 'bulk ' || g, sha256(g::text::bytea), '[]', '["https://api.test"]', now(), now()
                from generate_series(1, 20000) as g`.execute(handle.db);
    await sql`insert into tenants (id, name) select 'tenant-' || g, 'tenant ' || g from generate_series(1, 20000) as g`.execute(handle.db);
    await sql`analyze oauth_clients`.execute(handle.db);
    await sql`analyze tenants`.execute(handle.db);
  });

  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });

  it('reading a few clients at a time is planned at most the five times Postgres tries custom plans, then never again (before: at every read)', async () => {
    const read = clientReader(handle);
    for (let i = 0; i < 12; i++) {
      const batch = ids.slice(i, i + 1 + (i % 3));
      const found = await read(batch);
      expect([...found.keys()].sort()).toEqual([...batch].sort());
    }
    plannedOnceAfterTries(await plans('idp_clients_by_id', 'lane'));
  });

  it('recording the use of a few clients at a time is planned at most five times too', async () => {
    for (let i = 0; i < 12; i++) expect(await touchClients(handle, [ids[i] as string, ids[i] as string], new Date(), 3_600_000)).toBe(1);
    plannedOnceAfterTries(await plans('idp_clients_used', 'lane'));
  });

  it("finds each client's use by its primary key, though oauth_client_uses was nearly empty when the statements were planned: never a scan of the whole table", async () => {
    // Both statements have run 12 times above. Statistics that say the table holds a few rows (as
    // autovacuum's first analyze of a new table does) make a scan of its one page the cheaper probe.
    await sql`analyze oauth_client_uses`.execute(handle.db);
    interface PlanNode {
      'Node Type': string;
      'Relation Name'?: string;
      'Index Name'?: string;
      Plans?: PlanNode[];
    }
    const nodes = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodes)];
    /** How the statement's plan reaches oauth_client_uses: each node's type and index. */
    const usesAccess = async (name: string, execute: string) => {
      const rows = await handle.laneRows(prepared(name, sql<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>`explain (format json) ${sql.raw(execute)}`.compile(handle.db)), []);
      const root = rows[0]?.['QUERY PLAN'][0]?.Plan;
      if (!root) throw new Error('no plan');
      return nodes(root)
        .filter((node) => node['Relation Name'] === 'oauth_client_uses' && node['Node Type'] !== 'ModifyTable')
        .map((node) => `${node['Node Type']} ${node['Index Name'] ?? ''}`.trim());
    };
    expect(await usesAccess('idp_test_explain_read', `execute idp_clients_by_id(array['${ids[0]}'])`)).toEqual(['Index Scan oauth_client_uses_pkey']);
    expect(await usesAccess('idp_test_explain_write', `execute idp_clients_used(now(), array['${ids[0]}'], now())`)).toEqual(['Index Scan oauth_client_uses_pkey']);
  });

  it('reading the states of a few tenants at a time is planned at most five times too', async () => {
    for (let i = 0; i < 12; i++) {
      const tenants = [`tenant-${i + 1}`, `tenant-${i + 100}`].slice(0, 1 + (i % 2));
      expect([...(await findTenantsDisabled(handle.db, tenants)).entries()].sort()).toEqual(tenants.map((id) => [id, false]).sort());
    }
    plannedOnceAfterTries(await plans('idp_tenants_disabled'));
  });
});
