import pg from 'pg';
import { runCli } from '../../src/cli/program';
import { startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { freePort, getJson, jwksKids, killAllChildren, spawnServer, stopChild, waitFor, type Child } from './processes';

interface LogLine {
  level: number;
  msg: string;
  attempt?: number;
}

function logLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

describe('the compiled server started with its database unreachable', () => {
  let server: Child;
  let url: string;
  const password = 'not-a-real-password-4711';

  beforeAll(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // Port 1 on the loopback: connection refused at once, every time.
    server = spawnServer({
      NODE_ENV: 'test',
      DATABASE_URL: `postgres://idp:${password}@127.0.0.1:1/idp`,
      IDP_MEK: testMek(),
      PORT: String(port),
      HOST: '127.0.0.1',
      IDP_WORKERS: '1',
      IDP_LOG_LEVEL: 'info',
    });
  });

  afterAll(async () => {
    await killAllChildren();
  });

  it('keeps running and retrying, one log line per attempt; /healthz 200, /readyz 503, JWKS 503; SIGTERM stops it', async () => {
    await waitFor('/healthz answers', async () => ((await getJson(`${url}/healthz`)).status === 200 ? true : undefined), 15_000, 100);
    await waitFor('three attempts logged', () => (/database unreachable \(attempt 3\)/.test(server.output()) ? true : undefined), 15_000, 100);

    const readyz = await getJson(`${url}/readyz`);
    expect(readyz).toEqual({ status: 503, body: { status: 'not ready', checks: { database: false, signing_key: false } } });
    const jwks = await getJson(`${url}/.well-known/jwks.json`);
    expect(jwks.status).toBe(503);
    expect(jwks.body).toMatchObject({ error: 'temporarily_unavailable' });

    const attempts = logLines(server.output())
      .filter((l) => l.msg.startsWith('database unreachable'))
      .map((l) => l.attempt);
    expect(attempts.slice(0, 3)).toEqual([1, 2, 3]);
    expect(new Set(attempts).size).toBe(attempts.length);
    expect(server.process.exitCode).toBeNull();
    // The connection string's password is never logged.
    expect(server.output()).not.toContain(password);

    expect(await stopChild(server)).toBe(0);
  });
});

// PGlite runs inside the server's own process: there is no connection that could be cut, so an
// outage exists only on Postgres and this block is registered only there.
if (usingPostgres) {
  describe('a running server through a Postgres outage', () => {
    let database: TestDatabase;
    let server: TestServer;
    let admin: pg.Client;
    const mek = testMek();
    let name: string;

    beforeAll(async () => {
      database = await createTestDatabase();
      name = new URL(database.databaseUrl as string).pathname.slice(1);
      // Large, so that after the outage only the re-established LISTEN can deliver a key change.
      const config = testConfig(database, { IDP_MEK: mek, IDP_KEY_REFRESH_INTERVAL: '1h' });
      server = await startTestServer(config, await database.open());
      // The admin connection goes to the server's maintenance database, never to the one being cut.
      admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await admin.connect();
    });

    afterAll(async () => {
      await admin?.query(`alter database ${name} allow_connections true`).catch(() => undefined);
      await admin?.end();
      await server?.close();
      await database?.drop();
    });

    const terminateAll = () =>
      admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    const listening = async () => {
      const { rows } = await admin.query<{ n: string }>(
        `select count(*) as n from pg_stat_activity where datname = $1 and query ilike 'LISTEN %'`,
        [name],
      );
      return Number(rows[0]?.n);
    };

    it('serves the JWKS and signs from memory, is not ready while cut off, and recovers by itself', async () => {
      const kids = await jwksKids(server.url);
      const signing = server.services.keys.current.kid;
      expect((await getJson(`${server.url}/readyz`)).status).toBe(200);
      expect(await listening()).toBe(1);

      // The outage: no new connections, and every existing one cut, again and again for 2 s.
      await admin.query(`alter database ${name} allow_connections false`);
      const cutUntil = Date.now() + 2_000;
      let cuts = 0;
      const cutting = (async () => {
        while (Date.now() < cutUntil) {
          await terminateAll();
          cuts += 1;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      try {
        await waitFor('/readyz answers 503', async () => {
          const readyz = await getJson(`${server.url}/readyz`);
          return readyz.status === 503 ? readyz : undefined;
        }, 5_000).then((readyz) => expect(readyz.body).toMatchObject({ checks: { database: false, signing_key: true } }));
        expect(await jwksKids(server.url)).toEqual(kids);
        expect((await getJson(`${server.url}/healthz`)).status).toBe(200);
        const token = await server.services.sign({ sub: 'during-outage' }, 'JWT');
        expect(JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString())).toMatchObject({ kid: signing });
        await cutting;
        expect(cuts).toBeGreaterThan(5);
        expect(await listening()).toBe(0);
        expect((await getJson(`${server.url}/readyz`)).status).toBe(503);
      } finally {
        await cutting;
        await admin.query(`alter database ${name} allow_connections true`);
      }

      // Recovery, by itself: ready again, and the LISTEN connection back (its backoff is at most 10 s).
      await waitFor('/readyz answers 200 again', async () => ((await getJson(`${server.url}/readyz`)).status === 200 ? true : undefined), 10_000, 100);
      await waitFor('the LISTEN connection is re-established', async () => ((await listening()) === 1 ? true : undefined), 20_000, 100);
      expect(await jwksKids(server.url)).toEqual(kids);

      // A rotation made now reaches the server through that connection within a second.
      let stdout = '';
      const io = { stdout: (t: string) => (stdout += t), stderr: () => undefined, env: { ...database.env, IDP_MEK: mek, IDP_LOG_LEVEL: 'silent' } };
      expect(await runCli(['keys', 'rotate', '--force', '--json'], io)).toBe(0);
      const changes = (JSON.parse(stdout) as { changes: Array<{ action: string; kid: string }> }).changes;
      const promoted = changes.find((c) => c.action === 'promoted')?.kid;
      const created = changes.find((c) => c.action === 'created-next')?.kid as string;
      await waitFor(
        'the rotation reaches the server',
        async () => (server.services.keys.current.kid === promoted && (await jwksKids(server.url)).includes(created) ? true : undefined),
        1_000,
      );
    });
  });
}
