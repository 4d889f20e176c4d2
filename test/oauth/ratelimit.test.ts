import request from 'supertest';
import { sql } from 'kysely';
import { LISTENER_APPLICATION_NAME, type DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { FailureLimiter } from '../../src/ratelimit';
import { captureLogs, FakeClock, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { basic, eventually, makeClient } from './helpers';

const FORM = 'application/x-www-form-urlencoded';

/**
 * docs/security.md "Abuse limits and the threat model" at /oauth/*: the limits refuse failing requests only. Every request comes from 127.0.0.1
 * (what every request looks like behind a load balancer); with IDP_TRUST_PROXY=loopback the
 * X-Forwarded-For header names the address, as a proxy on this machine would.
 */
describe('abuse limits on failed client authentication (docs/security.md "Abuse limits and the threat model"', () => {
  let database: TestDatabase;
  let handles: DatabaseHandle[];
  let a: TestServer;
  let b: TestServer;
  const clock = new FakeClock(new Date());
  const logs = captureLogs();
  const mek = testMek();

  beforeAll(async () => {
    database = await createTestDatabase();
    handles = [await database.open(), await database.open()];
    const config = testConfig(database, { IDP_MEK: mek, IDP_TRUST_PROXY: 'loopback', IDP_LOG_LEVEL: 'debug' });
    a = await startTestServer(config, handles[0]!, clock.now, { logs });
    b = await startTestServer(config, handles[1]!, clock.now, { logs: captureLogs() });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  const token = (server: TestServer, authorization: string, from = '198.51.100.1') =>
    request(server.url).post('/oauth/token').set('Content-Type', FORM).set('X-Forwarded-For', from).set('Authorization', authorization).send('grant_type=client_credentials');

  it('20 wrong secrets for a known client_id: wrong secrets get 429 on every instance, the right secret still gets tokens', async () => {
    const victim = await makeClient(a.services);
    const wrong = basic(victim.id, 'wrong-secret');
    // From 20 addresses, so that only the per-client count reaches its limit.
    for (let i = 0; i < 20; i++) expect((await token(i % 2 === 0 ? a : b, wrong, `203.0.113.${i + 1}`)).status).toBe(401);

    const blocked = await token(a, wrong, '203.0.113.99').expect(429);
    expect(blocked.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(blocked.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(blocked.headers['cache-control']).toBe('no-store');
    await eventually(async () => expect((await token(b, wrong, '203.0.113.99')).status).toBe(429));

    // The victim, from anywhere, with its secret: never refused.
    await token(a, victim.authorization, '203.0.113.99').expect(200);
    await token(b, victim.authorization, '192.0.2.7').expect(200);
    const introspected = await request(a.url).post('/oauth/introspect').set('Content-Type', FORM).set('Authorization', victim.authorization).send('token=x');
    expect(introspected.status).toBe(200);
    clock.advance(60_000);
  });

  it('20 failures with random client ids from one address: that address keeps failing with 429, a correct client on it is served', async () => {
    const good = await makeClient(a.services);
    const address = '198.51.100.20';
    for (let i = 0; i < 20; i++) expect((await token(a, basic(`nobody${i}`, 'x'), address)).status).toBe(401);
    const refused = await token(a, basic('nobody-more', 'x'), address).expect(429);
    expect(refused.headers['retry-after']).toBeDefined();
    await eventually(async () => expect((await token(b, basic('nobody-else', 'x'), address)).status).toBe(429));

    for (const server of [a, b]) {
      await token(server, good.authorization, address).expect(200);
      const form = (body: string) => request(server.url).post('/oauth/introspect').set('Content-Type', FORM).set('X-Forwarded-For', address).set('Authorization', good.authorization).send(body);
      await form('token=anything').expect(200, { active: false });
      const revoke = await request(server.url).post('/oauth/revoke').set('Content-Type', FORM).set('X-Forwarded-For', address).set('Authorization', good.authorization).send('token=anything');
      expect(revoke.status).toBe(200);
    }
    // Another address is not affected by the block.
    expect((await token(a, basic('nobody-x', 'x'), '198.51.100.21')).status).toBe(401);
    clock.advance(60_000);
    expect((await token(a, basic('nobody-after', 'x'), address)).status).toBe(401);
  });

  it('never logs or stores an unknown client_id verbatim (it may be a secret pasted into the wrong field)', async () => {
    const pasted = 'S3cr3tPastedIntoTheClientIdField0123456789';
    expect((await token(a, basic(pasted, 'x'), '198.51.100.30')).status).toBe(401);
    expect((await request(a.url).post('/oauth/token').set('Content-Type', FORM).send(`grant_type=client_credentials&client_id=${pasted}&client_secret=x`)).status).toBe(401);
    const keys = await a.services.handle.db.selectFrom('rate_limit_counters').select('key').execute();
    expect(keys.map((row) => row.key).join('\n')).not.toContain(pasted);
    expect(logs.text()).not.toContain(pasted);
    expect(logs.text()).toMatch(/unknown client sha256:[0-9a-f]{12}/);
  });

  it('X-Forwarded-For is read only from a trusted proxy, from the right: a client cannot choose its address', async () => {
    clock.advance(60_000); // a fresh window for 127.0.0.1
    const config = testConfig(database, { IDP_MEK: mek }); // IDP_TRUST_PROXY unset: the TCP peer
    const direct = await startTestServer(config, await database.open(), clock.now);
    try {
      // Rotating the header does not help a direct client: every failure counts against 127.0.0.1.
      for (let i = 0; i < 20; i++) expect((await token(direct, basic(`spoof${i}`, 'x'), `192.0.2.${i}`)).status).toBe(401);
      expect((await token(direct, basic('spoof-more', 'x'), '192.0.2.200')).status).toBe(429);
      const counted = await direct.services.failures.listBlocks();
      expect(counted.map((block) => block.key)).toContain('oauth:ip:127.0.0.1');
    } finally {
      await direct.close();
    }
    // Behind the trusted proxy, a forged leftmost entry is ignored: the proxy's view (rightmost) counts.
    for (let i = 0; i < 20; i++) expect((await token(a, basic(`chain${i}`, 'x'), `10.${i}.0.1, 198.51.100.40`)).status).toBe(401);
    expect((await token(a, basic('chain-more', 'x'), '10.99.0.1, 198.51.100.40')).status).toBe(429);
    expect((await token(a, basic('chain-other', 'x'), '198.51.100.41')).status).toBe(401);
    clock.advance(60_000);
  });

  it('IDP_RATE_LIMIT_ALLOWLIST addresses are never blocked per address; per-client limits still apply', async () => {
    const config = testConfig(database, { IDP_MEK: mek, IDP_RATE_LIMIT_ALLOWLIST: '127.0.0.0/8' });
    const office = await startTestServer(config, await database.open(), clock.now);
    try {
      for (let i = 0; i < 25; i++) expect((await token(office, basic(`office${i}`, 'x'))).status).toBe(401);
      const victim = await makeClient(office.services);
      for (let i = 0; i < 20; i++) expect((await token(office, basic(victim.id, 'wrong'))).status).toBe(401);
      expect((await token(office, basic(victim.id, 'wrong'))).status).toBe(429);
      await token(office, victim.authorization).expect(200);
    } finally {
      await office.close();
    }
  });
});

describe('FailureLimiter', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const clock = new FakeClock();
  const logger = createLogger('silent');
  const rule = { limit: 3, windowMs: 15 * 60_000 };

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
  });
  afterAll(async () => {
    await database.drop();
  });

  it('blocks a key once it reaches the limit within a window, until the window ends; other keys are independent', async () => {
    const limiter = new FailureLimiter({ handle, logger, now: clock.now });
    await limiter.start();
    expect(await limiter.recordFailure([{ key: 'signin:email:a', rule }])).toBe(0);
    clock.advance(60_000);
    expect(await limiter.recordFailure([{ key: 'signin:email:a', rule }])).toBe(0);
    expect(limiter.retryAfterSeconds(['signin:email:a'])).toBe(0);
    expect(await limiter.recordFailure([{ key: 'signin:email:a', rule }])).toBe(14 * 60);
    expect(limiter.retryAfterSeconds(['signin:email:a', 'signin:ip:x'])).toBe(14 * 60);
    expect(limiter.retryAfterSeconds(['signin:email:b'])).toBe(0);

    // A limiter starting later (a new instance) knows the block.
    const late = new FailureLimiter({ handle, logger, now: clock.now });
    await late.start();
    expect(late.retryAfterSeconds(['signin:email:a'])).toBe(14 * 60);

    clock.advance(14 * 60_000);
    expect(limiter.retryAfterSeconds(['signin:email:a'])).toBe(0);
    // A new window starts from the next failure.
    expect(await limiter.recordFailure([{ key: 'signin:email:a', rule }])).toBe(0);
  });

  it('lists blocks in force and clears one on every instance; sweep deletes counters whose window has passed', async () => {
    const limiter = new FailureLimiter({ handle, logger, now: clock.now });
    const other = new FailureLimiter({ handle, logger, now: clock.now });
    await limiter.start();
    await other.start();
    for (let i = 0; i < 3; i++) await limiter.recordFailure([{ key: 'k:clear', rule }]);
    await eventually(async () => expect(other.retryAfterSeconds(['k:clear'])).toBeGreaterThan(0));
    expect((await limiter.listBlocks()).map((block) => [block.key, block.failures])).toContainEqual(['k:clear', 3]);

    expect(await limiter.clear('k:clear')).toBe(true);
    expect(limiter.retryAfterSeconds(['k:clear'])).toBe(0);
    await eventually(async () => expect(other.retryAfterSeconds(['k:clear'])).toBe(0));
    expect((await limiter.listBlocks()).map((block) => block.key)).not.toContain('k:clear');
    expect(await limiter.clear('k:clear')).toBe(false);

    await limiter.recordFailure([{ key: 'k:old', rule }]);
    clock.advance(rule.windowMs);
    expect(await limiter.sweep()).toBeGreaterThan(0);
    const left = await handle.db.selectFrom('rate_limit_counters').select('key').execute();
    expect(left.map((r) => r.key)).not.toContain('k:old');
  });

  if (usingPostgres) {
    it('logs a failed reload of the blocks after its notification connection is re-established', async () => {
      const logs = captureLogs();
      const own = await database.open();
      const limiter = new FailureLimiter({ handle: own, logger: createLogger('warn', logs.stream), now: clock.now });
      await limiter.start();
      // The table is away while the listener reconnects, so the reload's query fails for real.
      await sql`alter table rate_limit_counters rename to rate_limit_counters_away`.execute(handle.db);
      try {
        await sql`select pg_terminate_backend(pid) from pg_stat_activity
                   where datname = current_database() and application_name = ${LISTENER_APPLICATION_NAME}`.execute(handle.db);
        await eventually(async () => expect(logs.lines.map((l) => l.msg)).toContain('reloading rate-limit blocks after reconnecting failed'), 15_000);
        expect(logs.lines.find((l) => l.msg === 'reloading rate-limit blocks after reconnecting failed')).toMatchObject({ level: 40, err: expect.stringMatching(/rate_limit_counters/) });
      } finally {
        await sql`alter table rate_limit_counters_away rename to rate_limit_counters`.execute(handle.db);
        await own.close();
      }
    });
  }
});
