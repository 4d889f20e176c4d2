import { loadConfig } from '../../src/config';
import { KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { KeyLifecycle, type CheckResult } from '../../src/keys/lifecycle';
import { listKeys } from '../../src/keys/repository';
import { createLogger } from '../../src/observability/logger';
import { FakeClock, testMek } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { LIFECYCLE_ENV, forkLifecycleChild, freePort, getJson, jwksKids, killAllChildren, spawnServer, stopChild, waitFor, type Child, type LifecycleChild } from './processes';

const HOUR = 3_600_000;
const ROUNDS = 10;
const INSTANCES = 3;

// Every round the fake clock moves on by exactly the rotation interval, so exactly one promotion is due.

/** One rotation-check runner: its clock is set first, then every runner is released at once. */
interface Instance {
  arm(now: Date): Promise<void>;
  go(): void;
  result(): Promise<CheckResult & { instance: string }>;
}

/**
 * Postgres: each instance is its own OS process with its own pool (test/fixtures/lifecycle-child.js).
 * Key generation is slowed by 500 ms there, so that the losers' first look at the keys certainly
 * happens while the winner's transaction is still open — the race this test is about.
 */
async function childInstances(database: TestDatabase, mek: string): Promise<{ instances: Instance[]; children: LifecycleChild[] }> {
  const children = await Promise.all(
    Array.from({ length: INSTANCES }, (_, i) =>
      forkLifecycleChild({
        ...database.env,
        ...LIFECYCLE_ENV,
        IDP_MEK: mek,
        IDP_LOG_LEVEL: 'info',
        IDP_TEST_INSTANCE: `instance-${i + 1}`,
        IDP_TEST_GENERATE_DELAY_MS: '500',
      }),
    ),
  );
  const instances = children.map((child) => ({
    async arm(now: Date) {
      child.send({ type: 'arm', now: now.toISOString() });
      await child.next('armed');
    },
    go: () => child.send({ type: 'go', op: 'check' }),
    result: async () => {
      const message = await child.next('result');
      return { instance: message.instance, changes: message.changes as CheckResult['changes'], alreadyRotated: message.alreadyRotated };
    },
  }));
  return { instances, children };
}

/** PGlite is one process's database: the instances are three KeyLifecycles over the one shared handle. */
function inProcessInstances(handle: DatabaseHandle, mek: string, alreadyRotatedLogs: string[]): Instance[] {
  const config = loadConfig({ ...LIFECYCLE_ENV, IDP_MEK: mek });
  return Array.from({ length: INSTANCES }, (_, i) => {
    const clock = new FakeClock();
    const logger = createLogger('info', { write: (line: string) => alreadyRotatedLogs.push(line) });
    const lifecycle = new KeyLifecycle({ db: handle.db, mek: new KeyRingMekProvider(parseKeyRing(mek, 'test')), policy: config, logger, now: clock.now });
    let running: Promise<CheckResult> | undefined;
    return {
      async arm(now: Date) {
        clock.advance(now.getTime() - clock.now().getTime());
      },
      go() {
        running = lifecycle.check(`instance-${i + 1}`);
      },
      async result() {
        return { instance: `instance-${i + 1}`, ...(await (running as Promise<CheckResult>)) };
      },
    };
  });
}

describe(`rotation check racing in ${INSTANCES} ${usingPostgres ? 'processes' : 'instances over one PGlite'}`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let instances: Instance[];
  let children: LifecycleChild[] = [];
  const inProcessLogs: string[] = [];
  const mek = testMek();
  const clock = new FakeClock();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
    // The first keys, at the start of the fake time.
    const bootstrap = new KeyLifecycle({
      db: handle.db,
      mek: new KeyRingMekProvider(parseKeyRing(mek, 'test')),
      policy: loadConfig({ ...LIFECYCLE_ENV, IDP_MEK: mek }),
      logger: createLogger('silent'),
      now: clock.now,
    });
    await bootstrap.check('startup');
    if (usingPostgres) ({ instances, children } = await childInstances(database, mek));
    else instances = inProcessInstances(handle, mek, inProcessLogs);
  });

  afterAll(async () => {
    await killAllChildren();
    await database?.drop();
  });

  it(`changes the keys exactly once per round, ${ROUNDS} rounds in a row; the others report "already rotated"`, async () => {
    for (let round = 1; round <= ROUNDS; round++) {
      const before = await listKeys(handle.db);
      const expectedPromoted = before.find((k) => k.state === 'next')?.kid;
      const formerCurrent = before.find((k) => k.state === 'current')?.kid;

      clock.advance(HOUR);
      await Promise.all(instances.map((instance) => instance.arm(clock.now())));
      instances.forEach((instance) => instance.go());
      const results = await Promise.all(instances.map((instance) => instance.result()));

      const winners = results.filter((r) => r.changes.length > 0);
      const losers = results.filter((r) => r.changes.length === 0);
      expect({ round, winners: winners.length }).toEqual({ round, winners: 1 });
      expect(winners[0]?.changes).toEqual([
        { action: 'deactivated', kid: formerCurrent },
        { action: 'promoted', kid: expectedPromoted },
        { action: 'created-next', kid: expect.any(String) },
      ]);
      expect(losers.map((r) => r.alreadyRotated)).toEqual(Array(INSTANCES - 1).fill(true));

      const after = await listKeys(handle.db);
      const current = after.filter((k) => k.state === 'current');
      expect({ round, current: current.map((k) => k.kid) }).toEqual({ round, current: [expectedPromoted] });
      expect(after.filter((k) => k.state === 'next').map((k) => k.kid)).toEqual([winners[0]?.changes[2]?.kid]);
      expect(after.filter((k) => k.state === 'previous')).toHaveLength(round);
      expect(after).toHaveLength(round + 2);
    }

    // The audit log and the logs agree: one promotion per round, every loser said so.
    const promotions = await handle.db.selectFrom('audit_events').select('target').where('action', '=', 'key.promoted').execute();
    expect(promotions).toHaveLength(ROUNDS);
    const alreadyRotatedLines = () =>
      (usingPostgres ? children.map((c) => c.output()).join('') : inProcessLogs.join('')).match(/"msg":"already rotated"/g)?.length ?? 0;
    // A child's log line travels over its stdout pipe, apart from its IPC answer: wait for it to arrive.
    await waitFor('every loser logged "already rotated"', () => (alreadyRotatedLines() >= ROUNDS * (INSTANCES - 1) ? true : undefined), 2_000).catch(() => undefined);
    expect(alreadyRotatedLines()).toBe(ROUNDS * (INSTANCES - 1));
  });
});

// Several processes can share the database only on Postgres (PGlite is one process's database).
if (usingPostgres) {
  describe(`${INSTANCES} compiled servers starting at the same moment on an empty database`, () => {
    let database: TestDatabase;
    const servers: Child[] = [];

    beforeAll(async () => {
      database = await createTestDatabase();
    });

    afterAll(async () => {
      for (const server of servers) await stopChild(server);
      await killAllChildren();
      await database?.drop();
    });

    it('create exactly one current and one next key between them, serve the same JWKS and log no error', async () => {
      const mek = testMek();
      const ports = await Promise.all(Array.from({ length: INSTANCES }, () => freePort()));
      for (const port of ports) {
        servers.push(spawnServer({ ...database.env, NODE_ENV: 'test', IDP_MEK: mek, PORT: String(port), HOST: '127.0.0.1', IDP_WORKERS: '1', IDP_LOG_LEVEL: 'warn' }));
      }
      const urls = ports.map((port) => `http://127.0.0.1:${port}`);
      await waitFor(
        'every server is ready',
        async () => {
          const exited = servers.find((s) => s.process.exitCode !== null);
          if (exited) throw new Error(`a server exited:\n${exited.output()}`);
          const statuses = await Promise.all(urls.map(async (url) => (await getJson(`${url}/readyz`)).status));
          return statuses.every((status) => status === 200) ? true : undefined;
        },
        30_000,
        100,
      );

      const handle = await database.open();
      const keys = await listKeys(handle.db);
      expect(keys.map((k) => k.state).sort()).toEqual(['current', 'next']);
      const served = await Promise.all(urls.map((url) => jwksKids(url)));
      for (const kids of served) expect(kids).toEqual(keys.map((k) => k.kid).sort());
      const created = await handle.db.selectFrom('audit_events').select('target').where('action', '=', 'key.created').execute();
      expect(created).toHaveLength(2);
      for (const server of servers) expect(server.output()).not.toMatch(/"level":(50|60)/);
    });
  });
}
