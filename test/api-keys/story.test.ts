import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { sql } from 'kysely';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { FakeClock, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually, makeClient, type TestClient } from '../oauth/helpers';
import { signUp, type SignedIn } from '../users/support';
import { ACCESS_TOKEN_TYPE, exchange, introspect, TOKEN_EXCHANGE } from './support';

/**
 * The whole story of docs/api-keys.md "API keys" over real HTTP, on two instances of one database (on Postgres two
 * pools, on PGlite the one shared handle): a user creates a key, a resource server introspects it,
 * a script exchanges it for a JWT that verifies offline against the JWKS, the user revokes it, and
 * both instances see it inactive. The second instance re-reads its cache only every hour, so only
 * the notification can make it see the revocation.
 */
describe('API keys: create → introspect → exchange → revoke, on two instances', () => {
  let database: TestDatabase;
  let handles: DatabaseHandle[];
  let a: TestServer;
  let b: TestServer;
  // Starts at the real time so jose agrees on iat/exp; moved forward for last_used_at.
  const clock = new FakeClock(new Date());
  let user: SignedIn;
  let resourceServer: TestClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    handles = [await database.open(), await database.open()];
    const config = testConfig(database, { IDP_MEK: testMek('api-keys-story'), IDP_KEY_REFRESH_INTERVAL: '1h' });
    a = await startTestServer(config, handles[0]!, clock.now);
    b = await startTestServer(config, handles[1]!, clock.now);
    user = await signUp(a.url);
    resourceServer = await makeClient(a.services, { name: 'resource server' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  const asUser = (token = user.access_token) => ({
    post: (body: object) => request(a.url).post('/auth/v1/api-keys').set('Authorization', `Bearer ${token}`).send(body),
    list: () => request(a.url).get('/auth/v1/api-keys').set('Authorization', `Bearer ${token}`),
    revoke: (id: string) => request(a.url).delete(`/auth/v1/api-keys/${id}`).set('Authorization', `Bearer ${token}`),
  });

  it('lists the token-exchange grant in the discovery metadata', async () => {
    const res = await request(a.url).get('/.well-known/oauth-authorization-server').expect(200);
    expect(res.body.grant_types_supported).toContain(TOKEN_EXCHANGE);
  });

  it('runs the whole story', async () => {
    // Create: the key is in this response only.
    const created = await asUser().post({ name: 'nightly export', expires_in: '30d' }).expect(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const { key, id } = created.body as { key: string; id: string };
    expect(key).toMatch(/^idpk_[0-9A-Za-z]{16}_[0-9A-Za-z]{43}$/);
    expect(key.slice(5, 21)).toBe(id);
    expect(created.body).toMatchObject({ name: 'nightly export', user_id: user.user.id, client_id: null, tenant_id: null, scopes: ['user'], status: 'active' });
    expect(new Date(created.body.expires_at).getTime()).toBe(clock.now().getTime() + 30 * 86_400_000);

    // The list shows it, never the key.
    const listed = await asUser().list().expect(200);
    expect(listed.body.api_keys.map((k: { id: string }) => k.id)).toEqual([id]);
    expect(JSON.stringify(listed.body)).not.toContain(key.slice(22));
    expect(listed.body.api_keys[0]).not.toHaveProperty('key');

    // Introspection: exactly the members of docs/api-keys.md "API keys", on both instances.
    for (const server of [a, b]) {
      const res = await introspect(server.url, resourceServer, key).expect(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toEqual({
        active: true,
        token_type: 'api_key',
        sub: user.user.id,
        scope: 'user',
        exp: Math.floor(new Date(created.body.expires_at).getTime() / 1000),
        iat: Math.floor(new Date(created.body.created_at).getTime() / 1000),
      });
    }

    // Exchange (RFC 8693): no client authentication, a JWT of the key's owner.
    const exchanged = await exchange(a.url, key).expect(200);
    expect(exchanged.headers['cache-control']).toBe('no-store');
    expect(exchanged.body).toEqual({
      access_token: expect.any(String),
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: 3600,
      scope: 'user',
    });
    const jwt = exchanged.body.access_token as string;
    expect(decodeProtectedHeader(jwt)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    const jwks = createRemoteJWKSet(new URL(`${a.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(jwt, jwks, { issuer: 'http://idp.test', audience: 'http://idp.test', typ: 'at+jwt', algorithms: ['RS256'], currentDate: clock.now() });
    expect(payload).toEqual({
      iss: 'http://idp.test',
      sub: user.user.id,
      aud: 'http://idp.test',
      exp: expect.any(Number),
      iat: expect.any(Number),
      nbf: expect.any(Number),
      jti: expect.any(String),
      scope: 'user',
      api_key_id: id,
    });
    expect(payload.exp! - payload.iat!).toBe(3600);
    // Not a user-API token: it has no session.
    await request(a.url).get('/auth/v1/user').set('Authorization', `Bearer ${jwt}`).expect(401);
    // The exchanged token introspects as active on both instances.
    for (const server of [a, b]) {
      const res = await introspect(server.url, resourceServer, jwt).expect(200);
      expect(res.body).toMatchObject({ active: true, sub: user.user.id, api_key_id: id, scope: 'user', token_type: 'Bearer' });
    }

    // Revoke: inactive on this instance at once, on the other within a second.
    const revoked = await asUser().revoke(id).expect(200);
    expect(revoked.body).toMatchObject({ id, status: 'revoked', revoked_by: `user:${user.user.id}` });
    expect((await introspect(a.url, resourceServer, key).expect(200)).body).toEqual({ active: false });
    await eventually(async () => expect((await introspect(b.url, resourceServer, key).expect(200)).body).toEqual({ active: false }), 1_000);
    const refused = await exchange(b.url, key).expect(400);
    expect(refused.body).toEqual({ error: 'invalid_grant', error_description: 'the API key has been revoked' });
    // docs/tokens.md "Tokens": tokens already exchanged live out their lifetime.
    expect((await introspect(b.url, resourceServer, jwt).expect(200)).body.active).toBe(true);
    // Revoking again changes nothing.
    expect((await asUser().revoke(id).expect(200)).body.revoked_at).toBe(revoked.body.revoked_at);

    // Audited: created and revoked, never with the key.
    const events = await handles[0]!.db.selectFrom('audit_events').selectAll().where('target', '=', id).orderBy('occurred_at').execute();
    expect(events.map((e) => e.action)).toEqual(['api-key.created', 'api-key.revoked']);
    expect(events[0]!.actor).toBe(`user:${user.user.id}`);
    expect(JSON.stringify(events)).not.toContain(key.slice(22));
  });

  it('writes last_used_at at most once a minute however hot the key is', async () => {
    const { key, id } = (await asUser().post({ name: 'hot' }).expect(201)).body as { key: string; id: string };
    // Every write of the column, in order, kept by a trigger of this test's own: a write that should
    // not have happened shows in the history even when a later one overwrites its value.
    const db = handles[0]!.db;
    await sql`create table test_last_used_writes (n bigserial primary key, key_id text not null, last_used_at timestamptz)`.execute(db);
    await sql`create function test_record_last_used() returns trigger language plpgsql as $$
              begin insert into test_last_used_writes (key_id, last_used_at) values (new.id, new.last_used_at); return new; end $$`.execute(db);
    await sql`create trigger test_record_last_used after update of last_used_at on api_keys for each row execute function test_record_last_used()`.execute(db);
    const writes = async () =>
      (await sql<{ last_used_at: Date }>`select last_used_at from test_last_used_writes where key_id = ${id} order by n`.execute(db)).rows.map((r) => new Date(r.last_used_at).getTime());
    const lastUsed = async () => (await db.selectFrom('api_keys').select('last_used_at').where('id', '=', id).executeTakeFirstOrThrow()).last_used_at;
    const first = clock.now();
    for (let i = 0; i < 5; i++) await introspect(i % 2 ? b.url : a.url, resourceServer, key).expect(200);
    await eventually(async () => expect(await writes()).toEqual([first.getTime()]));
    clock.advance(30_000);
    for (let i = 0; i < 5; i++) await exchange(i % 2 ? b.url : a.url, key).expect(200);
    clock.advance(30_000);
    await exchange(a.url, key).expect(200);
    // The first use of each minute is written, no other.
    await eventually(async () => expect(await writes()).toEqual([first.getTime(), first.getTime() + 60_000]));
    expect((await lastUsed())?.getTime()).toBe(first.getTime() + 60_000);
    // Every view shows it; none of them the key.
    const shown = (await asUser().list().expect(200)).body.api_keys.find((k: { id: string }) => k.id === id);
    expect(shown.last_used_at).toBe(new Date(first.getTime() + 60_000).toISOString());
  });

  it('lets a user see and revoke only its own keys', async () => {
    const other = await signUp(a.url);
    const mine = (await asUser().post({ name: 'mine' }).expect(201)).body as { id: string; key: string };
    const res = await asUser(other.access_token).revoke(mine.id).expect(404);
    expect(res.body.error).toBe('not_found');
    expect((await asUser(other.access_token).list().expect(200)).body.api_keys).toEqual([]);
    expect((await introspect(a.url, resourceServer, mine.key).expect(200)).body.active).toBe(true);
    await request(a.url).get('/auth/v1/api-keys').expect(401);
    await request(a.url).post('/auth/v1/api-keys').send({ name: 'x' }).expect(401);
    // An API key is not an access token of the user API.
    await request(a.url).get('/auth/v1/api-keys').set('Authorization', `Bearer ${mine.key}`).expect(401);
    // Routes are exact.
    await request(a.url).get('/auth/v1/api-keys/').set('Authorization', `Bearer ${user.access_token}`).expect(404);
    await request(a.url).get('/auth/v1/API-KEYS').set('Authorization', `Bearer ${user.access_token}`).expect(404);
    await asUser().revoke('not-a-key-id').expect(404);
  });
});
