import crypto from 'node:crypto';
import { sql, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { deleteInBatches } from '../../src/db/sweep';
import { createLogger } from '../../src/observability/logger';
import { FailureLimiter } from '../../src/ratelimit';
import { startTestServer, testConfig } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';

/** Counts the statements sent through a Kysely instance and the rows each one affected. */
class Statements implements KyselyPlugin {
  readonly affected: number[] = [];
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    this.affected.push(Number(args.result.numAffectedRows ?? 0n));
    return args.result;
  }
}

describe(`sweeps delete in bounded statements (${usingPostgres ? 'Postgres' : 'PGlite'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const past = new Date(Date.now() - 3_600_000);
  const future = new Date(Date.now() + 3_600_000);

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
  });

  afterAll(async () => {
    await database?.drop();
  });

  it('deletes every matching row, at most batchSize per statement, and nothing else', async () => {
    await sql`insert into revoked_access_tokens (jti, client_id, expires_at, revoked_at)
              select 'old-' || g, 'c', ${past}, ${past} from generate_series(1, 2345) g`.execute(handle.db);
    await sql`insert into revoked_access_tokens (jti, client_id, expires_at, revoked_at)
              select 'live-' || g, 'c', ${future}, ${past} from generate_series(1, 10) g`.execute(handle.db);
    const counted = new Statements();
    const deleted = await deleteInBatches(
      handle.db.withPlugin(counted),
      { table: 'revoked_access_tokens', key: 'jti', where: sql`expires_at < ${new Date()}` },
      { batchSize: 1_000, pauseMs: 0 },
    );
    expect(deleted).toBe(2345);
    expect(counted.affected).toEqual([1000, 1000, 345]);
    const left = await handle.db.selectFrom('revoked_access_tokens').select('jti').orderBy('jti').execute();
    expect(left.map((r) => r.jti)).toEqual(Array.from({ length: 10 }, (_, i) => `live-${i + 1}`).sort());
  });

  it('stops after one statement when nothing is due', async () => {
    const counted = new Statements();
    const deleted = await deleteInBatches(handle.db.withPlugin(counted), { table: 'revoked_access_tokens', key: 'jti', where: sql`expires_at < ${past}` });
    expect(deleted).toBe(0);
    expect(counted.affected).toEqual([0]);
  });

  it('onDeleted gets each statement\'s keys in its transaction: what it writes lands with the deletion, and a hook that fails leaves its batch in place', async () => {
    await sql`insert into revoked_access_tokens (jti, client_id, expires_at, revoked_at)
              select 'hook-' || g, 'c', ${past}, ${past} from generate_series(1, 25) g`.execute(handle.db);
    const batches: string[][] = [];
    const deleted = await deleteInBatches(
      handle.db,
      { table: 'revoked_access_tokens', key: 'jti', where: sql`jti like 'hook-%'` },
      {
        batchSize: 10,
        pauseMs: 0,
        onDeleted: async (trx, keys) => {
          batches.push(keys);
          await trx.insertInto('audit_events').values({ occurred_at: new Date(), actor: 'test', action: 'hook.deleted', target: keys.join(','), details: '{}' }).execute();
        },
      },
    );
    expect(deleted).toBe(25);
    expect(batches.map((b) => b.length)).toEqual([10, 10, 5]);
    expect(batches.flat().sort()).toEqual(Array.from({ length: 25 }, (_, i) => `hook-${i + 1}`).sort());
    const events = await handle.db.selectFrom('audit_events').select('target').where('action', '=', 'hook.deleted').execute();
    expect(events).toHaveLength(3);

    await sql`insert into revoked_access_tokens (jti, client_id, expires_at, revoked_at) values ('kept-1', 'c', ${past}, ${past}), ('kept-2', 'c', ${past}, ${past})`.execute(handle.db);
    const failing = deleteInBatches(
      handle.db,
      { table: 'revoked_access_tokens', key: 'jti', where: sql`jti like 'kept-%'` },
      {
        onDeleted: async () => {
          throw new Error('the audit log is unavailable');
        },
      },
    );
    await expect(failing).rejects.toThrow('the audit log is unavailable');
    const kept = await handle.db.selectFrom('revoked_access_tokens').select('jti').where('jti', 'like', 'kept-%').orderBy('jti').execute();
    expect(kept.map((r) => r.jti)).toEqual(['kept-1', 'kept-2']);
  });

  it('expired refresh tokens, by the accounts service: only the expired ones, whatever their number', async () => {
    const server = await startTestServer(testConfig(database), handle);
    try {
      const user = crypto.randomUUID();
      const session = crypto.randomUUID();
      await sql`insert into users (id, email, password_hash, created_at, updated_at) values (${user}, 'sweep@example.com', 'x', now(), now())`.execute(handle.db);
      await sql`insert into sessions (id, user_id, created_at) values (${session}, ${user}, now())`.execute(handle.db);
      await sql`insert into refresh_tokens (token_hash, session_id, created_at, expires_at)
                select 'expired-' || g, ${session}, ${past}, ${past} from generate_series(1, 2500) g`.execute(handle.db);
      await sql`insert into refresh_tokens (token_hash, session_id, created_at, expires_at) values ('live-1', ${session}, now(), ${future}), ('live-2', ${session}, now(), ${future})`.execute(handle.db);
      await server.services.users.sweep();
      const left = await handle.db.selectFrom('refresh_tokens').select('token_hash').orderBy('token_hash').execute();
      expect(left.map((r) => r.token_hash)).toEqual(['live-1', 'live-2']);
    } finally {
      await server.close();
    }
  });

  it('the failure counters: only those whose window and block have both passed', async () => {
    await sql`insert into rate_limit_counters (key, failures, window_ends_at, blocked_until)
              select 'gone:' || g, 1, ${past}, null from generate_series(1, 1500) g`.execute(handle.db);
    await handle.db
      .insertInto('rate_limit_counters')
      .values([
        { key: 'still-blocked', failures: 30, window_ends_at: past, blocked_until: future },
        { key: 'window-open', failures: 3, window_ends_at: future, blocked_until: null },
        { key: 'block-over', failures: 30, window_ends_at: past, blocked_until: past },
      ])
      .execute();
    const limiter = new FailureLimiter({ handle, logger: createLogger('silent'), now: () => new Date() });
    expect(await limiter.sweep()).toBe(1501);
    const left = await handle.db.selectFrom('rate_limit_counters').select('key').orderBy('key').execute();
    expect(left.map((r) => r.key)).toEqual(['still-blocked', 'window-open']);
  });
});
