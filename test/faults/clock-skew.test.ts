import { sql } from 'kysely';
import { loadConfig } from '../../src/config';
import { KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { KeyLifecycle, planRotation, type LifecyclePolicy } from '../../src/keys/lifecycle';
import { listKeys, listPublishedKeys } from '../../src/keys/repository';
import { createLogger } from '../../src/observability/logger';
import { testMek } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { killAllChildren, stopChild, waitFor } from '../multiprocess/processes';
import { logLines, preload, startServer } from './harness';

const HOUR = 3_600_000;
const silent = createLogger('silent');

const databaseTime = async (handle: DatabaseHandle): Promise<Date> =>
  new Date((await sql<{ now: Date | string }>`select clock_timestamp() as now`.execute(handle.db)).rows[0]?.now as Date | string);

describe(`rotation decisions on the database's clock (${usingPostgres ? 'Postgres' : 'PGlite'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const mek = testMek();
  const policy: LifecyclePolicy = loadConfig({ NODE_ENV: 'test', IDP_MEK: mek, IDP_KEY_ROTATION_INTERVAL: '1h', IDP_KEY_PREPUBLISH: '10m', IDP_JWKS_MAX_AGE: '60' });
  /** As in production: no test clock, so the database's decides. */
  const lifecycle = () => new KeyLifecycle({ db: handle.db, mek: new KeyRingMekProvider(parseKeyRing(mek, 'test')), policy, logger: silent });

  beforeEach(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
  });

  afterEach(async () => {
    jest.useRealTimers();
    await database?.drop();
  });

  it('stamps every transition with the database server’s time, read inside the transaction', async () => {
    const before = await databaseTime(handle);
    await lifecycle().check('startup');
    const after = await databaseTime(handle);
    const keys = await listKeys(handle.db);
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(key.created_at.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1);
      expect(key.created_at.getTime()).toBeLessThanOrEqual(after.getTime());
    }
    const audit = await handle.db.selectFrom('audit_events').select('occurred_at').execute();
    for (const event of audit) expect(event.occurred_at.getTime()).toBeLessThanOrEqual(after.getTime());
  });

  // On PGlite the database runs in this very process, on its clock: an instance cannot disagree with it.
  if (usingPostgres) {
    it('a lifecycle in a process whose clock is an hour ahead does not promote early', async () => {
      await lifecycle().check('startup');
      const keys = await listPublishedKeys(handle.db);
      const current = keys.find((k) => k.state === 'current')?.kid;

      // From here this process's clock (Date) is an hour ahead; timers and Postgres are untouched.
      jest.useFakeTimers({
        now: Date.now() + HOUR + 60_000,
        doNotFake: ['hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'],
      });
      // By its own clock the current key has signed for the whole interval: that clock would promote now.
      expect(planRotation(keys, new Date(), policy).map((s) => s.kind)).toEqual(['promote']);
      const result = await lifecycle().check('schedule');
      jest.useRealTimers();

      expect(result).toEqual({ changes: [], alreadyRotated: false });
      const after = await listPublishedKeys(handle.db);
      expect(after.map((k) => `${k.kid}:${k.state}`).sort()).toEqual(keys.map((k) => `${k.kid}:${k.state}`).sort());
      expect(after.find((k) => k.state === 'current')?.kid).toBe(current);
    });
  }
});

if (usingPostgres) {
  describe('compiled servers whose clocks are an hour off (Postgres)', () => {
    const ROTATION_MS = 10_000;
    const RETENTION_MS = 6_000;
    const LIFECYCLE = {
      IDP_KEY_ROTATION_INTERVAL: `${ROTATION_MS / 1000}s`,
      IDP_KEY_PREPUBLISH: '6s',
      IDP_JWKS_MAX_AGE: '3',
      IDP_ACCESS_TOKEN_TTL: '5s',
      IDP_ADMIN_TOKEN_TTL: '5s',
      IDP_CLIENT_TOKEN_TTL: '5s',
      IDP_KEY_RETENTION: `${RETENTION_MS / 1000}s`,
      IDP_ROTATION_CRON: '* * * * * *',
    };
    let database: TestDatabase;
    let handle: DatabaseHandle;
    const mek = testMek();

    beforeAll(async () => {
      database = await createTestDatabase();
      handle = await database.open();
      await migrateToLatest(handle);
      // The first keys, made on the database's clock (as a correctly set instance would).
      await new KeyLifecycle({ db: handle.db, mek: new KeyRingMekProvider(parseKeyRing(mek, 'test')), policy: loadConfig({ NODE_ENV: 'test', IDP_MEK: mek, ...LIFECYCLE }), logger: silent }).check('startup');
    });

    afterAll(async () => {
      await killAllChildren();
      await database?.drop();
    });

    const auditOf = (action: string) => handle.db.selectFrom('audit_events').selectAll().where('action', '=', action).orderBy('occurred_at').execute();

    it('an hour ahead: promotes when the database’s clock says so, not before; an hour behind: retires on time, not an hour late', async () => {
      const first = (await listKeys(handle.db)).find((k) => k.state === 'current');
      const activatedAt = first?.activated_at as Date;
      const env = { ...database.env, IDP_MEK: mek, ...LIFECYCLE, NODE_OPTIONS: preload('clock-offset') };

      const ahead = await startServer({ ...env, IDP_TEST_CLOCK_OFFSET_MS: String(HOUR) });
      // Its clock is an hour ahead indeed (its log lines carry it).
      const stamp = Date.parse(String(logLines(ahead.child.output())[0]?.time));
      expect(stamp - Date.now()).toBeGreaterThan(HOUR - 60_000);
      const promoted = await waitFor('the rotation interval passes on the database’s clock and the key is promoted', async () => (await auditOf('key.promoted'))[0], 60_000, 100);
      const seenAt = await databaseTime(handle);
      // Not early: by the database's clock the key had signed for the whole interval when it was promoted.
      expect(seenAt.getTime() - activatedAt.getTime()).toBeGreaterThanOrEqual(ROTATION_MS);
      expect(promoted.occurred_at.getTime() - activatedAt.getTime()).toBeGreaterThanOrEqual(ROTATION_MS);
      // And stamped with the database's time, not the instance's hour-ahead one.
      expect(promoted.occurred_at.getTime()).toBeLessThanOrEqual(seenAt.getTime());
      expect(await stopChild(ahead.child)).toBe(0);

      const previous = (await listKeys(handle.db)).find((k) => k.kid === first?.kid);
      expect(previous?.state).toBe('previous');
      const deactivatedAt = previous?.deactivated_at as Date;
      const behind = await startServer({ ...env, IDP_TEST_CLOCK_OFFSET_MS: String(-HOUR) });
      // Within the test's bound, i.e. not an hour late: retired once IDP_KEY_RETENTION passed on the database's clock.
      const retired = await waitFor(
        'the retention passes on the database’s clock and the previous key is retired',
        async () => (await listKeys(handle.db)).find((k) => k.kid === first?.kid && k.state === 'retired'),
        60_000,
        100,
      );
      const retiredSeenAt = await databaseTime(handle);
      expect((retired.retired_at as Date).getTime() - deactivatedAt.getTime()).toBeGreaterThanOrEqual(RETENTION_MS);
      expect((retired.retired_at as Date).getTime()).toBeLessThanOrEqual(retiredSeenAt.getTime());
      // The next promotion is not late either.
      await waitFor('the next promotion, an interval after the first', async () => ((await auditOf('key.promoted')).length >= 2 ? true : undefined), 60_000, 100);
      expect(await stopChild(behind.child)).toBe(0);
      for (const server of [ahead, behind]) expect(logLines(server.child.output()).filter((l) => l.level >= 50)).toEqual([]);
    }, 180_000);
  });
}
