import { runCli } from '../../src/cli/program';
import { testConfig, testMek, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { forkLifecycleChild, freePort, getJson, jwksKids, killAllChildren, spawnServer, stopChild, waitFor, type Child } from './processes';

// Large enough that the periodic re-read cannot be what delivers a change: only LISTEN/NOTIFY can.
const NO_PERIODIC_REFRESH = { IDP_KEY_REFRESH_INTERVAL: '1h', NODE_ENV: 'test' };
/** docs/signing-keys.md "Signing keys": every instance learns of a key change within a second. */
const WITHIN_MS = 1_000;

interface Change {
  action: string;
  kid: string;
}

/** Reads the kid of a compact JWS's protected header. */
function headerKid(token: string): string {
  return (JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString()) as { kid: string }).kid;
}

/**
 * Postgres: two in-process servers over two separate pools, plus the compiled server in its own
 * OS process; the CLI opens a pool of its own. PGlite: two in-process servers sharing the one
 * handle (one process's database), and the CLI on that handle.
 */
describe(`key changes reach every running instance within ${WITHIN_MS} ms (${usingPostgres ? 'Postgres, 3 processes' : 'PGlite'})`, () => {
  let database: TestDatabase;
  const mek = testMek();
  const servers: TestServer[] = [];
  let childServer: Child | undefined;
  let childUrl: string | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = testConfig(database, { IDP_MEK: mek, ...NO_PERIODIC_REFRESH });
    servers.push(await startTestServer(config, await database.open()));
    servers.push(await startTestServer(config, await database.open()));
    if (usingPostgres) {
      const port = await freePort();
      childUrl = `http://127.0.0.1:${port}`;
      childServer = spawnServer({
        ...database.env,
        ...NO_PERIODIC_REFRESH,
        IDP_MEK: mek,
        PORT: String(port),
        HOST: '127.0.0.1',
        IDP_WORKERS: '1',
        IDP_LOG_LEVEL: 'warn',
      });
      await waitFor('the child server is ready', async () => ((await getJson(`${childUrl}/readyz`)).status === 200 ? true : undefined), 30_000, 100);
    }
  });

  afterAll(async () => {
    if (childServer) await stopChild(childServer);
    await killAllChildren();
    for (const server of servers) await server.close();
    await database?.drop();
  });

  const urls = () => [...servers.map((s) => s.url), ...(childUrl ? [childUrl] : [])];

  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const io = { stdout: (t: string) => (stdout += t), stderr: (t: string) => (stderr += t), env: { ...database.env, IDP_MEK: mek, IDP_LOG_LEVEL: 'silent' } };
    // On Postgres the CLI opens its own connection, as a separate admin process would.
    const code = await runCli(args, io, usingPostgres ? {} : { handle: await database.open() });
    return { code, stdout, stderr };
  }

  /** Waits until every instance serves `expected` as its JWKS and, in process, signs with `signing`. */
  async function expectEverywhere(expected: string[], signing: string | undefined): Promise<void> {
    await waitFor(
      `every instance serves ${expected.join(', ')}${signing ? ` and signs with ${signing}` : ''}`,
      async () => {
        const served = await Promise.all(urls().map((url) => jwksKids(url)));
        const jwksDone = served.every((kids) => JSON.stringify(kids) === JSON.stringify([...expected].sort()));
        const signingDone = signing === undefined || servers.every((s) => s.services.keys.current.kid === signing);
        return jwksDone && signingDone ? true : undefined;
      },
      WITHIN_MS,
    );
  }

  it('a forced rotation by the CLI: new JWKS and new signing key everywhere', async () => {
    const kidsBefore = await jwksKids(servers[0]!.url);
    expect(kidsBefore).toHaveLength(2);
    for (const url of urls()) expect(await jwksKids(url)).toEqual(kidsBefore);

    const { code, stdout, stderr } = await cli(['keys', 'rotate', '--force', '--json']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: expect.stringContaining('forced rotation') });
    const changes = (JSON.parse(stdout) as { changes: Change[] }).changes;
    const promoted = changes.find((c) => c.action === 'promoted')!.kid;
    const created = changes.find((c) => c.action === 'created-next')!.kid;

    await expectEverywhere([...kidsBefore, created], promoted);
    // The in-memory signing key is what new tokens carry.
    for (const server of servers) expect(headerKid(await server.services.sign({ sub: 'u1' }, 'JWT'))).toBe(promoted);
  });

  it('a revocation by the CLI: the key leaves every JWKS', async () => {
    const rows = await servers[0]!.services.lifecycle.list();
    const previous = rows.find((k) => k.state === 'previous')!.kid;
    const current = rows.find((k) => k.state === 'current')!.kid;
    const next = rows.find((k) => k.state === 'next')!.kid;

    const { code, stderr } = await cli(['keys', 'revoke', previous, '--reason', 'test: leaked', '--json']);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    await expectEverywhere([current, next], current);
  });

  // Another OS process can open the database only on Postgres (PGlite is one process's database).
  if (usingPostgres) {
    it('a rotation by the lifecycle of another process', async () => {
      const kidsBefore = await jwksKids(servers[0]!.url);
      const child = await forkLifecycleChild({ ...database.env, NODE_ENV: 'test', IDP_MEK: mek });
      child.send({ type: 'go', op: 'rotate', force: true });
      const { changes } = await child.next('result');
      const promoted = changes.find((c) => c.action === 'promoted')!.kid;
      const created = changes.find((c) => c.action === 'created-next')!.kid;
      await expectEverywhere([...kidsBefore, created], promoted);
    });
  }
});
