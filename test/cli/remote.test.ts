import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { testMek } from '../helpers/context';
import { childEnv, freePort, getJson, jwksKids, killAllChildren, spawnServer, stopChild, waitFor, type Child } from '../multiprocess/processes';

/**
 * `idp` beside a running embedded server (docs/operating.md "The admin CLI": the server holds the PGlite data directory, so
 * the CLI hands its command to it over `<IDP_DATA_DIR>.sock`. Real processes: the compiled server
 * and the compiled CLI. Embedded only by nature, so it runs the same with or without DATABASE_URL.
 */

const CLI = path.resolve(__dirname, '../../dist/src/cli/main.js');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function idp(args: string[], env: Record<string, string>): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: childEnv(env) }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function token(url: string, clientId: string, secret: string): Promise<{ status: number; body: Record<string, string> }> {
  const response = await fetch(`${url}/oauth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
  });
  return { status: response.status, body: (await response.json()) as Record<string, string> };
}

describe('idp while the embedded server runs on the same data directory', () => {
  let dir: string;
  let dataDir: string;
  let socketFile: string;
  let env: Record<string, string>;
  let url: string;
  let server: Child;

  const start = async () => {
    const child = spawnServer({ ...env, PORT: new URL(url).port });
    await waitFor(
      'the server is ready',
      async () => {
        if (child.process.exitCode !== null) throw new Error(`the server exited with ${child.process.exitCode}:\n${child.output()}`);
        return (await getJson(`${url}/readyz`)).status === 200 ? true : undefined;
      },
      60_000,
      100,
    );
    return child;
  };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-remote-'));
    dataDir = path.join(dir, 'data');
    socketFile = `${dataDir}.sock`;
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    env = { NODE_ENV: 'test', IDP_DATA_DIR: dataDir, IDP_MEK: testMek('remote'), IDP_ISSUER: url, HOST: '127.0.0.1', IDP_LOG_LEVEL: 'info' };
    server = await start();
  });

  afterAll(async () => {
    await killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('listens on <IDP_DATA_DIR>.sock, mode 0600, beside the lock and outside PGlite’s files', async () => {
    await waitFor('the CLI socket', () => (fs.existsSync(socketFile) ? true : undefined), 30_000);
    const stat = fs.statSync(socketFile);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(dataDir)).not.toContain(path.basename(socketFile));
  });

  it('clients create through the server: the client gets a token on the very next request', async () => {
    const created = await idp(['clients', 'create', '--name', 'beside the server', '--scope', 'read write', '--json'], env);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const client = JSON.parse(created.stdout) as { client_id: string; client_secret: string; name: string };
    expect(client.name).toBe('beside the server');
    const issued = await token(url, client.client_id, client.client_secret);
    expect(issued.status).toBe(200);
    expect(issued.body.token_type).toBe('Bearer');
    // And the server ran it: its log names the command.
    expect(server.output()).toContain('"command":"clients create"');
  });

  it('clients disable through the server: the client, now in the server’s cache, is refused on the very next request', async () => {
    const created = JSON.parse((await idp(['clients', 'create', '--name', 'to disable', '--scope', 'read', '--json'], env)).stdout) as {
      client_id: string;
      client_secret: string;
    };
    expect((await token(url, created.client_id, created.client_secret)).status).toBe(200);
    expect((await idp(['clients', 'disable', created.client_id], env)).code).toBe(0);
    expect((await token(url, created.client_id, created.client_secret)).status).toBe(401);
    expect((await idp(['clients', 'delete', created.client_id], env)).code).toBe(0);
  });

  it('keys rotate --force through the server: the JWKS and the signing kid change before the command returns', async () => {
    const before = JSON.parse((await idp(['keys', 'list', '--json'], env)).stdout) as Array<{ kid: string; state: string }>;
    const next = before.find((k) => k.state === 'next')!.kid;
    const created = JSON.parse((await idp(['clients', 'create', '--name', 'rotation', '--scope', 'read', '--json'], env)).stdout) as {
      client_id: string;
      client_secret: string;
    };

    const rotated = await idp(['keys', 'rotate', '--force', '--json'], env);
    expect(rotated.code).toBe(0);
    expect(rotated.stderr).toContain('warning: forced rotation');
    const changes = (JSON.parse(rotated.stdout) as { changes: Array<{ action: string; kid: string }> }).changes;
    expect(changes.map((c) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
    expect(changes[1]!.kid).toBe(next);

    // No waiting: the reply came once the server's key cache had the change.
    const issued = await token(url, created.client_id, created.client_secret);
    expect(issued.status).toBe(200);
    expect(decodeProtectedHeader(issued.body.access_token!).kid).toBe(next);
    expect(await jwksKids(url)).toContain(changes[2]!.kid);
  });

  it('status --json through the server reports the live keys, the ring and the counts', async () => {
    const result = await idp(['status', '--json'], env);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout);
    expect(status.database).toMatchObject({ kind: 'pglite', migrations: { pending: [] } });
    expect(status.mek).toMatchObject({ primary: 'remote', in_use: ['remote'], all_keys_open: true });
    expect(status.clients).toEqual({ total: 2, disabled: 0 });
    expect(status.keys.map((k: { state: string }) => k.state).sort()).toEqual(['current', 'next', 'previous']);
  });

  // Filled while the server runs, compared once it is stopped.
  const throughServer: Record<string, Result> = {};
  const samples: Array<[string, string[]]> = [
    ['unknown kid', ['keys', 'revoke', 'no-such-kid']],
    ['unknown client', ['clients', 'show', 'no-such-client']],
    ['keys list', ['keys', 'list', '--json']],
    ['refused rotation', ['keys', 'rotate']],
    ['usage error', ['clients', 'create', '--scope', 'read']],
    // A page's cursor is made under the server's MEK ring, and the same under the CLI's own (one IDP_MEK).
    ['clients page', ['clients', 'list', '--limit', '1', '--json']],
    ['refused cursor', ['clients', 'list', '--cursor', 'edited']],
  ];

  it('a failing command answers through the server with its exit code and its one line on stderr', async () => {
    for (const [name, args] of samples) throughServer[name] = await idp(args, env);
    expect(throughServer['unknown kid']).toEqual({ code: 1, stdout: '', stderr: 'idp: no signing key has kid "no-such-kid"\n' });
    expect(throughServer['unknown client']).toEqual({ code: 1, stdout: '', stderr: 'idp: no client "no-such-client"\n' });
    expect(throughServer['refused rotation']!.code).toBe(1);
    expect(throughServer['refused rotation']!.stderr).toMatch(/^idp: next key \S+ has been published for less than IDP_KEY_PREPUBLISH; rotation is safe from \S+ \(or use --force\)\n$/);
    expect(throughServer['usage error']!.code).toBe(2);
    expect(JSON.parse(throughServer['clients page']!.stdout)).toEqual({ clients: [expect.objectContaining({ client_id: expect.any(String) })], next_cursor: expect.any(String) });
    expect(throughServer['refused cursor']).toEqual({ code: 1, stdout: '', stderr: expect.stringMatching(/^idp: --cursor: not a cursor of idp clients list or GET \/admin\/v1\/clients .*\n$/) });
  });

  it('once the server stops, the socket is gone and the same commands give the same output and exit codes directly', async () => {
    expect(await stopChild(server)).toBe(0);
    expect(fs.existsSync(socketFile)).toBe(false);
    for (const [name, args] of samples) expect({ name, ...(await idp(args, env)) }).toEqual({ name, ...throughServer[name] });
  });

  it('a stale socket and lock left by a killed server: the CLI opens the directory itself, and a new server replaces the socket', async () => {
    server = await start();
    await waitFor('the CLI socket', () => (fs.existsSync(socketFile) ? true : undefined), 30_000);
    server.kill('SIGKILL');
    await server.exited;
    expect(fs.existsSync(socketFile)).toBe(true);
    const direct = await idp(['clients', 'list', '--json'], env);
    expect(direct.stderr).toBe('');
    expect(direct.code).toBe(0);
    expect(JSON.parse(direct.stdout).clients).toHaveLength(2);

    server = await start();
    await waitFor('a fresh CLI socket', () => (fs.statSync(socketFile, { throwIfNoEntry: false })?.isSocket() ? true : undefined), 30_000);
    const created = await idp(['clients', 'create', '--name', 'after the crash', '--scope', 'read', '--json'], env);
    expect(created.code).toBe(0);
    const client = JSON.parse(created.stdout) as { client_id: string; client_secret: string };
    expect((await token(url, client.client_id, client.client_secret)).status).toBe(200);
    expect(await stopChild(server)).toBe(0);
  });
});
