import { KeyLifecycle, KeyLifecycleError } from '../../src/keys/lifecycle';
import { KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import { migrateToLatest } from '../../src/db/migrate';
import { listKeys } from '../../src/keys/repository';
import { createLogger } from '../../src/observability/logger';
import type { DatabaseHandle } from '../../src/db';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { FakeClock, testMek } from '../helpers/context';

const policy = { keySize: 2048, rotationIntervalMs: 30 * 86_400_000, prepublishMs: 86_400_000, retentionMs: 3_600_000 + 600_000, jwksMaxAgeSeconds: 300 };
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('key lifecycle (fake clock)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let clock: FakeClock;
  let lifecycle: KeyLifecycle;

  beforeEach(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
    clock = new FakeClock();
    lifecycle = new KeyLifecycle({
      db: handle.db,
      mek: new KeyRingMekProvider(parseKeyRing(testMek(), 'test')),
      policy,
      logger: createLogger('silent'),
      now: clock.now,
    });
  });
  afterEach(async () => {
    await database.drop();
  });

  const states = async () => (await listKeys(handle.db)).map((k) => k.state).sort();

  it('creates a current and a next key on first start, and nothing more on a second check', async () => {
    const first = await lifecycle.check('startup');
    expect(first.changes.map((c) => c.action)).toEqual(['created-current', 'created-next']);
    expect(await states()).toEqual(['current', 'next']);
    const second = await lifecycle.check('schedule');
    expect(second.changes).toEqual([]);
    expect(await states()).toEqual(['current', 'next']);
  });

  it('promotes next only once current has signed for the interval and next was published for the prepublish time', async () => {
    await lifecycle.check('startup');
    const before = await listKeys(handle.db);
    const next = before.find((k) => k.state === 'next')!;
    const current = before.find((k) => k.state === 'current')!;

    clock.advance(30 * DAY - 1);
    expect((await lifecycle.check('schedule')).changes).toEqual([]);
    clock.advance(1);
    const result = await lifecycle.check('schedule');
    expect(result.changes.map((c) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
    const after = await listKeys(handle.db);
    expect(after.find((k) => k.kid === next.kid)!.state).toBe('current');
    expect(after.find((k) => k.kid === current.kid)!.state).toBe('previous');
    expect(await states()).toEqual(['current', 'next', 'previous']);
  });

  it('moves previous to retired after the retention and destroys its private material', async () => {
    await lifecycle.check('startup');
    clock.advance(30 * DAY);
    await lifecycle.check('schedule');
    const previous = (await listKeys(handle.db)).find((k) => k.state === 'previous')!;
    clock.advance(policy.retentionMs - 1);
    expect((await lifecycle.check('schedule')).changes).toEqual([]);
    clock.advance(1);
    expect((await lifecycle.check('schedule')).changes).toEqual([{ action: 'retired', kid: previous.kid }]);
    const retired = (await listKeys(handle.db)).find((k) => k.kid === previous.kid)!;
    expect(retired.state).toBe('retired');
    expect(retired.encrypted_private_key).toBeNull();
    expect(retired.wrapped_data_key).toBeNull();
    expect(retired.retired_at).toEqual(clock.now());
  });

  it('refuses a manual rotation before the next key is old enough and says when it will be safe', async () => {
    await lifecycle.check('startup');
    clock.advance(2 * HOUR);
    const error = await lifecycle.rotate('cli', { force: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyLifecycleError);
    expect((error as KeyLifecycleError).code).toBe('ERR_ROTATION_TOO_EARLY');
    expect((error as KeyLifecycleError).safeAt).toEqual(new Date(clock.now().getTime() - 2 * HOUR + DAY));
    expect((error as Error).message).toContain((error as KeyLifecycleError).safeAt!.toISOString());
    expect(await states()).toEqual(['current', 'next']);

    clock.advance(DAY - 2 * HOUR);
    const changes = await lifecycle.rotate('cli', { force: false });
    expect(changes.map((c) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
  });

  it('forces a rotation at any age', async () => {
    await lifecycle.check('startup');
    const changes = await lifecycle.rotate('cli', { force: true });
    expect(changes.map((c) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
    expect(await states()).toEqual(['current', 'next', 'previous']);
  });

  it('revoking the current key promotes next first, then publishes a new next', async () => {
    await lifecycle.check('startup');
    const keys = await listKeys(handle.db);
    const current = keys.find((k) => k.state === 'current')!;
    const next = keys.find((k) => k.state === 'next')!;
    const result = await lifecycle.revoke('cli', current.kid);
    expect(result.previousState).toBe('current');
    expect(result.verifierCacheSeconds).toBe(300);
    const after = await listKeys(handle.db);
    expect(after.find((k) => k.kid === next.kid)!.state).toBe('current');
    const revoked = after.find((k) => k.kid === current.kid)!;
    expect(revoked.state).toBe('revoked');
    expect(revoked.encrypted_private_key).toBeNull();
    expect(after.filter((k) => k.state === 'next')).toHaveLength(1);
  });

  it('refuses to revoke an unknown or already revoked key, changing nothing', async () => {
    await lifecycle.check('startup');
    await expect(lifecycle.revoke('cli', 'no-such-kid')).rejects.toMatchObject({ code: 'ERR_KEY_NOT_FOUND' });
    const next = (await listKeys(handle.db)).find((k) => k.state === 'next')!;
    await lifecycle.revoke('cli', next.kid);
    await expect(lifecycle.revoke('cli', next.kid)).rejects.toMatchObject({ code: 'ERR_KEY_STATE' });
    expect(await states()).toEqual(['current', 'next', 'revoked']);
  });

  it('writes an audit event for every transition', async () => {
    await lifecycle.check('startup');
    await lifecycle.rotate('cli', { force: true });
    const events = await handle.db.selectFrom('audit_events').select(['actor', 'action']).orderBy('occurred_at').execute();
    expect(events.map((e) => `${e.actor}:${e.action}`)).toEqual(
      expect.arrayContaining(['startup:key.created', 'cli:key.deactivated', 'cli:key.promoted']),
    );
    expect(events.filter((e) => e.action === 'key.created')).toHaveLength(3);
  });
});
