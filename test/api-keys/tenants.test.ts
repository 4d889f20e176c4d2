import type { DatabaseHandle } from '../../src/db';
import { createTenant } from '../../src/tenants/repository';
import { updateUser } from '../../src/users/repository';
import { FakeClock, startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { makeClient, type TestClient } from '../oauth/helpers';
import { signUp } from '../users/support';
import { exchange, introspect, makeKey, revokeAtOAuth, type CreatedKey } from './support';

/**
 * docs/http-api.md "HTTP" at /oauth/introspect and /oauth/revoke for API keys and their exchanged tokens: a client
 * of tenant T sees only tenant T's keys; a client without a tenant sees all; a client revokes only
 * the keys it owns (`unauthorized_client` otherwise, and nothing changes).
 */
describe('API keys: tenant boundary and ownership', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let app: TestServer;
  const clock = new FakeClock(new Date());
  let acme: TestClient;
  let acmeOther: TestClient;
  let globex: TestClient;
  let platform: TestClient;
  let acmeKey: CreatedKey;
  let acmeUserKey: CreatedKey;
  let platformKey: CreatedKey;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    app = await startTestServer(testConfig(database), handle, clock.now);
    for (const id of ['acme', 'globex']) await createTenant(handle.db, { id, name: id, now: clock.now() });
    acme = await makeClient(app.services, { name: 'acme api', tenantId: 'acme' });
    acmeOther = await makeClient(app.services, { name: 'acme billing', tenantId: 'acme' });
    globex = await makeClient(app.services, { name: 'globex api', tenantId: 'globex' });
    platform = await makeClient(app.services, { name: 'platform (no tenant)' });
    const acmeUser = await signUp(app.url);
    await updateUser(handle.db, acmeUser.user.id, { tenantId: 'acme', now: clock.now() });
    acmeKey = await makeKey(app.services, { kind: 'client', id: acme.id });
    acmeUserKey = await makeKey(app.services, { kind: 'user', id: acmeUser.user.id });
    platformKey = await makeKey(app.services, { kind: 'client', id: platform.id });
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  const active = async (asker: TestClient, token: string) => (await introspect(app.url, asker, token).expect(200)).body;

  it('shows a tenant’s keys to its own clients and to tenantless clients only', async () => {
    for (const key of [acmeKey, acmeUserKey]) {
      expect((await active(acme, key.key)).tenant_id).toBe('acme');
      expect((await active(acmeOther, key.key)).active).toBe(true);
      expect((await active(platform, key.key)).active).toBe(true);
      expect(await active(globex, key.key)).toEqual({ active: false });
    }
    expect(await active(acme, acmeKey.key)).toEqual({
      active: true,
      token_type: 'api_key',
      sub: acme.id,
      client_id: acme.id,
      tenant_id: 'acme',
      scope: 'read write',
      exp: expect.any(Number),
      iat: expect.any(Number),
    });
    // A tenantless key is no tenant's: a tenant-bound client does not see it.
    expect((await active(platform, platformKey.key)).active).toBe(true);
    expect(await active(acme, platformKey.key)).toEqual({ active: false });
  });

  it('applies the same boundary to exchanged access tokens', async () => {
    const jwt = (await exchange(app.url, acmeUserKey.key).expect(200)).body.access_token as string;
    expect(await active(acme, jwt)).toMatchObject({ active: true, tenant_id: 'acme', api_key_id: acmeUserKey.id });
    expect((await active(platform, jwt)).active).toBe(true);
    expect(await active(globex, jwt)).toEqual({ active: false });
  });

  it('lets only the owning client revoke a key; anything else is unauthorized_client and changes nothing', async () => {
    const key = await makeKey(app.services, { kind: 'client', id: acme.id });
    for (const intruder of [acmeOther, globex, platform]) {
      const res = await revokeAtOAuth(app.url, intruder, key.key).expect(400);
      expect(res.body).toEqual({ error: 'unauthorized_client', error_description: expect.any(String) });
      expect((await active(acme, key.key)).active).toBe(true);
    }
    // A user's key is no client's to revoke.
    expect((await revokeAtOAuth(app.url, platform, acmeUserKey.key).expect(400)).body.error).toBe('unauthorized_client');
    expect((await active(platform, acmeUserKey.key)).active).toBe(true);
    // The owner revokes it: 200, empty, inactive; again: still 200.
    const res = await revokeAtOAuth(app.url, acme, key.key).expect(200);
    expect(res.text).toBe('');
    expect(await active(acme, key.key)).toEqual({ active: false });
    await revokeAtOAuth(app.url, acme, key.key).expect(200);
    const event = await handle.db.selectFrom('audit_events').selectAll().where('target', '=', key.id).where('action', '=', 'api-key.revoked').executeTakeFirstOrThrow();
    expect(event).toMatchObject({ actor: `client:${acme.id}`, reason: 'revoked at /oauth/revoke' });
    // An invalid key needs no revocation (RFC 7009 §2.2): 200 whoever asks.
    await revokeAtOAuth(app.url, globex, `${key.key.slice(0, 22)}${'0'.repeat(43)}`).expect(200);
    await revokeAtOAuth(app.url, globex, 'idpk_nonsense').expect(200);
  });

  it('lets only the owning client revoke a token exchanged from its key', async () => {
    const key = await makeKey(app.services, { kind: 'client', id: acme.id });
    const jwt = (await exchange(app.url, key.key).expect(200)).body.access_token as string;
    expect((await revokeAtOAuth(app.url, acmeOther, jwt).expect(400)).body.error).toBe('unauthorized_client');
    expect((await active(acme, jwt)).active).toBe(true);
    await revokeAtOAuth(app.url, acme, jwt).expect(200);
    expect(await active(acme, jwt)).toEqual({ active: false });
    // Revoking the token leaves the key alone.
    expect((await active(acme, key.key)).active).toBe(true);
  });
});
