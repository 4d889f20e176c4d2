import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { FailureLimiter } from '../../src/ratelimit';
import { FakeClock, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic, eventually, makeClient } from './helpers';

const FORM = 'application/x-www-form-urlencoded';

describe('abuse limits on failed client authentication (SPEC §7)', () => {
  let database: TestDatabase;
  let handles: DatabaseHandle[];
  let a: TestServer;
  let b: TestServer;
  const clock = new FakeClock(new Date());

  beforeAll(async () => {
    database = await createTestDatabase();
    handles = [await database.open(), await database.open()];
    // Per client the default (20); per IP a little higher, so the per-client limit is seen first.
    const config = testConfig(database, { IDP_MEK: testMek(), IDP_TOKEN_FAILURES_PER_IP: '30' });
    a = await startTestServer(config, handles[0]!, clock.now);
    b = await startTestServer(config, handles[1]!, clock.now);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  const token = (server: TestServer, authorization: string) =>
    request(server.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', authorization).send('grant_type=client_credentials');

  it('after 20 failures for one client_id: 429 with Retry-After on every instance, even with the right secret, until the window passes', async () => {
    const victim = await makeClient(a.services);
    const wrong = basic(victim.id, 'wrong-secret');
    for (let i = 0; i < 20; i++) expect((await token(i % 2 === 0 ? a : b, wrong)).status).toBe(401);

    const blocked = await token(a, victim.authorization).expect(429);
    expect(blocked.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(blocked.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(blocked.headers['cache-control']).toBe('no-store');
    await eventually(async () => expect((await token(b, victim.authorization)).status).toBe(429));

    // Another client from the same address is not affected (the IP has 20 of its 30).
    const bystander = await makeClient(a.services);
    await token(a, bystander.authorization).expect(200);

    clock.advance(60_000);
    await token(a, victim.authorization).expect(200);
    await token(b, victim.authorization).expect(200);
  });

  it('after IDP_TOKEN_FAILURES_PER_IP failures from one address: every client from it gets 429', async () => {
    const good = await makeClient(a.services);
    for (let i = 0; i < 30; i++) expect((await token(a, basic(`unknown-${i}`, 'x'))).status).toBe(401);
    const res = await token(a, good.authorization).expect(429);
    expect(res.headers['retry-after']).toBeDefined();
    await eventually(async () => expect((await token(b, good.authorization)).status).toBe(429));
    clock.advance(60_000);
    await token(a, good.authorization).expect(200);
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

  it('reset forgets a key; sweep deletes counters whose window has passed', async () => {
    const limiter = new FailureLimiter({ handle, logger, now: clock.now });
    await limiter.start();
    for (let i = 0; i < 3; i++) await limiter.recordFailure([{ key: 'k:reset', rule }]);
    expect(limiter.retryAfterSeconds(['k:reset'])).toBeGreaterThan(0);
    await limiter.reset(['k:reset']);
    expect(limiter.retryAfterSeconds(['k:reset'])).toBe(0);

    await limiter.recordFailure([{ key: 'k:old', rule }]);
    clock.advance(rule.windowMs);
    expect(await limiter.sweep()).toBeGreaterThan(0);
    const left = await handle.db.selectFrom('rate_limit_counters').select('key').execute();
    expect(left.map((r) => r.key)).not.toContain('k:old');
  });
});
