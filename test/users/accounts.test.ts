import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { loadConfig } from '../../src/config';
import { FakeClock, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freshEmail, signIn, signUp, testEnv } from './support';
import { eventually } from '../oauth/helpers';

describe('/auth/v1: sign-up, sign-in, refresh rotation, logout', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let other: TestServer;
  const clock = new FakeClock();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    const config = loadConfig(testEnv(database));
    server = await startTestServer(config, handle, clock.now);
    // A second instance on the same database: revocation must hold there too.
    other = await startTestServer(config, await database.open(), clock.now);
  });
  afterAll(async () => {
    await other?.close();
    await server?.close();
    await database?.drop();
  });

  const user = (url: string, token: string) => request(url).get('/auth/v1/user').set('Authorization', `Bearer ${token}`);
  const refresh = (token: string) => request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: token });

  it('runs the whole story: sign-up, sign-in, user, refresh, reuse, logout', async () => {
    const email = freshEmail('story');
    const signup = await request(server.url).post('/auth/v1/signup').send({ email: `  ${email.toUpperCase()} `, password: 'correct horse battery' });
    expect(signup.status).toBe(201);
    expect(signup.headers['cache-control']).toBe('no-store');
    expect(signup.body).toMatchObject({ token_type: 'bearer', expires_in: 3600, user: { email } });
    expect(JSON.stringify(signup.body)).not.toMatch(/password|argon2/);

    const session = await signIn(server.url, email);
    const me = await user(server.url, session.access_token);
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ id: signup.body.user.id, email, role: 'user', tenant_id: null });
    expect(me.body).not.toHaveProperty('password_hash');

    const claims = JSON.parse(Buffer.from(session.access_token.split('.')[1] as string, 'base64url').toString());
    expect(claims).toMatchObject({ iss: 'http://idp.test', aud: 'http://idp.test', sub: signup.body.user.id, email, role: 'user', token_type: 'user' });
    expect(typeof claims.sid).toBe('string');
    expect(session.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const first = await refresh(session.refresh_token);
    expect(first.status).toBe(200);
    expect(first.body.refresh_token).not.toBe(session.refresh_token);
    expect((await user(server.url, first.body.access_token)).status).toBe(200);

    // Reuse of the spent token: refused, and the whole session dies, including the new refresh and access tokens.
    const reuse = await refresh(session.refresh_token);
    expect(reuse.status).toBe(400);
    expect(reuse.body).toEqual({ error: 'invalid_grant', message: expect.stringContaining('already used') });
    expect((await refresh(first.body.refresh_token)).body.error).toBe('invalid_grant');
    const afterReuse = await user(other.url, first.body.access_token);
    expect(afterReuse.status).toBe(401);
    expect(afterReuse.body.error).toBe('invalid_token');

    // Logout on one instance: the still-unexpired access token is refused on the other one.
    const again = await signIn(server.url, email);
    expect((await user(other.url, again.access_token)).status).toBe(200);
    const logout = await request(server.url).post('/auth/v1/logout').set('Authorization', `Bearer ${again.access_token}`);
    expect(logout.status).toBe(204);
    const afterLogout = await user(other.url, again.access_token);
    expect(afterLogout.status).toBe(401);
    expect(afterLogout.body).toEqual({ error: 'invalid_token', message: 'this session has been signed out; sign in again' });
    expect((await refresh(again.refresh_token)).body.error).toBe('invalid_grant');

    const audit = await handle.db.selectFrom('audit_events').select(['action', 'reason']).where('action', 'in', ['user.signed_up', 'session.revoked']).execute();
    expect(audit).toEqual(
      expect.arrayContaining([
        { action: 'user.signed_up', reason: null },
        { action: 'session.revoked', reason: 'refresh token reuse' },
        { action: 'session.revoked', reason: 'logout' },
      ]),
    );
  });

  it('answers an unknown email and a wrong password with identical bodies', async () => {
    const { user: known } = await signUp(server.url);
    const wrong = await request(server.url).post('/auth/v1/token?grant_type=password').send({ email: known.email, password: 'not the password' });
    const unknown = await request(server.url).post('/auth/v1/token').send({ email: freshEmail('nobody'), password: 'not the password' });
    expect(wrong.status).toBe(400);
    expect(unknown.status).toBe(400);
    expect(wrong.body).toEqual({ error: 'invalid_credentials', message: 'invalid email or password' });
    expect(unknown.body).toEqual(wrong.body);
  });

  it('answers the 11th failed sign-in for one email from one address with 429 and Retry-After, even with the right password', async () => {
    const { user: target } = await signUp(server.url);
    for (let i = 0; i < 10; i++) {
      const res = await request(server.url).post('/auth/v1/token').send({ email: target.email, password: `wrong ${i}` });
      expect(res.status).toBe(400);
    }
    const limited = await request(server.url).post('/auth/v1/token').send({ email: target.email, password: 'correct horse battery' });
    expect(limited.status).toBe(429);
    expect(limited.body.error).toBe('too_many_requests');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(15 * 60);
    // The limit is stored in Postgres and announced: the other instance refuses that pair too, once
    // the notification has arrived (a refused attempt is not counted, so polling changes nothing).
    await eventually(async () => {
      const elsewhere = await request(other.url).post('/auth/v1/token').send({ email: target.email, password: 'correct horse battery' });
      expect(elsewhere.status).toBe(429);
    });
    const burst = await handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'signin.failure_limit_reached').execute();
    expect(burst.map((e) => e.target)).toContain(target.email);
    expect(JSON.stringify(burst)).not.toContain('wrong');
  });

  it('says when a token expired, and refuses it', async () => {
    const session = await signUp(server.url);
    clock.advance(3_600_000 + 3 * 60_000);
    try {
      const res = await user(server.url, session.access_token);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('token_expired');
      expect(res.body.message).toMatch(/^token expired 3 minutes ago at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC; /);
      // The refresh token still works (7 days) and gives a fresh access token.
      const fresh = await refresh(session.refresh_token);
      expect(fresh.status).toBe(200);
      expect((await user(server.url, fresh.body.access_token)).status).toBe(200);
    } finally {
      clock.advance(-(3_600_000 + 3 * 60_000));
    }
  });

  it('bounds the body and the password, and validates input without a 500', async () => {
    const huge = 'x'.repeat(1024 * 1024);
    const tooLarge = await request(server.url).post('/auth/v1/token').send({ email: freshEmail(), password: huge });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error).toBe('payload_too_large');
    const long = await request(server.url).post('/auth/v1/signup').send({ email: freshEmail(), password: 'x'.repeat(2000) });
    expect(long.status).toBe(400);
    expect(long.body.message).toBe('password must be at most 1024 bytes');
    const short = await request(server.url).post('/auth/v1/signup').send({ email: freshEmail(), password: 'short' });
    expect(short.status).toBe(422);
    expect(short.body.error).toBe('weak_password');
    const badEmail = await request(server.url).post('/auth/v1/signup').send({ email: 'not-an-email', password: 'correct horse battery' });
    expect(badEmail.body.error).toBe('invalid_request');
    const notJson = await request(server.url).post('/auth/v1/signup').set('Content-Type', 'application/json').send('{"email":');
    expect(notJson.status).toBe(400);
    const grant = await request(server.url).post('/auth/v1/token?grant_type=magic').send({});
    expect(grant.body.error).toBe('invalid_request');
    const missing = await request(server.url).get('/auth/v1/user');
    expect(missing.status).toBe(401);
    expect(missing.body.error).toBe('unauthorized');
  });

  it('refuses a second account for the same normalised email', async () => {
    const email = freshEmail('dup');
    await signUp(server.url, email);
    const again = await request(server.url).post('/auth/v1/signup').send({ email: email.toUpperCase(), password: 'another password' });
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('user_already_exists');
  });
});
