import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { KeyLifecycle } from '../../src/keys/lifecycle';
import { listKeys } from '../../src/keys/repository';
import { createLogger } from '../../src/observability/logger';
import { testMek } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { freePort, getJson, jwksKids, killAllChildren, SCRIPT, spawnServer, spawnServerOnTerminal, stopChild, waitFor, type Child, type Jwks } from './processes';

interface LogLine {
  level: number;
  msg: string;
}

/** What a terminal shows, without its colours and carriage returns. */
// eslint-disable-next-line no-control-regex
const screen = (output: string): string => output.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');

const logLines = (output: string): LogLine[] =>
  output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);

async function untilReady(url: string, server: Child): Promise<void> {
  await waitFor(
    'the server is ready',
    async () => {
      if (server.process.exitCode !== null) throw new Error(`the server exited with ${server.process.exitCode}:\n${server.output()}`);
      return (await getJson(`${url}/readyz`)).status === 200 ? true : undefined;
    },
    30_000,
    100,
  );
}

/** `npm start` on a fresh machine: no DATABASE_URL, no MEK — embedded PGlite and a development key ring. */
describe('the compiled server started with no configuration but a data directory', () => {
  let dir: string;
  let env: Record<string, string>;
  let firstKids: string[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-startup-'));
    env = {
      IDP_DATA_DIR: path.join(dir, 'data'),
      IDP_DEV_MEK_FILE: path.join(dir, 'dev-mek'),
      HOST: '127.0.0.1',
      IDP_LOG_LEVEL: 'info',
    };
  });

  afterAll(async () => {
    await killAllChildren();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates a current and a next key, a 0600 development key ring with a loud warning, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = spawnServer({ ...env, PORT: String(port) });
    await untilReady(url, server);

    const jwks = await getJson(`${url}/.well-known/jwks.json`);
    expect(jwks.status).toBe(200);
    expect((jwks.body as Jwks).keys).toHaveLength(2);
    expect((jwks.body as Jwks).keys).toEqual(expect.arrayContaining([expect.objectContaining({ kty: 'RSA', alg: 'RS256', use: 'sig' })]));
    firstKids = await jwksKids(url);
    expect(new Set(firstKids).size).toBe(2);

    const ring = env.IDP_DEV_MEK_FILE as string;
    expect(fs.statSync(ring).mode & 0o777).toBe(0o600);
    const warning = logLines(server.output()).find((l) => l.msg.startsWith('DEVELOPMENT KEY RING GENERATED'));
    expect(warning?.level).toBeGreaterThanOrEqual(40);
    // The ring's key itself never reaches the log.
    const secret = fs.readFileSync(ring, 'utf8').split('\n').find((line) => line.startsWith('mek-'))?.split(':')[1] as string;
    expect(secret.length).toBeGreaterThan(40);
    expect(server.output()).not.toContain(secret);

    expect(await stopChild(server)).toBe(0);
    expect(logLines(server.output()).map((l) => l.msg)).toContain('stopped');
  });

  it('a second start reuses the ring and the keys, without the warning', async () => {
    const ring = fs.readFileSync(env.IDP_DEV_MEK_FILE as string, 'utf8');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const server = spawnServer({ ...env, PORT: String(port) });
    await untilReady(url, server);
    expect(await jwksKids(url)).toEqual(firstKids);
    expect(fs.readFileSync(env.IDP_DEV_MEK_FILE as string, 'utf8')).toBe(ring);
    expect(server.output()).not.toContain('DEVELOPMENT KEY RING GENERATED');
    expect(await stopChild(server)).toBe(0);
  });

  it('says first where it listens and where its data and development MEK are; JSON lines, as stdout is not a terminal', async () => {
    const port = await freePort();
    const server = spawnServer({ ...env, PORT: String(port) });
    await untilReady(`http://127.0.0.1:${port}`, server);
    expect(await stopChild(server)).toBe(0);
    const lines = server.output().split('\n').filter((line) => line !== '');
    for (const line of lines) expect(line).toMatch(/^\{"level":\d+,/);
    const messages = logLines(server.output()).map((l) => l.msg);
    const first = messages.indexOf(`listening on http://127.0.0.1:${port}`);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(messages.slice(first + 1, first + 3)).toEqual([
      `data: PGlite in ${env.IDP_DATA_DIR}`,
      `development MEK: ${env.IDP_DEV_MEK_FILE} (never for production: set IDP_MEK or IDP_MEK_FILE)`,
    ]);
    // What to try next is for a person at a terminal only.
    expect(messages.filter((m) => m.startsWith('try:') || m.startsWith('then:'))).toEqual([]);
  });

  (fs.existsSync(SCRIPT) ? it : it.skip)('on a terminal: readable lines, where it listens first, what to try next once ready, and Ctrl-C stops it', async () => {
    const port = await freePort();
    const server = spawnServerOnTerminal({ ...env, PORT: String(port) });
    await untilReady(`http://127.0.0.1:${port}`, server);
    await waitFor('what to try next is shown', () => (screen(server.output()).includes('then: curl') ? true : undefined), 10_000);
    const shown = screen(server.output()).split('\n');
    expect(shown[0]).toMatch(new RegExp(`^\\[\\d\\d:\\d\\d:\\d\\d\\] INFO: listening on http://127\\.0\\.0\\.1:${port} `));
    expect(shown[1]).toMatch(`INFO: data: PGlite in ${env.IDP_DATA_DIR}`);
    expect(shown[2]).toMatch(`INFO: development MEK: ${env.IDP_DEV_MEK_FILE}`);
    expect(shown.some((line) => line.startsWith('{'))).toBe(false);
    const ready = shown.findIndex((line) => / INFO: ready /.test(line));
    expect(shown.slice(ready + 1, ready + 3)).toEqual([
      expect.stringMatching(/ INFO: try: npm run -s idp -- clients create --name demo --scope read /),
      expect.stringContaining(`INFO: then: curl -u "<client_id>:<client_secret>" -d grant_type=client_credentials http://127.0.0.1:${port}/oauth/token`),
    ]);
    server.interrupt();
    await server.exited;
    expect(screen(server.output())).toMatch(/ INFO: stopped\n/);
  });
});

describe(`the compiled server started with a MEK that does not match the stored keys (${usingPostgres ? 'Postgres' : 'PGlite on disk'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const storedMek = testMek('mek-stored');

  const snapshot = async (h: DatabaseHandle) => ({
    keys: await listKeys(h.db),
    audit: await h.db.selectFrom('audit_events').selectAll().orderBy('id').execute(),
  });

  beforeAll(async () => {
    database = await createTestDatabase({ onDisk: true });
    handle = await database.open();
    await migrateToLatest(handle);
    const lifecycle = new KeyLifecycle({
      db: handle.db,
      mek: new KeyRingMekProvider(parseKeyRing(storedMek, 'test')),
      policy: { keySize: 2048, rotationIntervalMs: 86_400_000, prepublishMs: 3_600_000, retentionMs: 86_400_000, jwksMaxAgeSeconds: 300 },
      logger: createLogger('silent'),
    });
    await lifecycle.check('startup');
  });

  afterAll(async () => {
    await killAllChildren();
    await database?.drop();
  });

  it('refuses to start, names the missing MEK id, and changes nothing', async () => {
    const before = await snapshot(handle);
    if (!usingPostgres) await database.release();

    const wrongMek = testMek('mek-other');
    const port = await freePort();
    const server = spawnServer({ ...database.env, NODE_ENV: 'test', IDP_MEK: wrongMek, PORT: String(port), HOST: '127.0.0.1', IDP_LOG_LEVEL: 'info' });
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([
      server.exited,
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve('still running'), 30_000);
      }),
    ]);
    clearTimeout(timer);
    expect(code).not.toBe('still running');
    expect(code).not.toBe(0);
    expect(server.output()).toMatch(/idp: cannot start: .*"mek-stored"/);
    expect(server.output()).not.toContain(wrongMek.split(':')[1]);

    if (!usingPostgres) handle = await database.open();
    expect(await snapshot(handle)).toEqual(before);
  });
});

if (usingPostgres) {
  describe('the compiled server in production on a terminal (Postgres)', () => {
    let database: TestDatabase;
    beforeAll(async () => {
      database = await createTestDatabase();
    });
    afterAll(async () => {
      await killAllChildren();
      await database?.drop();
    });

    (fs.existsSync(SCRIPT) ? it : it.skip)('writes JSON lines all the same, and names its database without the password', async () => {
      // The test server trusts local connections: the password is sent and ignored, and must not be shown.
      const databaseUrl = new URL(database.databaseUrl as string);
      databaseUrl.password = 'never-shown-4c1d';
      const port = await freePort();
      const server = spawnServerOnTerminal({ NODE_ENV: 'production', DATABASE_URL: databaseUrl.toString(), IDP_MEK: testMek(), IDP_ISSUER: `http://127.0.0.1:${port}`, PORT: String(port), HOST: '127.0.0.1', IDP_LOG_LEVEL: 'info' });
      await untilReady(`http://127.0.0.1:${port}`, server);
      server.interrupt();
      await server.exited;
      // The terminal echoes the Ctrl-C as ^C before the next line.
      const lines = screen(server.output()).replace(/\^C/g, '').split('\n').filter((line) => line !== '');
      for (const line of lines) expect(line).toMatch(/^\{"level":\d+,/);
      const messages = logLines(lines.join('\n')).map((l) => l.msg);
      expect(messages).toEqual(expect.arrayContaining([`listening on http://127.0.0.1:${port}`, `data: Postgres 127.0.0.1:${databaseUrl.port}${databaseUrl.pathname}`, 'MEK: from IDP_MEK', 'stopped']));
      expect(server.output()).not.toContain('never-shown-4c1d');
      expect(messages.filter((m) => m.startsWith('try:'))).toEqual([]);
    });
  });
}
