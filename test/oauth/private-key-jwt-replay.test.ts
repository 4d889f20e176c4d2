import { sql } from 'kysely';
import request from 'supertest';
import { prepared, type DatabaseHandle } from '../../src/db';
import { AssertionJtiStore } from '../../src/oauth/assertion-jtis';
import { captureLogs, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { assertion, assertionForm, FORM, jwksOf, makeKeyClient, testKey, type TestKey } from './private-key-jwt-support';

const ISSUER = 'http://idp.test';

/**
 * The replay guard across instances (docs/private-key-jwt.md "Replay across instances"): two
 * composition roots, each on its own listening socket, over one database (on Postgres each with a
 * pool of its own, on PGlite the one shared handle). An assertion one accepted, the other refuses;
 * the same assertion sent to both at once gets exactly one 200. The jtis are written with an
 * asynchronous commit, which changes what a Postgres crash may lose, never what the other instances
 * see: a committed row is visible to every session at once.
 */
describe('private_key_jwt: a replay is refused across instances', () => {
  let database: TestDatabase;
  let handles: DatabaseHandle[];
  let a: TestServer;
  let b: TestServer;
  const logs = captureLogs();
  let config: ReturnType<typeof testConfig>;

  beforeAll(async () => {
    database = await createTestDatabase();
    handles = [await database.open(), await database.open()];
    config = testConfig(database, { IDP_ISSUER: ISSUER, IDP_MEK: testMek(), IDP_TRUST_PROXY: 'loopback', IDP_LOG_LEVEL: 'info' });
    a = await startTestServer(config, handles[0]!, undefined, { logs });
    b = await startTestServer(config, handles[1]!, undefined, { logs });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  // Each request from its own address, and each test with clients of its own: replays are failures,
  // which the limits count per address and per client, and a 429 would hide the 401 looked for.
  let addresses = 0;
  const token = (server: TestServer, jwt: string) =>
    request(server.url)
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set('X-Forwarded-For', `198.51.${Math.floor(++addresses / 250)}.${addresses % 250}`)
      .send(assertionForm(jwt));
  const keyClient = async (): Promise<{ key: TestKey; id: string }> => {
    const key = testKey('ES256');
    return { key, id: await makeKeyClient(a.services, { jwks: jwksOf(key) }) };
  };
  const replays = () => logs.lines.filter((line) => typeof line.detail === 'string' && line.detail.includes('replayed (jti already used)')).length;

  it('an assertion accepted by instance A is refused by instance B, and one accepted by B is refused by A', async () => {
    const { key, id } = await keyClient();
    const before = replays();
    const first = await assertion(key, id, ISSUER);
    expect((await token(a, first)).status).toBe(200);
    const refused = await token(b, first);
    expect({ status: refused.status, body: refused.body }).toEqual({ status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' } });

    const second = await assertion(key, id, ISSUER);
    expect((await token(b, second)).status).toBe(200);
    expect((await token(a, second)).status).toBe(401);
    expect(replays() - before).toBe(2);
  });

  it('the same assertions sent to both instances at once: exactly one 200 for each', async () => {
    // 5 clients × 8 assertions, all 80 requests at once, so that each instance groups them into
    // batches of its own and the two instances' statements race on the same jtis.
    const clients = await Promise.all(Array.from({ length: 5 }, () => keyClient()));
    const jwts = await Promise.all(clients.flatMap(({ key, id }) => Array.from({ length: 8 }, () => assertion(key, id, ISSUER))));
    const before = replays();
    const statuses = await Promise.all(jwts.map((jwt) => Promise.all([token(a, jwt), token(b, jwt)]).then((pair) => pair.map((r) => r.status).sort())));
    expect(statuses).toEqual(jwts.map(() => [200, 401]));
    expect(replays() - before).toBe(jwts.length);
  });

  it('an instance started afresh refuses what another accepted before it started (the guard is in the database, not in a process)', async () => {
    const { key, id } = await keyClient();
    const used = await assertion(key, id, ISSUER);
    expect((await token(a, used)).status).toBe(200);
    // A third composition root with a database handle of its own (on PGlite the shared one).
    const c = await startTestServer(config, await database.open(), undefined, { logs });
    try {
      expect((await token(c, used)).status).toBe(401);
      expect((await token(c, await assertion(key, id, ISSUER))).status).toBe(200);
    } finally {
      await c.close();
    }
  });

  it('the asynchronous commit is the statement’s own: the connection that recorded jtis commits synchronously afterwards', async () => {
    // The store records on the statement lane: the check runs there too, right after it.
    const handle = await database.open();
    try {
      const store = new AssertionJtiStore(handle, () => new Date());
      const until = new Date(Date.now() + 60_000);
      expect(await Promise.all([store.record('sc-client', 'j1', until), store.record('sc-client', 'j2', until)])).toEqual([true, true]);
      expect(await store.record('sc-client', 'j1', until)).toBe(false);
      const setting = prepared('idp_test_synchronous_commit', sql<{ synchronous_commit: string }>`select current_setting('synchronous_commit') as synchronous_commit`.compile(handle.db));
      expect(await handle.laneRows(setting, [])).toEqual([{ synchronous_commit: 'on' }]);
    } finally {
      await handle.close();
    }
  });
});
