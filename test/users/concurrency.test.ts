import request from 'supertest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/observability/logger';
import { PasswordHashing, PasswordHashingBusy } from '../../src/users/passwords';
import { captureLogs, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { waitFor } from '../multiprocess/processes';
import { freshEmail, signUp, testEnv } from './support';

const CORRECT = 'correct horse battery';

/**
 * docs/security.md "Abuse limits and the threat model" under parallel requests: every attempt is reserved before its hash, so a
 * burst from one address can never pass a limit, add more than the pair limit to an email's count,
 * or log more than one block. The hashing queue is large enough here that, without the
 * reservation, every request of a burst would be hashed and counted.
 */
describe('sign-in and sign-up limits under parallel requests', () => {
  let database: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = testEnv(database, {
      IDP_TRUST_PROXY: 'loopback',
      IDP_PASSWORD_HASH_QUEUE: '500',
      // Defaults but the per-email limit, lowered so that two unbounded bursts would surely pass it.
      IDP_SIGNIN_FAILURES_PER_EMAIL_IP: '10',
      IDP_SIGNIN_FAILURES_PER_EMAIL: '30',
      IDP_SIGNUPS_PER_IP: '20',
    });
    server = await startTestServer(loadConfig(env), await database.open());
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const attempt = (email: string, password: string, from: string) =>
    request(server.url).post('/auth/v1/token').set('X-Forwarded-For', from).send({ email, password });
  const counters = async (...keys: string[]) => {
    const rows = await server.services.handle.db.selectFrom('rate_limit_counters').select(['key', 'failures', 'pending']).where('key', 'in', keys).execute();
    return Object.fromEntries(rows.map((row) => [row.key, { failures: row.failures, pending: row.pending }]));
  };
  const statuses = (answers: Array<{ status: number }>) => {
    const count: Record<number, number> = {};
    for (const { status } of answers) count[status] = (count[status] ?? 0) + 1;
    return count;
  };

  it('60 parallel wrong passwords from one address: exactly 10 tested and counted, one audit event; the owner signs in from elsewhere', async () => {
    const { user } = await signUp(server.url);
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => attempt(user.email, `wrong password ${i}`, '198.51.100.70')));
    expect(statuses(answers)).toEqual({ 400: 10, 429: 50 });
    for (const refused of answers.filter((r) => r.status === 429)) expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(await counters(`signin:pair:198.51.100.70|${user.email}`, `signin:email:${user.email}`, 'signin:ip:198.51.100.70')).toEqual({
      [`signin:pair:198.51.100.70|${user.email}`]: { failures: 10, pending: 0 },
      [`signin:email:${user.email}`]: { failures: 10, pending: 0 },
      'signin:ip:198.51.100.70': { failures: 10, pending: 0 },
    });
    const events = await server.services.handle.db
      .selectFrom('audit_events')
      .select('details')
      .where('action', '=', 'signin.failure_limit_reached')
      .where('target', '=', user.email)
      .execute();
    expect(events).toHaveLength(1);
    expect((await attempt(user.email, CORRECT, '192.0.2.70')).status).toBe(200);
    // The blocked pair stays blocked, correct password included.
    expect((await attempt(user.email, CORRECT, '198.51.100.70')).status).toBe(429);
  });

  it('two addresses × 60 parallel wrong passwords add 20 to the email, which stays open: the owner signs in from a third address', async () => {
    const { user } = await signUp(server.url);
    const burst = (from: string) => Array.from({ length: 60 }, (_, i) => attempt(user.email, `guess ${i}`, from));
    const answers = await Promise.all([...burst('203.0.113.71'), ...burst('203.0.113.72')]);
    expect(statuses(answers)).toEqual({ 400: 20, 429: 100 });
    expect(await counters(`signin:email:${user.email}`)).toEqual({ [`signin:email:${user.email}`]: { failures: 20, pending: 0 } });
    const owner = await attempt(user.email, CORRECT, '192.0.2.73');
    expect([owner.status, owner.headers['retry-after']]).toEqual([200, undefined]);
  });

  it('45 parallel sign-ups from one address: exactly 20 × 201 and 25 × 429; another address still signs up', async () => {
    const signup = (from: string) => request(server.url).post('/auth/v1/signup').set('X-Forwarded-For', from).send({ email: freshEmail('burst'), password: CORRECT });
    const answers = await Promise.all(Array.from({ length: 45 }, () => signup('198.51.100.80')));
    expect(statuses(answers)).toEqual({ 201: 20, 429: 25 });
    for (const refused of answers.filter((r) => r.status === 429)) expect(refused.body.error).toBe('too_many_requests');
    expect(await counters('signup:ip:198.51.100.80')).toEqual({ 'signup:ip:198.51.100.80': { failures: 20, pending: 0 } });
    expect((await signup('198.51.100.80')).status).toBe(429);
    expect((await signup('198.51.100.81')).status).toBe(201);
  });
});

describe('what a flood of sign-ins and a corrupt password hash log', () => {
  let database: TestDatabase;
  let server: TestServer;
  const logs = captureLogs();

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = testEnv(database, { IDP_LOG_LEVEL: 'info', IDP_TRUST_PROXY: 'loopback', IDP_PASSWORD_HASH_CONCURRENCY: '1', IDP_PASSWORD_HASH_QUEUE: '2' });
    server = await startTestServer(loadConfig(env), await database.open(), undefined, { logs });
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  it('a flood that fills the hashing queue is answered 503 and logged as load shedding (warn, with a count), never as an error', async () => {
    const { user } = await signUp(server.url);
    const before = logs.lines.length;
    // From many addresses, so that no limit refuses them before the hash.
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => request(server.url).post('/auth/v1/token').set('X-Forwarded-For', `198.18.0.${i + 1}`).send({ email: user.email, password: `flood ${i}` })),
    );
    const shed = answers.filter((r) => r.status === 503);
    expect(shed.length).toBeGreaterThan(0);
    for (const r of shed) expect([r.body.error, r.headers['retry-after']]).toEqual(['temporarily_unavailable', '1']);
    const lines = logs.lines.slice(before);
    expect(lines.filter((line) => Number(line.level) >= 50)).toEqual([]);
    // One line for the whole flood (the interval is a minute), counting the first refusal.
    const shedding = lines.filter((line) => String(line.msg).startsWith('password hashing saturated'));
    expect(shedding).toHaveLength(1);
    expect(shedding[0]).toMatchObject({ level: 40, shed: 1 });
    expect(logs.text()).not.toMatch(/"stack"/);
  });

  it('a corrupt stored hash answers as a wrong password and is logged as an error naming the user, never the hash', async () => {
    const { user } = await signUp(server.url);
    const corrupt = '$argon2id$v=19$not-a-real-hash';
    await server.services.handle.db.updateTable('users').set({ password_hash: corrupt }).where('id', '=', user.id).execute();
    const answer = await request(server.url).post('/auth/v1/token').set('X-Forwarded-For', '198.18.1.1').send({ email: user.email, password: CORRECT });
    expect([answer.status, answer.body.error]).toEqual([400, 'invalid_credentials']);
    const line = logs.lines.find((l) => String(l.msg).startsWith('stored password hash is malformed'));
    expect(line).toMatchObject({ level: 50, userId: user.id });
    expect(logs.text()).not.toContain('not-a-real-hash');
  });
});

describe('PasswordHashing load-shedding log', () => {
  it('logs the first refusal at once, then at most one line per interval with the count refused since, and the rest on close', async () => {
    const logs = captureLogs();
    const hashing = new PasswordHashing({ concurrency: 1, queue: 0 }, { logger: createLogger('info', logs.stream), shedLogIntervalMs: 200 });
    try {
      const shedLines = () => logs.lines.filter((l) => String(l.msg).startsWith('password hashing saturated'));
      // Refused at once (before any await): the first line is written then, the other three wait for the interval.
      const first = Promise.allSettled(Array.from({ length: 5 }, (_, i) => hashing.hash(`first ${i}`)));
      expect(shedLines().map((l) => [l.level, l.shed])).toEqual([[40, 1]]);
      const settled = await first;
      expect(settled.filter((r) => r.status === 'rejected' && r.reason instanceof PasswordHashingBusy)).toHaveLength(4);
      await waitFor('the summary of the interval', () => (shedLines().length === 2 ? true : undefined), 5_000);
      expect(shedLines().map((l) => l.shed)).toEqual([1, 3]);
      await Promise.allSettled(Array.from({ length: 3 }, (_, i) => hashing.hash(`second ${i}`)));
      await hashing.close();
      // The first refusal after a quiet interval is logged at once; nothing refused is left out.
      const counts = shedLines().map((l) => Number(l.shed));
      expect(counts.reduce((a, b) => a + b, 0)).toBe(6);
      expect(logs.lines.every((l) => Number(l.level) < 50)).toBe(true);
    } finally {
      await hashing.close();
    }
  });
});
