import { sql } from 'kysely';
import { prepared, STATEMENT_LANE_APPLICATION_NAME, type DatabaseHandle } from '../../src/db';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { waitFor } from '../multiprocess/processes';

describe(`the statement lane (DatabaseHandle.laneRows) (${usingPostgres ? 'Postgres' : 'PGlite'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const backend = () => prepared('idp_test_backend', sql<{ pid: number; name: string }>`select pg_backend_pid() as pid, current_setting('application_name') as name, ${0}::int as n`.compile(handle.db));

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
  });
  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });

  it('runs a prepared statement with its parameters and gives its rows', async () => {
    const statement = prepared('idp_test_series', sql<{ n: number }>`select g as n from generate_series(1, ${0}::int) as g`.compile(handle.db));
    expect(await handle.laneRows(statement, [3])).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
    expect(await handle.laneRows(statement, [1])).toEqual([{ n: 1 }]);
  });

  it('refuses a statement not marked by prepared(), on either database', async () => {
    await expect(handle.laneRows(sql<{ n: number }>`select 1 as n`.compile(handle.db), [])).rejects.toThrow(/prepared/);
  });

  if (usingPostgres) {
    it('is one connection of its own, named, kept between statements', async () => {
      const [first] = await handle.laneRows(backend(), [1]);
      const [second] = await handle.laneRows(backend(), [2]);
      expect(first?.name).toBe(STATEMENT_LANE_APPLICATION_NAME);
      expect(second?.pid).toBe(first?.pid);
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(handle.db);
      expect(rows[0]?.pid).not.toBe(first?.pid);
    });

    it('is opened again after its connection is lost: the statement in flight fails, the next ones run', async () => {
      const [before] = await handle.laneRows(backend(), [1]);
      const sleep = prepared('idp_test_sleep', sql<{ slept: string }>`select pg_sleep(${0}::float8)::text as slept`.compile(handle.db));
      // Settled into a value at once, so that its rejection is never an unhandled one while the test waits.
      const inFlight = handle.laneRows(sleep, [30]).then(
        () => 'ran',
        (error: unknown) => error,
      );
      const admin = await database.open();
      try {
        await waitFor('the lane is sleeping', async () => {
          const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity
                             where datname = current_database() and application_name = ${STATEMENT_LANE_APPLICATION_NAME} and query like '%pg_sleep%'`.execute(admin.db);
          return Number(rows[0]?.n) === 1 ? true : undefined;
        }, 10_000);
        await sql`select pg_terminate_backend(pid) from pg_stat_activity
                   where datname = current_database() and application_name = ${STATEMENT_LANE_APPLICATION_NAME}`.execute(admin.db);
      } finally {
        await admin.close();
      }
      expect(await inFlight).toMatchObject({ message: expect.stringMatching(/terminat/) });
      const after = await waitFor('the lane runs statements again', () => handle.laneRows(backend(), [2]).then((rows) => rows[0], () => undefined), 10_000);
      expect(after.pid).not.toBe(before?.pid);
      expect(after.name).toBe(STATEMENT_LANE_APPLICATION_NAME);
    });
  }
});
