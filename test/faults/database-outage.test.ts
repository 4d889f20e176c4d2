import pg from 'pg';
import { sql } from 'kysely';
import { disableClient } from '../../src/clients/service';
import { loadConfig } from '../../src/config';
import { KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import { LISTENER_APPLICATION_NAME, openDatabase, type DatabaseHandle } from '../../src/db';
import { KeyLifecycle } from '../../src/keys/lifecycle';
import { createLogger } from '../../src/observability/logger';
import { startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { getJson, jwksKids, killAllChildren, waitFor } from '../multiprocess/processes';
import { headerKid, logLines, prepare, record, runLoad, startServer, token, type SeededClient, type Server } from './harness';
import { startPrivatePostgres, type PrivatePostgres } from '../../scripts/lib/private-postgres';

const silent = createLogger('silent');
/** Paces a load loop (a throttle, never a wait for a result: those poll with waitFor). */
const pace = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

if (usingPostgres) {
  describe('Postgres restarted under token load (a private server: pg_ctl stop -m fast, then start)', () => {
    /** IDP_REQUEST_TIMEOUT of the server, and how long the test waits for any answer. */
    const REQUEST_TIMEOUT_MS = 3_000;
    let postgres: PrivatePostgres;
    let server: Server;
    let clients: SeededClient[];

    beforeAll(async () => {
      postgres = await startPrivatePostgres();
      const databaseUrl = await postgres.createDatabase('idp');
      const mek = testMek();
      const handle = await openDatabase({ databaseUrl, dataDir: 'unused', logger: silent, poolSize: 2 });
      try {
        clients = await prepare(handle, mek, 4);
      } finally {
        await handle.close();
      }
      server = await startServer({ DATABASE_URL: databaseUrl, IDP_MEK: mek, IDP_REQUEST_TIMEOUT: `${REQUEST_TIMEOUT_MS / 1000}s` });
    }, 180_000);

    afterAll(async () => {
      await killAllChildren();
      await postgres?.remove();
    });

    it('keeps issuing tokens for clients in memory and serving the JWKS, reports the outage at /readyz and recovers, in the same process, with no request left hanging', async () => {
      const [a, b, c, cold] = clients as [SeededClient, SeededClient, SeededClient, SeededClient];
      const warm = [a, b, c];
      for (const client of warm) expect((await token(server.url, client.authorization, REQUEST_TIMEOUT_MS)).status).toBe(200);
      const pid = server.child.pid;
      const kids = await jwksKids(server.url);

      const seen = record();
      const readiness: number[] = [];
      let postgresStopped = false;
      const load = runLoad(5, async (loop) => {
        try {
          if (loop < 2) {
            const client = warm[seen.count('token') % warm.length] as SeededClient;
            seen.add('token', (await token(server.url, client.authorization, REQUEST_TIMEOUT_MS)).status);
          } else if (loop === 2) {
            seen.add('jwks', (await getJson(`${server.url}/.well-known/jwks.json`, REQUEST_TIMEOUT_MS)).status);
            await pace(10);
          } else if (loop === 3) {
            const status = (await getJson(`${server.url}/readyz`, REQUEST_TIMEOUT_MS)).status;
            seen.add('readyz', status);
            if (readiness.at(-1) !== status) readiness.push(status);
            await pace(10);
          } else if (postgresStopped) {
            // A client never seen before the outage: it needs the database, so it gets 503 while Postgres is away.
            seen.add('cold', (await token(server.url, cold.authorization, REQUEST_TIMEOUT_MS)).status);
            await pace(25);
          } else {
            await pace(25);
          }
        } catch (error) {
          seen.fail(['token', 'token', 'jwks', 'readyz', 'cold'][loop] as string, error);
        }
      });
      try {
        await waitFor('the load runs against the healthy server', () => (seen.count('token') >= 10 && seen.count('jwks') > 0 && readiness[0] === 200 ? true : undefined), 30_000, 50);
        // The restart in two halves: with fsync off it lasts a fraction of a second, which a /readyz
        // poll on a busy machine can miss; the server is held down until the outage has been seen.
        await postgres.stop();
        postgresStopped = true;
        await waitFor('/readyz reports the outage', () => (readiness.includes(503) && seen.statuses.get('cold')?.includes(503) ? true : undefined), 30_000, 50).catch((error: Error) => {
          throw new Error(`${error.message}; /readyz went ${readiness.join(' → ')}; cold ${[...new Set(seen.statuses.get('cold'))].join(',')}; ${JSON.stringify(Object.fromEntries(seen.transportErrors))}`);
        });
        await postgres.start();
        await waitFor('/readyz answers 200 again', () => (readiness.at(-1) === 200 ? true : undefined), 30_000, 50).catch((error: Error) => {
          throw new Error(`${error.message}; /readyz went ${readiness.join(' → ')}; ${JSON.stringify(Object.fromEntries(seen.transportErrors))}`);
        });
        await waitFor('a client never seen before gets its token again', () => (seen.statuses.get('cold')?.at(-1) === 200 ? true : undefined), 30_000, 50);
        const recovered = seen.count('token');
        await waitFor('the load runs on after the recovery', () => (seen.count('token') >= recovered + 10 ? true : undefined), 30_000, 50);
      } finally {
        await load.stop();
      }

      // Nothing hung: every request was answered within IDP_REQUEST_TIMEOUT.
      expect(Object.fromEntries(seen.transportErrors)).toEqual({});
      // Clients in memory: every token request succeeded, before, during and after.
      const tokens = seen.statuses.get('token') ?? [];
      expect(tokens.length).toBeGreaterThan(20);
      expect(tokens.filter((s) => s !== 200)).toEqual([]);
      // The JWKS, from memory, throughout.
      expect((seen.statuses.get('jwks') ?? []).filter((s) => s !== 200)).toEqual([]);
      // /readyz: ready, not ready while Postgres was away, ready again.
      expect(readiness[0]).toBe(200);
      expect(readiness).toContain(503);
      expect(readiness.at(-1)).toBe(200);
      // A client not in memory: 503 (retry) while the database was away, never a 500.
      expect((seen.statuses.get('cold') ?? []).filter((s) => s !== 200 && s !== 503)).toEqual([]);
      expect(seen.statuses.get('cold')).toContain(200);

      // The same process throughout, still serving the same keys; nothing fatal logged.
      expect(server.child.process.exitCode).toBeNull();
      expect(server.child.pid).toBe(pid);
      expect(await jwksKids(server.url)).toEqual(kids);
      expect(logLines(server.child.output()).filter((l) => l.level >= 60)).toEqual([]);
    });
  });

  describe('the LISTEN connections killed while a key rotation and a client disable happen (3 compiled servers)', () => {
    /** IDP_KEY_REFRESH_INTERVAL of the servers: the bound within which every one must have caught up. */
    const REFRESH_INTERVAL_MS = 10_000;
    let database: TestDatabase;
    let handle: DatabaseHandle;
    let admin: pg.Client;
    let name: string;
    let servers: Server[];
    let victim: SeededClient;
    let bystander: SeededClient;
    const mek = testMek();

    beforeAll(async () => {
      database = await createTestDatabase();
      name = new URL(database.databaseUrl as string).pathname.slice(1);
      handle = await database.open();
      [victim, bystander] = (await prepare(handle, mek, 2)) as [SeededClient, SeededClient];
      // The maintenance database of the same server: never the one being cut off.
      admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
      await admin.connect();
      const env = {
        ...database.env,
        IDP_MEK: mek,
        IDP_KEY_REFRESH_INTERVAL: `${REFRESH_INTERVAL_MS / 1000}s`,
        // Rotations here are the test's own.
        IDP_ROTATION_CRON: '0 0 1 1 *',
      };
      servers = await Promise.all([startServer(env), startServer(env), startServer(env)]);
    }, 180_000);

    afterAll(async () => {
      await admin?.query(`alter database ${name} allow_connections true`).catch(() => undefined);
      await admin?.end();
      await killAllChildren();
      await database?.drop();
    });

    const listeners = async () =>
      Number(
        (await admin.query<{ n: string }>('select count(*) as n from pg_stat_activity where datname = $1 and application_name = $2', [name, LISTENER_APPLICATION_NAME]))
          .rows[0]?.n,
      );

    it('every server catches up within IDP_KEY_REFRESH_INTERVAL of the connection coming back, and logs it', async () => {
      for (const server of servers) {
        expect((await token(server.url, victim.authorization, 5_000)).status).toBe(200);
        expect((await token(server.url, bystander.authorization, 5_000)).status).toBe(200);
      }
      expect(await listeners()).toBe(servers.length);
      const lifecycle = new KeyLifecycle({ db: handle.db, mek: new KeyRingMekProvider(parseKeyRing(mek, 'test')), policy: loadConfig({ NODE_ENV: 'test', IDP_MEK: mek }), logger: silent });
      await sql`select 1`.execute(handle.db);

      // No new connection may be made; every listening one is cut. The test's own pool is already connected.
      await admin.query(`alter database ${name} allow_connections false`);
      let promoted: string;
      let created: string;
      try {
        const killed = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = $2', [name, LISTENER_APPLICATION_NAME]);
        expect(killed.rowCount).toBe(servers.length);
        // The changes no server hears of.
        const changes = await lifecycle.rotate('test', { force: true, reason: 'fault test: rotation while nobody listens' });
        promoted = changes.find((c) => c.action === 'promoted')?.kid as string;
        created = changes.find((c) => c.action === 'created-next')?.kid as string;
        await disableClient(handle.db, victim.id, { actor: 'test', now: new Date() });
        // Every server's first attempt to reconnect is refused.
        await waitFor(
          'every server tried to reconnect and was refused',
          () => (servers.every((s) => logLines(s.child.output()).some((l) => l.msg === 'notification connection failed')) ? true : undefined),
          REFRESH_INTERVAL_MS,
          50,
        );
        // The servers still serve what they knew: the victim is not refused yet anywhere.
        for (const server of servers) expect((await token(server.url, victim.authorization, 5_000)).status).toBe(200);
      } finally {
        await admin.query(`alter database ${name} allow_connections true`);
      }

      await waitFor(
        'every server signs with the promoted key, publishes the new next key and refuses the disabled client',
        async () => {
          for (const server of servers) {
            if (!(await jwksKids(server.url)).includes(created)) return undefined;
            const answer = await token(server.url, bystander.authorization, 5_000);
            if (answer.status !== 200 || headerKid(answer.body.access_token as string) !== promoted) return undefined;
            if ((await token(server.url, victim.authorization, 5_000)).status !== 401) return undefined;
          }
          return true;
        },
        REFRESH_INTERVAL_MS,
        100,
      );
      await waitFor('every listening connection is back', async () => ((await listeners()) === servers.length ? true : undefined), REFRESH_INTERVAL_MS, 100);
      for (const server of servers) {
        const messages = logLines(server.child.output()).map((l) => l.msg);
        expect(messages).toEqual(expect.arrayContaining(['notification connection restored', 'signing keys re-read: the notification connection was restored']));
        expect(messages.some((m) => m.startsWith('client cache caught up'))).toBe(true);
        expect(logLines(server.child.output()).filter((l) => l.level >= 50)).toEqual([]);
      }
    });
  });
}

// PGlite lives inside the server's process: there is no server to restart and no connection to cut.
// What can still fail is the embedded database itself; closed under load, it must fail the same way.
if (!usingPostgres) {
  describe('the embedded database closed under token load (PGlite)', () => {
    let database: TestDatabase;
    let server: TestServer;
    let clients: SeededClient[];

    beforeAll(async () => {
      database = await createTestDatabase();
      const handle = await database.open();
      const mek = testMek();
      clients = await prepare(handle, mek, 2);
      server = await startTestServer(testConfig(database, { IDP_MEK: mek, IDP_ISSUER: 'http://idp.faults.test' }), handle);
    });

    afterAll(async () => {
      await server?.close();
      await database?.drop();
    });

    it('keeps issuing tokens for clients in memory and serving the JWKS; /readyz 503; a client not in memory gets 503, never a 500', async () => {
      const [warm, cold] = clients as [SeededClient, SeededClient];
      expect((await token(server.url, warm.authorization, 5_000)).status).toBe(200);
      const kids = await jwksKids(server.url);
      const seen = record();
      const load = runLoad(2, async () => {
        try {
          seen.add('token', (await token(server.url, warm.authorization, 5_000)).status);
        } catch (error) {
          seen.fail('token', error);
        }
      });
      try {
        await waitFor('the load runs against the open database', () => (seen.count('token') >= 5 ? true : undefined), 30_000, 50);
        await database.release();
        const closed = seen.count('token');
        expect((await getJson(`${server.url}/readyz`)).status).toBe(503);
        expect(await jwksKids(server.url)).toEqual(kids);
        const refused = await token(server.url, cold.authorization, 5_000);
        expect(refused).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
        await waitFor('the load runs on with the database closed', () => (seen.count('token') >= closed + 10 ? true : undefined), 30_000, 50);
      } finally {
        await load.stop();
      }
      expect(Object.fromEntries(seen.transportErrors)).toEqual({});
      expect((seen.statuses.get('token') ?? []).length).toBeGreaterThan(5);
      expect((seen.statuses.get('token') ?? []).filter((s) => s !== 200)).toEqual([]);
    });
  });
}
