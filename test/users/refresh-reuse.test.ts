import request from 'supertest';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { FakeClock, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { signUp, testEnv, type SignedIn } from './support';

const INTERVAL_MS = 10_000;

/**
 * IDP_REFRESH_REUSE_INTERVAL (docs/configuration.md "Configuration": a refresh token presented again within the interval after
 * its own rotation gets the session's current pair instead of revoking the session; outside it, or
 * with the default 0s, reuse revokes the session as before. Time moves on a fake clock.
 */
describe('refresh-token reuse interval', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  /** IDP_REFRESH_REUSE_INTERVAL=10s */
  let tolerant: TestServer;
  /** the default, 0s */
  let strict: TestServer;
  const clock = new FakeClock();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    // One environment (one MEK) for both: they share the database and its keys.
    const env = testEnv(database);
    tolerant = await startTestServer(loadConfig({ ...env, IDP_REFRESH_REUSE_INTERVAL: '10s' }), handle, clock.now);
    strict = await startTestServer(loadConfig(env), await database.open(), clock.now);
  });
  afterAll(async () => {
    await strict?.close();
    await tolerant?.close();
    await database?.drop();
  });

  const refresh = (server: TestServer, token: string) => request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: token });
  const grant = (server: TestServer, token: string) => request(server.url).post('/oauth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: token });
  const user = (server: TestServer, token: string) => request(server.url).get('/auth/v1/user').set('Authorization', `Bearer ${token}`);
  const sidOf = (accessToken: string): string => JSON.parse(Buffer.from(accessToken.split('.')[1] as string, 'base64url').toString()).sid;
  const revocations = (session: SignedIn) =>
    handle.db.selectFrom('audit_events').select('reason').where('action', '=', 'session.revoked').where('target', '=', sidOf(session.access_token)).execute();

  it('answers two concurrent refreshes of one token both with the session’s current pair; the session stays alive', async () => {
    const session = await signUp(tolerant.url);
    const [a, b] = await Promise.all([refresh(tolerant, session.refresh_token), refresh(tolerant, session.refresh_token)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    // Both tabs end with the same, current refresh token, and each with a live access token of the session.
    expect(a.body.refresh_token).toBe(b.body.refresh_token);
    expect(a.body.refresh_token).not.toBe(session.refresh_token);
    for (const res of [a, b]) {
      expect(sidOf(res.body.access_token)).toBe(sidOf(session.access_token));
      expect((await user(tolerant, res.body.access_token)).status).toBe(200);
    }
    expect((await user(tolerant, session.access_token)).status).toBe(200);

    const next = await refresh(tolerant, a.body.refresh_token);
    expect(next.status).toBe(200);
    expect((await user(tolerant, next.body.access_token)).status).toBe(200);
    expect(await revocations(session)).toEqual([]);
  });

  it('does the same for grant_type=refresh_token at /oauth/token', async () => {
    const session = await signUp(tolerant.url);
    const [a, b] = await Promise.all([grant(tolerant, session.refresh_token), grant(tolerant, session.refresh_token)]);
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.body.refresh_token).toBe(b.body.refresh_token);
    expect(b.body).toMatchObject({ token_type: 'Bearer', scope: 'user', expires_in: 3600 });
    expect((await grant(tolerant, a.body.refresh_token)).status).toBe(200);
    expect(await revocations(session)).toEqual([]);
  });

  it('answers a late presentation within the interval with the current token, however many rotations followed', async () => {
    const session = await signUp(tolerant.url);
    const first = await refresh(tolerant, session.refresh_token);
    clock.advance(2_000);
    const second = await refresh(tolerant, first.body.refresh_token);
    expect(second.status).toBe(200);
    clock.advance(INTERVAL_MS - 2_000);

    // Exactly the interval after its rotation: still tolerated, and it gets the newest token.
    const late = await refresh(tolerant, session.refresh_token);
    expect(late.status).toBe(200);
    expect(late.body.refresh_token).toBe(second.body.refresh_token);
    expect((await refresh(tolerant, first.body.refresh_token)).body.refresh_token).toBe(second.body.refresh_token);
    expect((await user(tolerant, late.body.access_token)).status).toBe(200);
    // The current token was handed out again, not spent: it still rotates once.
    expect((await refresh(tolerant, second.body.refresh_token)).status).toBe(200);
    expect(await revocations(session)).toEqual([]);
  });

  it('revokes the session when a token comes back after the interval', async () => {
    const session = await signUp(tolerant.url);
    const first = await refresh(tolerant, session.refresh_token);
    expect(first.status).toBe(200);
    clock.advance(INTERVAL_MS + 1);

    const reuse = await refresh(tolerant, session.refresh_token);
    expect(reuse.status).toBe(400);
    expect(reuse.body).toEqual({ error: 'invalid_grant', message: expect.stringContaining('already used') });
    expect((await refresh(tolerant, first.body.refresh_token)).body.error).toBe('invalid_grant');
    expect((await user(tolerant, first.body.access_token)).status).toBe(401);
    expect(await revocations(session)).toEqual([{ reason: 'refresh token reuse' }]);
  });

  it('never resurrects a signed-out session within the interval', async () => {
    const session = await signUp(tolerant.url);
    const first = await refresh(tolerant, session.refresh_token);
    expect((await request(tolerant.url).post('/auth/v1/logout').set('Authorization', `Bearer ${first.body.access_token}`)).status).toBe(204);
    const late = await refresh(tolerant, session.refresh_token);
    expect(late.status).toBe(400);
    expect(late.body).toEqual({ error: 'invalid_grant', message: 'the session of this refresh token has been signed out; sign in again' });
  });

  it('with the default 0s, a concurrent refresh is reuse and revokes the session, as before', async () => {
    const session = await signUp(strict.url);
    const answers = await Promise.all([refresh(strict, session.refresh_token), refresh(strict, session.refresh_token)]);
    expect(answers.map((res) => res.status).sort()).toEqual([200, 400]);
    const winner = answers.find((res) => res.status === 200)!;
    expect((await refresh(strict, winner.body.refresh_token)).body.error).toBe('invalid_grant');
    expect((await user(strict, winner.body.access_token)).status).toBe(401);
    expect(await revocations(session)).toEqual([{ reason: 'refresh token reuse' }]);

    // Sequentially, at once after the rotation: the same.
    const other = await signUp(strict.url);
    expect((await refresh(strict, other.refresh_token)).status).toBe(200);
    expect((await refresh(strict, other.refresh_token)).status).toBe(400);
    expect(await revocations(other)).toEqual([{ reason: 'refresh token reuse' }]);
  });

  it('stores no refresh token in clear, and forgets the way to the current token once the interval has passed', async () => {
    const session = await signUp(tolerant.url);
    const first = await refresh(tolerant, session.refresh_token);
    const second = await refresh(tolerant, first.body.refresh_token);
    const rows = await handle.db.selectFrom('refresh_tokens').selectAll().where('session_id', '=', sidOf(session.access_token)).execute();
    expect(rows).toHaveLength(3);
    const dump = JSON.stringify(rows, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('hex') : value));
    for (const token of [session.refresh_token, first.body.refresh_token, second.body.refresh_token] as string[]) {
      expect(dump).not.toContain(token);
      expect(dump).not.toContain(Buffer.from(token, 'base64url').toString('hex'));
    }
    expect(rows.filter((row) => row.successor !== null)).toHaveLength(2);

    // A strict server seals nothing.
    const plain = await signUp(strict.url);
    await refresh(strict, plain.refresh_token);
    const strictRows = await handle.db.selectFrom('refresh_tokens').select('successor').where('session_id', '=', sidOf(plain.access_token)).execute();
    expect(strictRows.map((row) => row.successor)).toEqual([null, null]);

    clock.advance(INTERVAL_MS + 1);
    await tolerant.services.users.sweep();
    const swept = await handle.db.selectFrom('refresh_tokens').select('successor').where('session_id', '=', sidOf(session.access_token)).execute();
    expect(swept.map((row) => row.successor)).toEqual([null, null, null]);
    expect((await refresh(tolerant, second.body.refresh_token)).status).toBe(200);
  });
});
