import { sql } from 'kysely';
import { loadConfig } from '../../src/config';
import { KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { KeyLifecycle } from '../../src/keys/lifecycle';
import { listKeys } from '../../src/keys/repository';
import { createLogger } from '../../src/observability/logger';
import { FakeClock, testMek } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { LIFECYCLE_ENV, forkLifecycleChild, killAllChildren, waitFor } from './processes';

const HOUR = 3_600_000;

describe(`a process killed with SIGKILL inside a key transition (${usingPostgres ? 'Postgres' : 'PGlite on disk'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const mek = testMek();
  const clock = new FakeClock();

  const lifecycleOver = (h: DatabaseHandle) =>
    new KeyLifecycle({
      db: h.db,
      mek: new KeyRingMekProvider(parseKeyRing(mek, 'test')),
      policy: loadConfig({ ...LIFECYCLE_ENV, IDP_MEK: mek }),
      logger: createLogger('silent'),
      now: clock.now,
    });
  const auditCount = async (h: DatabaseHandle) =>
    Number((await h.db.selectFrom('audit_events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  beforeAll(async () => {
    database = await createTestDatabase({ onDisk: true });
    handle = await database.open();
    await migrateToLatest(handle);
    await lifecycleOver(handle).check('startup');
  });

  afterAll(async () => {
    await killAllChildren();
    await database?.drop();
  });

  it('leaves the keys as they were before the transition, and the next check works', async () => {
    const before = await listKeys(handle.db);
    const auditBefore = await auditCount(handle);
    expect(before.map((k) => k.state).sort()).toEqual(['current', 'next']);
    // PGlite is one process's database: hand the directory over to the child.
    if (!usingPostgres) await database.release();

    const child = await forkLifecycleChild({ ...database.env, ...LIFECYCLE_ENV, IDP_MEK: mek, IDP_TEST_HANG_IN_GENERATE: '1' });
    child.send({ type: 'arm', now: clock.now().toISOString() });
    await child.next('armed');
    child.send({ type: 'go', op: 'rotate', force: true });
    // The child has demoted current and promoted next (both UPDATEs ran) and now hangs in key
    // generation, with its transaction open.
    await child.next('in-transition');

    if (usingPostgres) {
      // Proof that the child is mid-transaction: its backend holds the key lock and row locks on signing_keys…
      const locks = await sql<{ locktype: string; mode: string }>`
        select l.locktype, l.mode from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where a.datname = current_database() and a.state = 'idle in transaction' and l.granted
          and (l.locktype = 'advisory' or (l.locktype = 'relation' and l.relation = 'signing_keys'::regclass and l.mode = 'RowExclusiveLock'))`.execute(handle.db);
      expect(locks.rows.map((r) => r.locktype).sort()).toEqual(['advisory', 'relation']);
      // …and what it wrote is not visible to any other instance.
      expect(await listKeys(handle.db)).toEqual(before);
    }

    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');

    if (usingPostgres) {
      // The server rolls the open transaction back when the connection drops; the lock goes with it.
      await waitFor(
        'the killed child’s backend is gone',
        async () => {
          const { rows } = await sql<{ n: string }>`
            select count(*) as n from pg_stat_activity where datname = current_database() and state = 'idle in transaction'`.execute(handle.db);
          return Number(rows[0]?.n) === 0 ? true : undefined;
        },
        5_000,
      );
    } else {
      // Reopening after a kill -9 must work: the stale lock file is taken over and the WAL replayed.
      handle = await database.open();
    }

    const after = await listKeys(handle.db);
    expect(after).toEqual(before);
    expect(after.filter((k) => k.state === 'current')).toHaveLength(1);
    expect(after.filter((k) => k.state === 'next')).toHaveLength(1);
    expect(await auditCount(handle)).toBe(auditBefore);

    // The state is usable: every key still decrypts, and the next due check promotes as it should.
    const lifecycle = lifecycleOver(handle);
    await lifecycle.assertAllDecryptable();
    clock.advance(HOUR);
    const result = await lifecycle.check('schedule');
    expect(result.changes.map((c) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
    const promoted = before.find((k) => k.state === 'next')?.kid;
    const final = await listKeys(handle.db);
    expect(final.filter((k) => k.state === 'current').map((k) => k.kid)).toEqual([promoted]);
    expect(final.map((k) => k.state).sort()).toEqual(['current', 'next', 'previous']);
  });

  it('keeps a transition committed just before the kill (no clean close)', async () => {
    const before = await listKeys(handle.db);
    const next = before.find((k) => k.state === 'next')?.kid;
    if (!usingPostgres) await database.release();

    const child = await forkLifecycleChild({ ...database.env, ...LIFECYCLE_ENV, IDP_MEK: mek });
    child.send({ type: 'arm', now: clock.now().toISOString() });
    await child.next('armed');
    child.send({ type: 'go', op: 'rotate', force: true });
    const result = await child.next('result');
    expect(result.changes.map((c) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
    child.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');
    if (!usingPostgres) handle = await database.open();

    const after = await listKeys(handle.db);
    expect(after.filter((k) => k.state === 'current').map((k) => k.kid)).toEqual([next]);
    expect(after.filter((k) => k.state === 'next').map((k) => k.kid)).toEqual([result.changes[2]?.kid]);
    expect(after).toHaveLength(before.length + 1);
    await lifecycleOver(handle).assertAllDecryptable();
  });

  // Only Postgres has other processes that can wait on the key lock: PGlite is one process's database.
  if (usingPostgres) {
    it('an instance waiting for the key lock of the killed process gets it when the process dies, and rotates once', async () => {
      const before = await listKeys(handle.db);
      clock.advance(HOUR);
      const child = await forkLifecycleChild({ ...database.env, ...LIFECYCLE_ENV, IDP_MEK: mek, IDP_TEST_HANG_IN_GENERATE: '1' });
      child.send({ type: 'arm', now: clock.now().toISOString() });
      await child.next('armed');
      child.send({ type: 'go', op: 'rotate', force: true });
      await child.next('in-transition');

      // Another instance (its own pool) runs the due rotation check and queues behind the child's lock.
      const other = await database.open();
      let settled = false;
      const waiting = lifecycleOver(other)
        .check('schedule')
        .finally(() => (settled = true));
      await waitFor(
        'the other instance waits for the key lock',
        async () => {
          const { rows } = await sql<{ n: string }>`
            select count(*) as n from pg_locks l join pg_stat_activity a on a.pid = l.pid
            where a.datname = current_database() and l.locktype = 'advisory' and not l.granted`.execute(handle.db);
          return Number(rows[0]?.n) === 1 ? true : undefined;
        },
        5_000,
      );
      expect(settled).toBe(false);

      child.kill('SIGKILL');
      const result = await waiting;
      expect(result.changes).toEqual([
        { action: 'deactivated', kid: before.find((k) => k.state === 'current')?.kid },
        { action: 'promoted', kid: before.find((k) => k.state === 'next')?.kid },
        { action: 'created-next', kid: expect.any(String) },
      ]);
      const after = await listKeys(handle.db);
      expect(after.filter((k) => k.state === 'current')).toHaveLength(1);
      expect(after.filter((k) => k.state === 'next')).toHaveLength(1);
      expect(after).toHaveLength(before.length + 1);
    });
  }
});
