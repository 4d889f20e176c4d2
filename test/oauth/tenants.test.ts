import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { createTenant } from '../../src/tenants/repository';
import { updateUser } from '../../src/users/repository';
import { FakeClock, startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { freshEmail, signIn, signUp, type SignedIn } from '../users/support';
import { makeClient, type TestClient } from './helpers';

const FORM = 'application/x-www-form-urlencoded';

/**
 * docs/http-api.md "HTTP": tenants are a boundary at /oauth/introspect and /oauth/revoke. A client of tenant T sees
 * as active only tenant T's tokens; a client without a tenant sees every tenant's. A client revokes
 * only what was issued to it; anything else is `unauthorized_client` and changes nothing.
 */
describe('tenants and ownership at /oauth/introspect and /oauth/revoke', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let app: TestServer;
  // Starts at the real time so stock verifiers agree; moved forward to expire tokens.
  const clock = new FakeClock(new Date());
  let acme: TestClient;
  let acmeOther: TestClient;
  let globex: TestClient;
  let platform: TestClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    app = await startTestServer(testConfig(database), handle, clock.now);
    for (const id of ['acme', 'globex']) await createTenant(handle.db, { id, name: id, now: clock.now() });
    acme = await makeClient(app.services, { name: 'acme api', tenantId: 'acme' });
    acmeOther = await makeClient(app.services, { name: 'acme billing', tenantId: 'acme' });
    globex = await makeClient(app.services, { name: 'globex api', tenantId: 'globex' });
    platform = await makeClient(app.services, { name: 'platform (no tenant)' });
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  const introspect = (asker: TestClient, token: string) =>
    request(app.url).post('/oauth/introspect').set('Content-Type', FORM).set('Authorization', asker.authorization).send(`token=${encodeURIComponent(token)}`);
  const revoke = (asker: TestClient, token: string) =>
    request(app.url).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', asker.authorization).send(`token=${encodeURIComponent(token)}`);
  const issue = async (client: TestClient): Promise<string> =>
    (await request(app.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', client.authorization).send('grant_type=client_credentials').expect(200)).body.access_token;
  const me = (accessToken: string) => request(app.url).get('/auth/v1/user').set('Authorization', `Bearer ${accessToken}`);
  const refresh = (refreshToken: string) => request(app.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: refreshToken });
  const expectInactive = async (asker: TestClient, token: string) => {
    const res = await introspect(asker, token).expect(200);
    expect(res.body).toEqual({ active: false });
  };
  const expectRefused = async (asker: TestClient, token: string) => {
    const res = await revoke(asker, token).expect(400);
    expect(res.body).toEqual({ error: 'unauthorized_client', error_description: expect.any(String) });
    expect(res.headers['cache-control']).toBe('no-store');
  };

  /** A signed-in user of `tenantId` (null: no tenant): the tokens carry `tenant_id`. */
  const userOf = async (tenantId: string | null): Promise<SignedIn> => {
    const email = freshEmail(tenantId ?? 'none');
    const { user } = await signUp(app.url, email);
    if (tenantId) await updateUser(handle.db, user.id, { tenantId, now: clock.now() });
    return signIn(app.url, email);
  };

  it('shows an acme user’s access and refresh tokens as active to acme and tenantless clients, and only {active:false} to globex', async () => {
    const session = await userOf('acme');
    for (const asker of [acme, platform]) {
      expect((await introspect(asker, session.access_token).expect(200)).body).toMatchObject({ active: true, sub: session.user.id, email: session.user.email, role: 'user', tenant_id: 'acme' });
      expect((await introspect(asker, session.refresh_token).expect(200)).body).toMatchObject({ active: true, token_type: 'refresh_token', sub: session.user.id, tenant_id: 'acme' });
    }
    await expectInactive(globex, session.access_token);
    await expectInactive(globex, session.refresh_token);
  });

  it('shows a tenantless user’s tokens as active only to tenantless clients', async () => {
    const session = await userOf(null);
    expect((await introspect(platform, session.access_token).expect(200)).body.active).toBe(true);
    expect((await introspect(platform, session.refresh_token).expect(200)).body.active).toBe(true);
    for (const asker of [acme, globex]) {
      await expectInactive(asker, session.access_token);
      await expectInactive(asker, session.refresh_token);
    }
  });

  it('shows client access tokens across the tenant boundary as inactive', async () => {
    const acmeToken = await issue(acme);
    for (const asker of [acme, acmeOther, platform]) {
      expect((await introspect(asker, acmeToken).expect(200)).body).toMatchObject({ active: true, client_id: acme.id, tenant_id: 'acme' });
    }
    await expectInactive(globex, acmeToken);

    const platformToken = await issue(platform);
    expect((await introspect(platform, platformToken).expect(200)).body.active).toBe(true);
    await expectInactive(acme, platformToken);
    await expectInactive(globex, platformToken);
  });

  it('refuses a globex client revoking an acme user’s refresh or access token, and the session keeps working', async () => {
    const session = await userOf('acme');
    await expectRefused(globex, session.refresh_token);
    await expectRefused(globex, session.access_token);
    // Not even its own tenant's client, nor a tenantless one: user sessions are not issued to a client.
    for (const asker of [acme, platform]) {
      await expectRefused(asker, session.refresh_token);
      await expectRefused(asker, session.access_token);
    }

    expect((await me(session.access_token)).status).toBe(200);
    expect((await introspect(acme, session.refresh_token).expect(200)).body.active).toBe(true);
    const rotated = await refresh(session.refresh_token);
    expect(rotated.status).toBe(200);
    expect((await me(rotated.body.access_token)).status).toBe(200);
    const events = await handle.db.selectFrom('audit_events').select('reason').where('action', '=', 'session.revoked').where('target', '=', JSON.parse(Buffer.from(session.access_token.split('.')[1] as string, 'base64url').toString()).sid).execute();
    expect(events).toEqual([]);
  });

  it('refuses a client revoking another client’s access token, which stays active', async () => {
    const token = await issue(acme);
    for (const asker of [acmeOther, globex, platform]) await expectRefused(asker, token);
    expect((await introspect(acme, token).expect(200)).body.active).toBe(true);
    expect((await introspect(platform, token).expect(200)).body.active).toBe(true);
  });

  it('revokes a client’s own access token: inactive to every client afterwards', async () => {
    const token = await issue(globex);
    const res = await revoke(globex, token).expect(200);
    expect(res.text).toBe('');
    for (const asker of [globex, platform]) await expectInactive(asker, token);
    await revoke(globex, token).expect(200);
  });

  it('answers 200 and changes nothing for forged, spent, expired or garbage tokens (RFC 7009 §2.2)', async () => {
    const session = await userOf('acme');
    const rotated = await refresh(session.refresh_token);
    expect(rotated.status).toBe(200);
    // The spent refresh token: revoking it is no reuse, and no refusal either.
    await revoke(globex, session.refresh_token).expect(200);
    await revoke(acme, session.refresh_token).expect(200);
    expect((await me(rotated.body.access_token)).status).toBe(200);

    const [header, payload] = rotated.body.access_token.split('.') as [string, string];
    await revoke(globex, `${header}.${payload}.${'A'.repeat(342)}`).expect(200);
    await revoke(globex, 'A'.repeat(43)).expect(200);
    await revoke(globex, 'garbage').expect(200);

    const clientToken = await issue(acme);
    clock.advance(3_600_000 + 1_000);
    try {
      await revoke(globex, rotated.body.access_token).expect(200);
      await revoke(globex, clientToken).expect(200);
    } finally {
      clock.advance(-(3_600_000 + 1_000));
    }
    expect((await me(rotated.body.access_token)).status).toBe(200);
    expect((await refresh(rotated.body.refresh_token)).status).toBe(200);
  });
});
