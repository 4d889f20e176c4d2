import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { runCli } from '../../src/cli/program';
import type { DatabaseHandle } from '../../src/db';
import { listKeys } from '../../src/keys/repository';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { FakeClock, testMek } from '../helpers/context';

const run = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

describe('idp CLI', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const mek = testMek('cli-mek');
  const clock = new FakeClock();
  // The ring that opens the stored keys: changes when `mek rewrap` moves them to a new MEK.
  let ring = mek;
  const baseEnv = () => ({ IDP_LOG_LEVEL: 'silent', IDP_MEK: mek, IDP_ISSUER: 'http://idp.test', ...database.env });

  const idp = async (args: string[], env: Record<string, string> = {}): Promise<Result> => {
    let stdout = '';
    let stderr = '';
    const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env: { ...baseEnv(), ...env } }, { handle, now: clock.now });
    return { code, stdout, stderr };
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
  });
  afterAll(async () => {
    await database.drop();
  });

  it('migrate applies the migrations once', async () => {
    const first = await idp(['migrate', '--json']);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout).applied.length).toBeGreaterThan(0);
    const second = await idp(['migrate']);
    expect(second).toEqual({ code: 0, stdout: 'database is up to date\n', stderr: '' });
  });

  it('keys check creates the first keys, then has nothing to do', async () => {
    const first = await idp(['keys', 'check', '--json']);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout).changes.map((c: { action: string }) => c.action)).toEqual(['created-current', 'created-next']);
    expect(await idp(['keys', 'check'])).toMatchObject({ code: 0, stdout: 'nothing to do\n' });
  });

  it('keys list --json prints every key with the fields of the contract', async () => {
    const { code, stdout } = await idp(['keys', 'list', '--json']);
    expect(code).toBe(0);
    const keys = JSON.parse(stdout);
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(
        [
          'activated_at',
          'alg',
          'bits',
          'created_at',
          'deactivated_at',
          'kid',
          'mek_id',
          'published_at',
          'retired_at',
          'state',
          'next_transition',
          'next_transition_at',
        ].sort(),
      );
      expect(key).toMatchObject({ alg: 'RS256', bits: 2048, mek_id: 'cli-mek' });
    }
    const table = await idp(['keys', 'list']);
    expect(table.stdout.split('\n')[0]).toMatch(/^KID\s+STATE\s+BITS.*NEXT_TRANSITION\s+NEXT_TRANSITION_AT\s+MEK_ID$/);
  });

  it('keys list gives each key its next transition: promotion and deactivation when both limits have passed', async () => {
    // The default policy: IDP_KEY_ROTATION_INTERVAL 30d, IDP_KEY_PREPUBLISH 24h; both keys were created at the clock's time.
    const keys = JSON.parse((await idp(['keys', 'list', '--json'])).stdout) as Array<Record<string, string>>;
    const current = keys.find((k) => k.state === 'current')!;
    const next = keys.find((k) => k.state === 'next')!;
    const due = new Date(Date.parse(current.activated_at!) + 30 * 86_400_000).toISOString();
    expect(current).toMatchObject({ next_transition: 'deactivation', next_transition_at: due });
    expect(next).toMatchObject({ next_transition: 'promotion', next_transition_at: due });
  });

  it('keys rotate refuses before the next key is old enough, saying when, and changes nothing', async () => {
    const before = await listKeys(handle.db);
    clock.advance(3_600_000);
    const result = await idp(['keys', 'rotate']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^idp: next key \S+ has been published for less than IDP_KEY_PREPUBLISH; rotation is safe from 2026-11-23T12:00:00.000Z \(or use --force\)\n$/);
    expect(await listKeys(handle.db)).toEqual(before);
  });

  it('keys rotate --force promotes and warns', async () => {
    const result = await idp(['keys', 'rotate', '--force', '--json']);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('warning: forced rotation');
    expect(JSON.parse(result.stdout).changes.map((c: { action: string }) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
  });

  it('keys revoke of the current key promotes next and says how long verifiers may trust it', async () => {
    const current = (await listKeys(handle.db)).find((k) => k.state === 'current')!;
    const result = await idp(['keys', 'revoke', current.kid]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`revoked          ${current.kid}`);
    expect(result.stdout).toContain('for up to 300s (the JWKS max-age)');
    expect((await listKeys(handle.db)).find((k) => k.kid === current.kid)!.state).toBe('revoked');
  });

  it('keys revoke of an unknown kid is one clear line, exit 1, nothing changed', async () => {
    const before = await listKeys(handle.db);
    expect(await idp(['keys', 'revoke', "x' or 1=1 --"])).toEqual({ code: 1, stdout: '', stderr: `idp: no signing key has kid "x' or 1=1 --"\n` });
    expect(await listKeys(handle.db)).toEqual(before);
  });

  it('takes an id that starts with a dash (base64url kids may) as the id, not as an option', async () => {
    expect(await idp(['keys', 'revoke', '-Abc_123', '--json'])).toEqual({ code: 1, stdout: '', stderr: 'idp: no signing key has kid "-Abc_123"\n' });
  });

  it('mek generate prints a usable key-ring entry; mek rewrap moves every key to the new primary', async () => {
    const generated = await idp(['mek', 'generate']);
    expect(generated.code).toBe(0);
    const entry = generated.stdout.trim();
    expect(entry).toMatch(/^mek-\d{8}-[0-9a-f]{6}:[A-Za-z0-9+/]{43}=$/);
    const rewrap = await idp(['mek', 'rewrap', '--json'], { IDP_MEK: `${entry},${mek}` });
    expect(rewrap.code).toBe(0);
    expect(JSON.parse(rewrap.stdout)).toEqual({ rewrapped: 3 });
    ring = entry;
    const list = JSON.parse((await idp(['keys', 'list', '--json'], { IDP_MEK: entry })).stdout) as Array<{ mek_id: string | null; state: string }>;
    expect(list.filter((k) => k.mek_id !== null).every((k) => k.mek_id === entry.split(':')[0])).toBe(true);
  });

  it('refuses a malformed MEK in one line without touching the database', async () => {
    const before = await listKeys(handle.db);
    expect(await idp(['keys', 'check'], { IDP_MEK: 'oops' })).toEqual({
      code: 1,
      stdout: '',
      stderr: 'idp: IDP_MEK: entry 1 is not "id:base64key" with an id of letters, digits, . _ -\n',
    });
    expect(await listKeys(handle.db)).toEqual(before);
  });

  it('refuses invalid configuration in one line', async () => {
    const result = await idp(['keys', 'list'], { IDP_KEY_SIZE: '1000' });
    expect(result).toEqual({ code: 1, stdout: '', stderr: 'idp: invalid configuration: IDP_KEY_SIZE: "1000" is not one of 2048, 3072, 4096\n' });
  });

  it('answers an unknown command with a usage error (exit 2)', async () => {
    const result = await idp(['bogus']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown command 'bogus'");
  });

  it('escapes what a stored name could do to a terminal, in tables, in `show` and in JSON', async () => {
    const created = await idp(['clients', 'create', '--name', 'plain', '--scope', 'read', '--json']);
    expect(created.code).toBe(0);
    const id = JSON.parse(created.stdout).client_id as string;
    // Written behind the CLI's back (names are refused with control characters today, rows may predate that).
    const evil = '\u001b]0;pwned\u0007\u001b[2J\rfake\u009b31m\u202eevil\nnext\\';
    await sql`update oauth_clients set name = ${evil} where id = ${id}`.execute(handle.db);
    // eslint-disable-next-line no-control-regex
    const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;
    const list = await idp(['clients', 'list']);
    expect(list.code).toBe(0);
    expect(list.stdout).not.toMatch(raw);
    expect(list.stdout).toContain('\\x1b]0;pwned\\x07\\x1b[2J\\rfake\\x9b31m\\u202eevil\\nnext\\\\');
    // One row per client: the newline in the name did not start a new line.
    expect(list.stdout.trimEnd().split('\n')).toHaveLength(2);
    const show = await idp(['clients', 'show', id]);
    expect(show.stdout).not.toMatch(raw);
    expect(show.stdout).toContain('\\x1b]0;pwned');
    const json = await idp(['clients', 'list', '--json']);
    expect(json.stdout).not.toMatch(raw);
    expect(JSON.parse(json.stdout).clients[0].name).toBe(evil);
  });

  describe('the compiled binary', () => {
    const bin = path.resolve(__dirname, '../../dist/src/cli/main.js');
    const spawnIdp = async (args: string[], env: Record<string, string>): Promise<Result> => {
      try {
        const { stdout, stderr } = await run(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
        return { code: 0, stdout, stderr };
      } catch (error) {
        const e = error as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };

    it('reports an unreachable database in one line with exit 1', async () => {
      const result = await spawnIdp(['keys', 'list'], { IDP_MEK: mek, DATABASE_URL: 'postgres://nobody:secret@127.0.0.1:1/idp' });
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe('idp: database unreachable at postgres://nobody:***@127.0.0.1:1/idp\n');
    });

    it('prints keys as JSON from a real process', async () => {
      // PGlite: one process at a time owns a data directory, so the child gets a database of its own.
      const target = usingPostgres ? database : await createTestDatabase({ onDisk: true });
      try {
        const env = { IDP_MEK: ring, IDP_LOG_LEVEL: 'silent', ...target.env };
        if (!usingPostgres) expect((await spawnIdp(['keys', 'check'], env)).code).toBe(0);
        const result = await spawnIdp(['keys', 'list', '--json'], env);
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
        expect(JSON.parse(result.stdout).length).toBeGreaterThanOrEqual(2);
      } finally {
        if (!usingPostgres) await target.drop();
      }
    });
  });
});
