import request from 'supertest';
import { loadConfig } from '../../src/config';
import { deleteExpiredRefreshTokens } from '../../src/users/repository';
import { FakeClock, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freshEmail, signUp, testEnv } from './support';

/** Sign-in limits per IP and per email with small configured values, the window passing on a fake clock; refresh-token expiry. */
describe('sign-in limits (configured) and refresh-token expiry', () => {
  let database: TestDatabase;
  let server: TestServer;
  const clock = new FakeClock();
  const WINDOW = 15 * 60_000;

  beforeAll(async () => {
    database = await createTestDatabase();
    const env = testEnv(database, { IDP_SIGNIN_FAILURES_PER_EMAIL: '3', IDP_SIGNIN_FAILURES_PER_IP: '5', IDP_SIGNIN_FAILURE_WINDOW: '15m' });
    server = await startTestServer(loadConfig(env), await database.open(), clock.now);
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const attempt = (email: string, password: string) => request(server.url).post('/auth/v1/token').send({ email, password });

  it('limits one email after IDP_SIGNIN_FAILURES_PER_EMAIL failures until the window passes', async () => {
    const { user } = await signUp(server.url);
    for (let i = 0; i < 3; i++) expect((await attempt(user.email, 'wrong password')).status).toBe(400);
    const limited = await attempt(user.email, 'correct horse battery');
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBe(WINDOW / 1000);
    clock.advance(WINDOW);
    expect((await attempt(user.email, 'correct horse battery')).status).toBe(200);
  });

  it('limits one IP after IDP_SIGNIN_FAILURES_PER_IP failures across many emails; successes are not counted', async () => {
    const { user } = await signUp(server.url);
    for (let i = 0; i < 3; i++) expect((await attempt(user.email, 'correct horse battery')).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await attempt(freshEmail('spray'), 'guess')).status).toBe(400);
    const limited = await attempt(user.email, 'correct horse battery');
    expect(limited.status).toBe(429);
    expect(limited.body).toEqual({ error: 'too_many_requests', message: expect.stringMatching(/^too many failed sign-ins; try again in \d+ seconds$/) });
    clock.advance(WINDOW);
    expect((await attempt(user.email, 'correct horse battery')).status).toBe(200);
  });

  it('refuses an expired refresh token, saying when, without counting it as reuse', async () => {
    const session = await signUp(server.url);
    clock.advance(7 * 86_400_000 + 60_000);
    const refresh = () => request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: session.refresh_token });
    const expired = await refresh();
    expect(expired.status).toBe(400);
    expect(expired.body.message).toMatch(/^refresh token expired 1 minute ago at .* UTC; sign in again$/);
    expect((await refresh()).body.message).toMatch(/^refresh token expired/);
    // The sweep deletes it; it stays refused.
    expect(await deleteExpiredRefreshTokens(server.services.handle.db, clock.now())).toBeGreaterThanOrEqual(1);
    expect((await refresh()).body).toEqual({ error: 'invalid_grant', message: 'refresh token is not valid; sign in again' });
  });
});
