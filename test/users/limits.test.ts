import request from 'supertest';
import { loadConfig } from '../../src/config';
import { hashRefreshToken } from '../../src/users/refresh-token';
import { FakeClock, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freshEmail, signUp, testEnv } from './support';

/**
 * docs/security.md "Abuse limits and the threat model" sign-in and sign-up limits with small configured values, the window passing on a fake
 * clock. Requests come from 127.0.0.1; with IDP_TRUST_PROXY=loopback, X-Forwarded-For names the
 * address as a proxy on this machine would. Also refresh-token expiry.
 */
describe('sign-in and sign-up limits (configured) and refresh-token expiry', () => {
  let database: TestDatabase;
  let server: TestServer;
  const clock = new FakeClock();
  const WINDOW = 15 * 60_000;

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = testEnv(database, {
      IDP_TRUST_PROXY: 'loopback',
      IDP_SIGNIN_FAILURES_PER_EMAIL_IP: '3',
      IDP_SIGNIN_FAILURES_PER_IP: '5',
      IDP_SIGNIN_FAILURES_PER_EMAIL: '6',
      IDP_SIGNIN_FAILURE_WINDOW: '15m',
      IDP_SIGNUPS_PER_IP: '3',
      IDP_SIGNUP_WINDOW: '1h',
    });
    server = await startTestServer(loadConfig(env), await database.open(), clock.now);
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const attempt = (email: string, password: string, from = '198.51.100.1') =>
    request(server.url).post('/auth/v1/token').set('X-Forwarded-For', from).send({ email, password });
  const CORRECT = 'correct horse battery';

  it('blocks one (email, address) pair after IDP_SIGNIN_FAILURES_PER_EMAIL_IP failures; the same account from another address signs in', async () => {
    const { user } = await signUp(server.url);
    for (let i = 0; i < 3; i++) expect((await attempt(user.email, 'wrong password', '198.51.100.10')).status).toBe(400);
    const limited = await attempt(user.email, CORRECT, '198.51.100.10');
    expect(limited.status).toBe(429);
    expect(limited.body).toEqual({ error: 'too_many_requests', message: expect.stringMatching(/^too many failed sign-ins; try again in \d+ seconds$/) });
    expect(Number(limited.headers['retry-after'])).toBe(WINDOW / 1000);
    // The owner, from anywhere else, is not locked out.
    expect((await attempt(user.email, CORRECT, '192.0.2.50')).status).toBe(200);
    // The attacker keeps hammering: refused, and not counted against the email.
    for (let i = 0; i < 10; i++) expect((await attempt(user.email, 'wrong password', '198.51.100.10')).status).toBe(429);
    expect((await attempt(user.email, CORRECT, '192.0.2.51')).status).toBe(200);
    clock.advance(WINDOW);
    expect((await attempt(user.email, CORRECT, '198.51.100.10')).status).toBe(200);
  });

  it('blocks one address after IDP_SIGNIN_FAILURES_PER_IP failures across emails; other addresses sign in; successes are not counted', async () => {
    const { user } = await signUp(server.url);
    for (let i = 0; i < 3; i++) expect((await attempt(user.email, CORRECT, '198.51.100.20')).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await attempt(freshEmail('spray'), 'guess', '198.51.100.20')).status).toBe(400);
    expect((await attempt(user.email, CORRECT, '198.51.100.20')).status).toBe(429);
    expect((await attempt(user.email, CORRECT, '198.51.100.21')).status).toBe(200);
    clock.advance(WINDOW);
    expect((await attempt(user.email, CORRECT, '198.51.100.20')).status).toBe(200);
  });

  it('blocks one email after IDP_SIGNIN_FAILURES_PER_EMAIL failures from several addresses together (a distributed attack)', async () => {
    const { user } = await signUp(server.url);
    // Two addresses, three failures each (each pair then blocked): six for the email.
    for (const from of ['203.0.113.1', '203.0.113.2']) for (let i = 0; i < 3; i++) expect((await attempt(user.email, 'nope', from)).status).toBe(400);
    expect((await attempt(user.email, CORRECT, '203.0.113.3')).status).toBe(429);
    clock.advance(WINDOW);
    expect((await attempt(user.email, CORRECT, '203.0.113.3')).status).toBe(200);
  });

  it('IDP_RATE_LIMIT_ALLOWLIST exempts an address from the per-address limit only', async () => {
    const env = testEnv(database, { IDP_MEK: server.services.config.mek!, IDP_SIGNIN_FAILURES_PER_EMAIL_IP: '3', IDP_SIGNIN_FAILURES_PER_IP: '5', IDP_RATE_LIMIT_ALLOWLIST: '127.0.0.1' });
    const office = await startTestServer(loadConfig(env), await database.open(), clock.now);
    try {
      const { user } = await signUp(office.url);
      const from = (email: string, password: string) => request(office.url).post('/auth/v1/token').send({ email, password });
      for (let i = 0; i < 8; i++) expect((await from(freshEmail('office'), 'guess')).status).toBe(400);
      expect((await from(user.email, CORRECT)).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await from(user.email, 'wrong')).status).toBe(400);
      expect((await from(user.email, CORRECT)).status).toBe(429);
    } finally {
      await office.close();
    }
  });

  it('limits sign-ups per address (IDP_SIGNUPS_PER_IP an hour); another address may sign up', async () => {
    clock.advance(3_600_000);
    const signup = (from: string, email = freshEmail('signup')) => request(server.url).post('/auth/v1/signup').set('X-Forwarded-For', from).send({ email, password: CORRECT });
    for (let i = 0; i < 3; i++) expect((await signup('198.51.100.60')).status).toBe(201);
    const limited = await signup('198.51.100.60');
    expect(limited.status).toBe(429);
    expect(limited.body.error).toBe('too_many_requests');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect((await signup('198.51.100.61')).status).toBe(201);
    clock.advance(3_600_000);
    expect((await signup('198.51.100.60')).status).toBe(201);
  });

  it('refuses an expired refresh token, saying when, without counting it as reuse', async () => {
    const session = await signUp(server.url);
    clock.advance(7 * 86_400_000 + 60_000);
    const refresh = () => request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: session.refresh_token });
    const expired = await refresh();
    expect(expired.status).toBe(400);
    expect(expired.body.message).toMatch(/^refresh token expired 1 minute ago at .* UTC; sign in again$/);
    expect((await refresh()).body.message).toMatch(/^refresh token expired/);
    // The sweep the service runs deletes it; it stays refused.
    const stored = () => server.services.handle.db.selectFrom('refresh_tokens').select('expires_at').where('token_hash', '=', hashRefreshToken(session.refresh_token)).executeTakeFirst();
    expect(await stored()).toBeDefined();
    await server.services.users.sweep();
    expect(await stored()).toBeUndefined();
    expect((await refresh()).body).toEqual({ error: 'invalid_grant', message: 'refresh token is not valid; sign in again' });
  });
});
