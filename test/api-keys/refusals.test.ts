import request from 'supertest';
import { ApiKeyError } from '../../src/api-keys/service';
import { deleteClient, disableClient } from '../../src/clients/service';
import type { DatabaseHandle } from '../../src/db';
import { createTenant, setTenantDisabled } from '../../src/tenants/repository';
import { updateUser } from '../../src/users/repository';
import { FakeClock, startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually, makeClient, type TestClient } from '../oauth/helpers';
import { signUp, type SignedIn } from '../users/support';
import { ACCESS_TOKEN_TYPE, exchange, FORM, introspect, makeKey, malformedKeys, TOKEN_EXCHANGE } from './support';

/**
 * Every refusal of docs/api-keys.md "API keys" over real HTTP: malformed keys of every shape (no query), unknown ids,
 * wrong secrets, expiry, revocation, scopes and targets out of bounds, a disabled or deleted owner
 * or tenant, the per-address failure limit and the rule that a correct key is never refused by it.
 */
describe('API key refusals', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let app: TestServer;
  const clock = new FakeClock(new Date());
  let rs: TestClient;
  let owner: TestClient;
  let user: SignedIn;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    app = await startTestServer(testConfig(database, { IDP_API_KEY_MAX_TTL: '90d' }), handle, clock.now);
    rs = await makeClient(app.services, { name: 'resource server' });
    owner = await makeClient(app.services, { name: 'key owner', scopes: ['read', 'write'], audiences: ['https://api.test', 'https://other.test'] });
    user = await signUp(app.url);
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  const clientKey = (scopes?: string[], expiresAt?: Date) => makeKey(app.services, { kind: 'client', id: owner.id }, { scopes, expiresAt });
  const expectInactive = async (token: string) => expect((await introspect(app.url, rs, token).expect(200)).body).toEqual({ active: false });
  const expectRefused = async (key: string, error = 'invalid_grant', extra: Record<string, string> = {}) => {
    const res = await exchange(app.url, key, extra).expect(400);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toEqual({ error, error_description: expect.any(String) });
    return res.body.error_description as string;
  };
  const failureCount = async () =>
    Number((await handle.db.selectFrom('rate_limit_counters').select('failures').where('key', 'like', 'apikey:ip:%').executeTakeFirst())?.failures ?? 0);
  /** A key's audit events: those the service wrote, and those the database's triggers wrote (actor `system`), each in order. */
  const auditTrail = async (id: string) => {
    const events = await handle.db.selectFrom('audit_events').select(['action', 'actor']).where('target', '=', id).orderBy('occurred_at').execute();
    return { service: events.filter((e) => e.actor !== 'system').map((e) => e.action), database: events.filter((e) => e.actor === 'system').map((e) => e.action) };
  };
  const resetCounters = () => handle.db.deleteFrom('rate_limit_counters').execute();
  /** Changes reach the cache by notification: poll for them (a generous bound; this asserts no duration). */
  const waitUntil = (check: () => Promise<boolean>) => eventually(async () => expect(await check()).toBe(true), 5_000);

  it('refuses malformed keys of every shape without a query and without counting them', async () => {
    const { key } = await clientKey();
    const lookups = jest.spyOn(app.services.apiKeys.cache, 'get');
    await resetCounters();
    for (const [shape, text] of malformedKeys(key)) {
      const body = (await introspect(app.url, rs, text).expect(200)).body;
      expect([shape, body]).toEqual([shape, { active: false }]);
      const res = await exchange(app.url, text).expect(400);
      expect([shape, res.body.error]).toEqual([shape, 'invalid_grant']);
    }
    expect(lookups).not.toHaveBeenCalled();
    lookups.mockRestore();
    expect(await failureCount()).toBe(0);
    // Empty: a missing parameter.
    expect((await exchange(app.url, '').expect(400)).body.error).toBe('invalid_request');
    expect((await introspect(app.url, rs, '').expect(400)).body.error).toBe('invalid_request');
  });

  it('refuses an unknown id and a wrong secret alike, and counts both', async () => {
    const { key } = await clientKey();
    await resetCounters();
    const unknownId = `idpk_${'A'.repeat(16)}_${key.slice(22)}`;
    const wrongSecret = `${key.slice(0, 22)}${key.slice(22).replace(/.$/, (c) => (c === 'a' ? 'b' : 'a'))}`;
    for (const text of [unknownId, wrongSecret]) {
      await expectInactive(text);
      expect(await expectRefused(text)).toBe('subject_token is not a valid API key');
    }
    // Introspection is by an authenticated client: not a failed presentation. The two exchanges are.
    expect(await failureCount()).toBe(2);
    await expect(exchange(app.url, key).expect(200)).resolves.toBeDefined();
  });

  it('refuses an expired key, and never exchanges a token that outlives its key', async () => {
    const { key } = await clientKey(undefined, new Date(clock.now().getTime() + 10 * 60_000));
    const res = await exchange(app.url, key).expect(200);
    expect(res.body.expires_in).toBe(600);
    clock.advance(10 * 60_000);
    await expectInactive(key);
    expect(await expectRefused(key)).toMatch(/^the API key expired at /);
  });

  it('refuses a revoked key', async () => {
    const { key, id } = await clientKey();
    await app.services.apiKeys.revoke(id, { actor: 'test' });
    await expectInactive(key);
    expect(await expectRefused(key)).toBe('the API key has been revoked');
  });

  it('creates keys only with scopes of the owner and an expiry within IDP_API_KEY_MAX_TTL', async () => {
    const create = (input: { scopes?: string[]; expiresAt?: Date }) => makeKey(app.services, { kind: 'client', id: owner.id }, input);
    await expect(create({ scopes: ['read', 'admin'] })).rejects.toMatchObject({ code: 'ERR_API_KEY_INVALID', message: expect.stringContaining('admin') });
    await expect(create({ expiresAt: new Date(clock.now().getTime() + 91 * 86_400_000) })).rejects.toMatchObject({ code: 'ERR_API_KEY_INVALID', message: expect.stringContaining('IDP_API_KEY_MAX_TTL') });
    await expect(create({ expiresAt: new Date(clock.now().getTime() - 1000) })).rejects.toBeInstanceOf(ApiKeyError);
    // Without an expiry: the maximum.
    expect((await create({})).expires_at).toBe(new Date(clock.now().getTime() + 90 * 86_400_000).toISOString());
    // A user's keys: the user scope only, over HTTP.
    const post = (body: object) => request(app.url).post('/auth/v1/api-keys').set('Authorization', `Bearer ${user.access_token}`).send(body);
    expect((await post({ name: 'x', scopes: ['read'] }).expect(400)).body.error).toBe('invalid_request');
    expect((await post({ name: 'x', expires_in: '91d' }).expect(400)).body.message).toContain('IDP_API_KEY_MAX_TTL');
    expect((await post({ name: 'x', expires_in: '1d', expires_at: new Date().toISOString() }).expect(400)).body.error).toBe('invalid_request');
    expect((await post({ name: '' }).expect(400)).body.error).toBe('invalid_request');
    expect((await post({ name: 'x', extra: true }).expect(400)).body.error).toBe('invalid_request');
    expect((await post({ name: 'x', scopes: 'user' }).expect(201)).body.scopes).toEqual(['user']);
    await request(app.url).post('/auth/v1/api-keys').set('Authorization', `Bearer ${user.access_token}`).set('Content-Type', 'text/plain').send('{"name":"x"}').expect(415);
    // Query text Postgres cannot hold, or that is not UTF-8: 400 before anything reads the database.
    for (const query of ['cursor=%00', 'cursor=%FF', 'limit=1&cursor=%ED%A0%80']) {
      const res = await request(app.url).get(`/auth/v1/api-keys?${query}`).set('Authorization', `Bearer ${user.access_token}`);
      expect([res.status, res.body.error]).toEqual([400, 'invalid_request']);
    }
    expect((await post({ name: 'bad\u0000name' }).expect(400)).body.error).toBe('invalid_request');
  });

  it('exchanges a subset of the scopes for an allowed target, and refuses anything else per RFC 8693', async () => {
    const { key, id } = await clientKey(['read']);
    const ok = await exchange(app.url, key, { scope: 'read', resource: 'https://other.test' }).expect(200);
    const claims = JSON.parse(Buffer.from((ok.body.access_token as string).split('.')[1]!, 'base64url').toString());
    expect(claims).toMatchObject({ sub: owner.id, client_id: owner.id, aud: 'https://other.test', scope: 'read', api_key_id: id });
    expect(claims).not.toHaveProperty('tenant_id');
    await expectRefused(key, 'invalid_scope', { scope: 'write' });
    await expectRefused(key, 'invalid_target', { resource: 'https://evil.test' });
    await expectRefused(key, 'invalid_target', { audience: 'https://evil.test' });
    await expectRefused(key, 'invalid_target', { resource: 'https://api.test', audience: 'https://other.test' });
    await expectRefused(key, 'invalid_request', { subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' });
    await expectRefused(key, 'invalid_request', { requested_token_type: 'urn:ietf:params:oauth:token-type:refresh_token' });
    await expectRefused(key, 'invalid_request', { actor_token: 'x', actor_token_type: ACCESS_TOKEN_TYPE });
    const missingType = await request(app.url).post('/oauth/token').set('Content-Type', FORM).send(new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: key }).toString()).expect(400);
    expect(missingType.body.error).toBe('invalid_request');
    // The key is the credential: client authentication is refused, not mixed in.
    const withClient = await request(app.url)
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set('Authorization', owner.authorization)
      .send(new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: key, subject_token_type: ACCESS_TOKEN_TYPE }).toString())
      .expect(401);
    expect(withClient.body.error).toBe('invalid_client');
    // The owner's scopes shrink: the key grants no more than its owner has now.
    await app.services.handle.db.updateTable('oauth_clients').set({ scopes: JSON.stringify(['write']) }).where('id', '=', owner.id).execute();
    await waitUntil(async () => (await exchange(app.url, key)).body.error === 'invalid_scope');
    await app.services.handle.db.updateTable('oauth_clients').set({ scopes: JSON.stringify(['read', 'write']) }).where('id', '=', owner.id).execute();
  });

  describe('a disabled or deleted owner, or a disabled tenant, stops its keys', () => {
    const active = async (key: string) => (await introspect(app.url, rs, key).expect(200)).body.active === true;

    it('user disabled, enabled again, then deleted', async () => {
      const someone = await signUp(app.url);
      const { key, id } = await makeKey(app.services, { kind: 'user', id: someone.user.id });
      expect(await active(key)).toBe(true);
      await updateUser(handle.db, someone.user.id, { disabledAt: clock.now(), now: clock.now() });
      await waitUntil(async () => !(await active(key)));
      expect(await expectRefused(key)).toBe('the owner of this API key (or its tenant) is disabled');
      await updateUser(handle.db, someone.user.id, { disabledAt: null, now: clock.now() });
      await waitUntil(() => active(key));
      await handle.db.deleteFrom('users').where('id', '=', someone.user.id).execute();
      await waitUntil(async () => !(await active(key)));
      expect(await handle.db.selectFrom('api_keys').select('id').where('id', '=', id).executeTakeFirst()).toBeUndefined();
      // The cascades are written by the database (its clock), the creation by the service (the test's fake clock).
      expect(await auditTrail(id)).toEqual({
        service: ['api-key.created'],
        database: ['api-key.owner-disabled', 'api-key.owner-enabled', 'api-key.owner-deleted'],
      });
    });

    it('client disabled, then deleted', async () => {
      const doomed = await makeClient(app.services, { name: 'doomed' });
      const { key, id } = await makeKey(app.services, { kind: 'client', id: doomed.id });
      expect(await active(key)).toBe(true);
      await disableClient(handle.db, doomed.id, { actor: 'test', now: clock.now() });
      await waitUntil(async () => !(await active(key)));
      await expectRefused(key);
      await deleteClient(handle.db, doomed.id, { actor: 'test', now: clock.now() });
      await waitUntil(async () => (await handle.db.selectFrom('api_keys').select('id').where('id', '=', id).executeTakeFirst()) === undefined);
      await expectInactive(key);
      expect(await auditTrail(id)).toEqual({ service: ['api-key.created'], database: ['api-key.owner-disabled', 'api-key.owner-deleted'] });
      const deleted = await handle.db.selectFrom('audit_events').selectAll().where('target', '=', id).where('action', '=', 'api-key.owner-deleted').executeTakeFirstOrThrow();
      expect(deleted).toMatchObject({ actor: 'system', reason: `client ${doomed.id} deleted`, details: { client_id: doomed.id, user_id: null } });
    });

    it('tenant disabled: its users’ and clients’ keys stop, other tenants’ do not', async () => {
      await createTenant(handle.db, { id: 'initech', name: 'Initech', now: clock.now() });
      await createTenant(handle.db, { id: 'hooli', name: 'Hooli', now: clock.now() });
      const member = await makeClient(app.services, { name: 'initech svc', tenantId: 'initech' });
      const bystander = await makeClient(app.services, { name: 'hooli svc', tenantId: 'hooli' });
      const someone = await signUp(app.url);
      await updateUser(handle.db, someone.user.id, { tenantId: 'initech', now: clock.now() });
      const keys = [
        await makeKey(app.services, { kind: 'client', id: member.id }),
        await makeKey(app.services, { kind: 'user', id: someone.user.id }),
      ];
      const other = await makeKey(app.services, { kind: 'client', id: bystander.id });
      expect((await introspect(app.url, rs, keys[1]!.key).expect(200)).body.tenant_id).toBe('initech');
      await setTenantDisabled(handle.db, 'initech', clock.now());
      for (const { key } of keys) await waitUntil(async () => !(await active(key)));
      expect(await active(other.key)).toBe(true);
      await expectRefused(keys[0]!.key);
      // Creating a key for a member of a disabled tenant is refused too.
      await expect(makeKey(app.services, { kind: 'client', id: member.id })).rejects.toMatchObject({ code: 'ERR_OWNER_DISABLED' });
      await setTenantDisabled(handle.db, 'initech', null);
      for (const { key } of keys) await waitUntil(() => active(key));
    });
  });

  it('counts failed presentations per address: 429 past the limit, and a correct key is still served', async () => {
    const { key } = await clientKey();
    await resetCounters();
    const wrong = `${key.slice(0, 22)}${'0'.repeat(43)}`;
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await exchange(app.url, wrong)).status);
    expect(statuses.slice(0, 20).every((s) => s === 400)).toBe(true);
    expect(statuses[20]).toBe(429);
    const blocked = await exchange(app.url, wrong).expect(429);
    expect(blocked.body.error).toBe('temporarily_unavailable');
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    // The correct key from the same blocked address: served.
    expect((await exchange(app.url, key).expect(200)).body.access_token).toEqual(expect.any(String));
  });
});
