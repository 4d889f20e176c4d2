import http from 'node:http';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pg from 'pg';
import { runCli } from '../../src/cli/program';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, testConfig, testMek } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { clientNotificationsDelivered } from '../helpers/notifications';
import { freePort, killAllChildren, spawnServer, stopChild, waitFor, type Child } from '../multiprocess/processes';
import { basic, eventually, makeClient } from './helpers';

/** POST /oauth/token on a fresh connection each time, so node:cluster hands requests to every worker. */
function token(url: string, authorization: string): Promise<{ status: number; body: { access_token?: string; error?: string } }> {
  return new Promise((resolve, reject) => {
    const target = new URL('/oauth/token', url);
    const body = 'grant_type=client_credentials';
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent: false, headers: { Authorization: authorization, 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': body.length } },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// Several processes on one database need Postgres; PGlite is one process's database, so on PGlite
// these blocks are not registered and the file checks instead that more workers are refused there.
if (!usingPostgres) {
  it('refuses IDP_WORKERS > 1 on the embedded PGlite, naming the variable', () => {
    expect(() => loadConfig({ IDP_WORKERS: '2' })).toThrow('IDP_WORKERS: must be 1 on the embedded PGlite');
    expect(loadConfig({}).workers).toBe(1);
  });
}

if (usingPostgres) describe('the compiled server with IDP_WORKERS=2 (Postgres)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: Child;
  let url: string;
  let metricsUrl: string;
  const mek = testMek('workers-mek');
  const env = () => ({ IDP_LOG_LEVEL: 'info', IDP_MEK: mek, IDP_ISSUER: 'http://idp.test', NODE_ENV: 'test', ...database.env });

  const idp = async (args: string[]) => {
    let stdout = '';
    const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: () => undefined, env: env() }, { handle });
    expect(code).toBe(0);
    return JSON.parse(stdout);
  };
  const many = (authorization: string) => Promise.all(Array.from({ length: 16 }, () => token(url, authorization)));

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    const port = await freePort();
    const metricsPort = await freePort();
    url = `http://127.0.0.1:${port}`;
    metricsUrl = `http://127.0.0.1:${metricsPort}`;
    server = spawnServer({ ...env(), PORT: String(port), HOST: '127.0.0.1', IDP_WORKERS: '2', IDP_METRICS_PORT: String(metricsPort) });
    // Both workers ready (each logs "ready" once its keys and caches are loaded).
    await waitFor('two workers ready', () => ((server.output().match(/"msg":"ready"/g) ?? []).length === 2 ? true : undefined), 30_000, 100);
  });
  afterAll(async () => {
    await killAllChildren();
    await database.drop();
  });

  it('serves /metrics on the one management listener of the instance, every worker aggregated; never on the public port', async () => {
    const get = (base: string, path: string) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        http.get(`${base}${path}`, { agent: false }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        }).on('error', reject);
      });
    const jwksCount = (text: string) => Number(/^idp_jwks_requests_total\{status="200"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    expect((await get(url, '/metrics')).status).toBe(404);
    const start = jwksCount((await get(metricsUrl, '/metrics')).text);
    // Fresh connections, so node:cluster spreads them over both workers.
    await Promise.all(Array.from({ length: 40 }, () => get(url, '/.well-known/jwks.json')));
    for (let i = 0; i < 3; i++) {
      const { text } = await get(metricsUrl, '/metrics');
      expect(jwksCount(text)).toBe(start + 40);
      expect(text).toMatch(/^idp_published_keys 2$/m); // a gauge: the max over workers, not their sum
    }
  });

  it('every worker issues verifiable tokens, acts on a disable and on a key rotation within a second, and drains on SIGTERM', async () => {
    const created = await idp(['clients', 'create', '--name', 'svc', '--scope', 'read', '--audience', 'https://api.test', '--json']);
    const authorization = basic(created.client_id, created.client_secret);
    const jwks = createRemoteJWKSet(new URL(`${url}/.well-known/jwks.json`));
    for (const res of await many(authorization)) {
      expect(res.status).toBe(200);
      await jwtVerify(res.body.access_token!, jwks, { issuer: 'http://idp.test', audience: 'https://api.test', typ: 'at+jwt', algorithms: ['RS256'] });
    }

    const before = decodeProtectedHeader((await token(url, authorization)).body.access_token!).kid;
    await idp(['keys', 'rotate', '--force', '--json']);
    await waitFor('every worker signs with the new key', async () => {
      const kids = new Set((await many(authorization)).map((r) => decodeProtectedHeader(r.body.access_token!).kid));
      return kids.size === 1 && !kids.has(before) ? true : undefined;
    }, 1_000);

    await idp(['clients', 'disable', created.client_id, '--json']);
    await waitFor('every worker refuses the disabled client', async () => ((await many(authorization)).every((r) => r.status === 401) ? true : undefined), 1_000);

    expect(await stopChild(server)).toBe(0);
    expect((server.output().match(/"msg":"stopped"/g) ?? []).length).toBe(3);
  });
});

if (usingPostgres) describe('the token endpoint with the database unreachable (Postgres)', () => {
  let database: TestDatabase;
  let admin: pg.Client;
  let name: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    name = new URL(database.databaseUrl!).pathname.slice(1);
  });
  afterAll(async () => {
    await admin.query(`alter database ${name} allow_connections true`).catch(() => undefined);
    await admin.end();
    await database.drop();
  });

  it('a known client still gets tokens: the hot path never touches the database', async () => {
    const app = await startTestServer(testConfig(database), await database.open());
    try {
      const client = await makeClient(app.services);
      expect((await token(app.url, client.authorization)).status).toBe(200);
      // The client's creation is announced on idp_clients and may arrive after that first request,
      // dropping the entry it cached and reading it again: let it arrive, and the client be in memory.
      await clientNotificationsDelivered(app.services.handle);
      await eventually(async () => expect(app.services.oauth.clients.peek(client.id)?.id).toBe(client.id));
      expect((await token(app.url, client.authorization)).status).toBe(200);
      await admin.query(`alter database ${name} allow_connections false`);
      await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
      for (let i = 0; i < 5; i++) expect((await token(app.url, client.authorization)).status).toBe(200);
      // A client not in memory cannot be looked up: 503 with Retry-After, never a 500.
      const unknown = await token(app.url, basic('NotCached0000000000000', 'whatever'));
      expect(unknown.status).toBe(503);
      expect(unknown.body.error).toBe('temporarily_unavailable');
      await admin.query(`alter database ${name} allow_connections true`);
    } finally {
      await app.close();
    }
  });
});
