import request from 'supertest';
import { AssertionJtiStore, MAX_JTI_LENGTH, UnrecordableJti } from '../../src/oauth/assertion-jtis';
import { captureLogs, startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { assertion, assertionForm, FORM, jwksOf, makeKeyClient, testKey } from './private-key-jwt-support';

const ISSUER = 'http://idp.test';

/**
 * The replay store's jti rules (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`", the replay store): a `jti` Postgres cannot
 * hold is an invalid assertion (401, counted like any failure), refused before it joins a group
 * commit; and a batch the database refuses because of one row fails only that row, never the other
 * clients' assertions written with it.
 */
describe('private_key_jwt: a jti the replay store cannot record', () => {
  let database: TestDatabase;
  let server: TestServer;
  const logs = captureLogs();

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startTestServer(testConfig(database, { IDP_TRUST_PROXY: 'loopback', IDP_LOG_LEVEL: 'info' }), await database.open(), undefined, { logs });
  });
  afterAll(async () => {
    await server.close();
    await database.drop();
  });

  let addresses = 0;
  const token = (jwt: string, from = `198.51.100.${++addresses % 250}`) =>
    request(server.url).post('/oauth/token').set('Content-Type', FORM).set('X-Forwarded-For', from).send(assertionForm(jwt));
  const expectInvalidClient = (res: request.Response) => {
    expect({ status: res.status, body: res.body }).toEqual({ status: 401, body: { error: 'invalid_client', error_description: 'client authentication failed' } });
  };
  const logged = (fragment: string) => expect(logs.lines.some((line) => typeof line.detail === 'string' && line.detail.includes(fragment))).toBe(true);

  it('a NUL jti among 50 valid assertions of other clients: 401 for it, 200 for all 50; refused again when replayed', async () => {
    const key = testKey('ES256');
    const others = await Promise.all(Array.from({ length: 50 }, () => makeKeyClient(server.services, { jwks: jwksOf(key) })));
    const attackerKey = testKey('ES256');
    const attacker = await makeKeyClient(server.services, { jwks: jwksOf(attackerKey) });
    const poisoned = await assertion(attackerKey, attacker, ISSUER, { claims: { jti: 'a\u0000b' } });
    const valid = await Promise.all(others.map((id) => assertion(key, id, ISSUER)));

    // All at once, the poisoned one in the middle: it would share a group commit with the others.
    const jwts = [...valid.slice(0, 25), poisoned, ...valid.slice(25)];
    const responses = await Promise.all(jwts.map((jwt) => token(jwt)));
    expectInvalidClient(responses[25]!);
    const statuses = responses.filter((_r, i) => i !== 25).map((r) => r.status);
    expect(statuses).toEqual(Array.from({ length: 50 }, () => 200));
    logged('jti contains a NUL character');

    // Never recorded, and refused again however often it is replayed.
    expectInvalidClient(await token(poisoned));
    const stored = await server.services.handle.db.selectFrom('client_assertion_jtis').select('jti').where('client_id', '=', attacker).execute();
    expect(stored).toEqual([]);
    // The 50 are recorded: each is a replay now.
    expectInvalidClient(await token(valid[0]!));
  });

  it('a lone surrogate or an over-long jti is refused the same way, and a valid assertion of the same client still works', async () => {
    const key = testKey('RS256');
    const id = await makeKeyClient(server.services, { jwks: jwksOf(key) });
    expectInvalidClient(await token(await assertion(key, id, ISSUER, { claims: { jti: 'x\ud800' } })));
    logged('jti contains a lone UTF-16 surrogate');
    expectInvalidClient(await token(await assertion(key, id, ISSUER, { claims: { jti: 'j'.repeat(MAX_JTI_LENGTH + 1) } })));
    logged(`jti is over ${MAX_JTI_LENGTH} characters`);
    expect((await token(await assertion(key, id, ISSUER, { claims: { jti: 'j'.repeat(MAX_JTI_LENGTH) } }))).status).toBe(200);
  });

  it('is a failure the limits count: replayed from one address it ends in 429, while the client is served', async () => {
    const key = testKey('ES256');
    const id = await makeKeyClient(server.services, { jwks: jwksOf(key) });
    const poisoned = await assertion(key, id, ISSUER, { claims: { jti: '\u0000' } });
    const from = '203.0.113.90';
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push((await token(poisoned, from)).status);
    expect(statuses.slice(0, 20)).toEqual(Array.from({ length: 20 }, () => 401));
    expect(statuses.slice(20)).toContain(429);
    expect(statuses).not.toContain(503);
    // The limits never refuse a valid assertion.
    expect((await token(await assertion(key, id, ISSUER), from)).status).toBe(200);
  });

  describe('the store itself, on the real database', () => {
    const until = () => new Date(Date.now() + 60_000);

    it('refuses an unrecordable jti before it joins a batch', async () => {
      const store = new AssertionJtiStore(server.services.handle, () => new Date());
      for (const jti of ['', 'a\u0000b', '\ud800', 'x\udc00', 'j'.repeat(MAX_JTI_LENGTH + 1)]) {
        await expect(store.record('store-client', jti, until())).rejects.toBeInstanceOf(UnrecordableJti);
      }
    });

    it('a row the database refuses fails alone: the others of its batch are recorded', async () => {
      const db = server.services.handle.db;
      const store = new AssertionJtiStore(server.services.handle, () => new Date());
      // The first record starts a statement at once; everything recorded while it runs is one batch.
      const first = store.record('warm-up', 'j', until());
      // A client id is the server's own and not checked by the store: one Postgres cannot hold stands for any row it refuses.
      const rows = Array.from({ length: 51 }, (_, i) => (i === 25 ? { clientId: 'batch\u0000bad', jti: 'j' } : { clientId: `batch-${i}`, jti: `j-${i}` }));
      const outcomes = await Promise.allSettled(rows.map((row) => store.record(row.clientId, row.jti, until())));
      expect(await first).toBe(true);
      const bad = outcomes[25] as PromiseRejectedResult;
      expect(bad.status).toBe('rejected');
      expect(bad.reason).toBeInstanceOf(UnrecordableJti);
      expect((bad.reason as Error).message).toMatch(/SQLSTATE 22021/);
      expect(outcomes.filter((_o, i) => i !== 25)).toEqual(Array.from({ length: 50 }, () => ({ status: 'fulfilled', value: true })));
      const stored = await db.selectFrom('client_assertion_jtis').select('client_id').where('client_id', 'like', 'batch-%').execute();
      expect(stored).toHaveLength(50);
      // Recorded once: the same jtis again are replays, in a batch of their own.
      const again = await Promise.all(rows.filter((_r, i) => i !== 25).map((row) => store.record(row.clientId, row.jti, until())));
      expect(again.every((fresh) => fresh === false)).toBe(true);
    });
  });
});
