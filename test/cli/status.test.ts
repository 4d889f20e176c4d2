import { runCli } from '../../src/cli/program';
import type { DatabaseHandle } from '../../src/db';
import type { SigningKeyRow } from '../../src/db/schema';
import { migrations } from '../../db/migrations';
import { keyTransition } from '../../src/keys/view';
import { FakeClock, testMek } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('keyTransition: when each key changes next', () => {
  const policy = { rotationIntervalMs: 30 * DAY, prepublishMs: DAY, retentionMs: 2 * HOUR };
  const t0 = new Date('2026-11-01T00:00:00.000Z');
  const at = (ms: number) => new Date(t0.getTime() + ms);
  const key = (state: SigningKeyRow['state'], times: Partial<Pick<SigningKeyRow, 'published_at' | 'activated_at' | 'deactivated_at'>>) =>
    ({ kid: state, state, published_at: null, activated_at: null, deactivated_at: null, ...times }) as SigningKeyRow;

  it('promotion and deactivation at max(current.activated_at + interval, next.published_at + prepublish)', () => {
    const current = key('current', { published_at: t0, activated_at: t0 });
    const early = key('next', { published_at: at(DAY) });
    expect(keyTransition(early, [current, early], policy)).toEqual({ next_transition: 'promotion', next_transition_at: at(30 * DAY).toISOString() });
    expect(keyTransition(current, [current, early], policy)).toEqual({ next_transition: 'deactivation', next_transition_at: at(30 * DAY).toISOString() });
    // A next key published late (after a revocation) is what holds the promotion back.
    const late = key('next', { published_at: at(29.5 * DAY) });
    expect(keyTransition(late, [current, late], policy).next_transition_at).toBe(at(30.5 * DAY).toISOString());
  });

  it('retirement at deactivated_at + retention; nothing for retired keys; unknown for a current key with no next', () => {
    const previous = key('previous', { published_at: t0, activated_at: t0, deactivated_at: at(DAY) });
    expect(keyTransition(previous, [previous], policy)).toEqual({ next_transition: 'retirement', next_transition_at: at(DAY + 2 * HOUR).toISOString() });
    expect(keyTransition(key('retired', {}), [], policy)).toEqual({ next_transition: null, next_transition_at: null });
    const lonely = key('current', { published_at: t0, activated_at: t0 });
    expect(keyTransition(lonely, [lonely], policy)).toEqual({ next_transition: 'deactivation', next_transition_at: null });
  });
});

describe('idp status', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const mek = testMek('status-mek');
  const clock = new FakeClock();

  const idp = async (args: string[], env: Record<string, string> = {}): Promise<Result> => {
    let stdout = '';
    let stderr = '';
    const code = await runCli(
      args,
      { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: { IDP_LOG_LEVEL: 'silent', IDP_MEK: mek, IDP_ISSUER: 'http://idp.test', ...database.env, ...env } },
      { handle, now: clock.now },
    );
    return { code, stdout, stderr };
  };
  const status = async (env: Record<string, string> = {}) => {
    const result = await idp(['status', '--json'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    return JSON.parse(result.stdout);
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('on an empty database: every migration pending, counts unknown, and it migrates nothing', async () => {
    const report = await status();
    expect(Object.keys(report).sort()).toEqual(['admin_tokens', 'blocks_in_force', 'checked_at', 'clients', 'database', 'keys', 'mek', 'problems'].sort());
    expect(report.database.migrations).toEqual({ applied: [], pending: Object.keys(migrations).sort() });
    expect(report).toMatchObject({ keys: [], clients: null, admin_tokens: null, blocks_in_force: null });
    expect(report.problems[0]).toMatch(/migration\(s\) pending: run `idp migrate`/);
    expect((await status()).database.migrations.applied).toEqual([]);
  });

  it('the live keys with their next transition, the ring, and the counts', async () => {
    expect((await idp(['keys', 'check'])).code).toBe(0);
    expect((await idp(['clients', 'create', '--name', 'one', '--scope', 'read'])).code).toBe(0);
    const second = JSON.parse((await idp(['clients', 'create', '--name', 'two', '--scope', 'read', '--json'])).stdout).client_id as string;
    expect((await idp(['clients', 'disable', second])).code).toBe(0);
    expect((await idp(['admin-token', 'issue', '--super'])).code).toBe(0);
    const revoked = JSON.parse((await idp(['admin-token', 'issue', '--permission', 'keys:read', '--json'])).stdout).id as string;
    expect((await idp(['admin-token', 'revoke', revoked])).code).toBe(0);
    const now = clock.now();
    await handle.db
      .insertInto('rate_limit_counters')
      .values([
        { key: 'status-test:blocked', failures: 20, window_ends_at: new Date(now.getTime() + 60_000), blocked_until: new Date(now.getTime() + 60_000) },
        { key: 'status-test:lifted', failures: 20, window_ends_at: new Date(now.getTime() - 1), blocked_until: new Date(now.getTime() - 1) },
        { key: 'status-test:counting', failures: 3, window_ends_at: new Date(now.getTime() + 60_000), blocked_until: null },
      ])
      .execute();

    const report = await status();
    expect(report.database.migrations.pending).toEqual([]);
    expect(report.database.migrations.applied).toEqual(Object.keys(migrations).sort());
    expect(report.keys).toHaveLength(2);
    const current = report.keys.find((k: { state: string }) => k.state === 'current');
    expect(Object.keys(current).sort()).toEqual(
      ['kid', 'state', 'published_at', 'activated_at', 'deactivated_at', 'mek_id', 'opens', 'next_transition', 'next_transition_at'].sort(),
    );
    expect(current).toMatchObject({ mek_id: 'status-mek', opens: true, next_transition: 'deactivation' });
    expect(current.next_transition_at).toBe(new Date(Date.parse(current.activated_at) + 30 * DAY).toISOString());
    expect(report.mek).toEqual({ primary: 'status-mek', ring: ['status-mek'], in_use: ['status-mek'], all_keys_open: true });
    expect(report.clients).toEqual({ total: 2, disabled: 1 });
    expect(report.admin_tokens).toEqual({ active: 1, revoked: 1, expired: 0 });
    expect(report.blocks_in_force).toBe(1);
    expect(report.problems).toEqual([]);

    const text = await idp(['status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^database {6}\S+/);
    expect(text.stdout).toContain('clients       2 (1 disabled)');
    expect(text.stdout).toContain('blocks        1 in force');
    expect(text.stdout).toMatch(/KID\s+STATE\s+ACTIVATED_AT\s+NEXT_TRANSITION\s+NEXT_TRANSITION_AT\s+MEK_ID\s+OPENS/);
  });

  it('a ring that does not open the keys: named per key, and all_keys_open false', async () => {
    const other = testMek('status-mek');
    const report = await status({ IDP_MEK: other });
    expect(report.mek.all_keys_open).toBe(false);
    expect(report.keys.every((k: { opens: boolean }) => !k.opens)).toBe(true);
    expect(report.problems).toHaveLength(2);
    expect(report.problems[0]).toMatch(/^key \S+ \((current|next)\) does not open under the ring: .*status-mek/);
  });
});
