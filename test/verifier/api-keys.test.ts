import request from 'supertest';
import { makeClient, type TestClient } from '../oauth/helpers';
import { signUp } from '../users/support';
import { createVerifier, type AuthInfo, type Verifier } from '../../src/verifier';
import { API, USERS, clientToken, countingFetch, eventually, resourceServer, startIdp, type Idp } from './support';

const INTROSPECT = '/oauth/introspect';

/**
 * API keys (checked at the introspection endpoint with the resource server's own client
 * credentials), exchanged tokens, and `checkRevocation` for JWTs, against a real provider.
 */
describe('verifier kit: API keys, exchanged tokens, revocation', () => {
  let idp: Idp;
  let service: TestClient;
  /** The resource server's own client: only its credentials, to authenticate at introspection. */
  let resource: TestClient;
  let verifier: Verifier;
  let app: ReturnType<typeof resourceServer>;

  beforeAll(async () => {
    idp = await startIdp();
    service = await makeClient(idp.services, { name: 'reporting', scopes: ['read', 'write'], audiences: [API] });
    resource = await makeClient(idp.services, { name: 'the resource server', scopes: ['read'], audiences: [API] });
    verifier = createVerifier({
      issuer: idp.issuer,
      audience: [API, USERS],
      clientId: resource.id,
      clientSecret: resource.secret,
      roles: { automation: { tokenType: ['api_key', 'exchanged'] }, writer: { scope: 'write' } },
    });
    app = resourceServer(verifier, { '/write': { scopes: ['write'] }, '/keys-only': { tokenTypes: ['api_key'] } });
  });
  afterAll(async () => {
    await idp?.close();
  });

  async function clientKey(scopes: string[]): Promise<{ id: string; key: string }> {
    const { key, row } = await idp.services.apiKeys.create({ owner: { kind: 'client', id: service.id }, name: 'nightly export', scopes }, { actor: 'test' });
    return { id: row.id, key };
  }

  it('a client-owned key, as X-API-Key and as a Bearer token: subject, client id, scopes, roles', async () => {
    const { key } = await clientKey(['read', 'write']);
    for (const send of [(r: request.Test) => r.set('X-API-Key', key), (r: request.Test) => r.set('Authorization', `Bearer ${key}`)]) {
      const res = await send(request(app).get('/write'));
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ subject: service.id, tokenType: 'api_key', clientId: service.id, scopes: ['read', 'write'], tenantId: null, roles: ['automation', 'writer'] });
      expect((res.body as AuthInfo).claims).toMatchObject({ active: true, token_type: 'api_key', sub: service.id, iat: expect.any(Number) });
    }
    expect((await request(app).get('/keys-only').set('X-API-Key', key)).status).toBe(200);
  });

  it('a user-owned key made at /auth/v1/api-keys; a missing scope is 403', async () => {
    const session = await signUp(idp.issuer);
    const created = await request(idp.issuer).post('/auth/v1/api-keys').set('Authorization', `Bearer ${session.access_token}`).send({ name: 'laptop' });
    expect(created.status).toBe(201);
    const key = (created.body as { key: string }).key;
    const res = await request(app).get('/any').set('X-API-Key', key);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ subject: session.user.id, tokenType: 'api_key', scopes: ['user'], roles: ['automation'] });
    expect((res.body as AuthInfo).clientId).toBeUndefined();
    const write = await request(app).get('/write').set('X-API-Key', key);
    expect(write.status).toBe(403);
    expect(write.body).toEqual({ error: 'insufficient_scope', error_description: 'missing scope "write"' });
  });

  it('an unknown key is refused, and the negative answer is reused (one introspection for two requests)', async () => {
    const counter = countingFetch();
    const counted = createVerifier({ issuer: idp.issuer, audience: API, clientId: resource.id, clientSecret: resource.secret, fetch: counter.fetch });
    const unknown = `idpk_${'Z'.repeat(16)}_${'q'.repeat(43)}`;
    for (let i = 0; i < 2; i++) {
      await expect(counted.authenticate({ 'x-api-key': unknown })).rejects.toMatchObject({
        code: 'invalid_token',
        reason: 'revoked',
        status: 401,
        error_description: 'API key not active (unknown, revoked or expired)',
      });
    }
    expect(counter.count(INTROSPECT)).toBe(1);
    // The cache holds the key's SHA-256, never the key.
    const cached = [...(counted as unknown as { introspector: { cache: { entries: Map<string, unknown> } } }).introspector.cache.entries.keys()];
    expect(cached).toHaveLength(1);
    expect(cached[0]).not.toContain(unknown);
    expect(cached[0]).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('a revoked key is refused within the cache bound (activeTtl), an active answer reused until then', async () => {
    const counter = countingFetch();
    const bounded = createVerifier({ issuer: idp.issuer, audience: API, clientId: resource.id, clientSecret: resource.secret, fetch: counter.fetch, cache: { activeTtl: 1_000 } });
    const { id, key } = await clientKey(['read']);
    await expect(bounded.authenticate({ 'x-api-key': key })).resolves.toMatchObject({ tokenType: 'api_key' });
    await expect(bounded.authenticate({ 'x-api-key': key })).resolves.toMatchObject({ tokenType: 'api_key' });
    expect(counter.count(INTROSPECT)).toBe(1);
    await idp.services.apiKeys.revoke(id, { actor: 'test' });
    await eventually(async () => {
      await expect(bounded.authenticate({ 'x-api-key': key })).rejects.toMatchObject({ code: 'invalid_token', reason: 'revoked' });
    });
  });

  it('an exchanged token (RFC 8693) verifies offline as kind "exchanged"', async () => {
    const { id, key } = await clientKey(['read']);
    const form = new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: key,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: API,
    });
    const exchanged = await request(idp.issuer).post('/oauth/token').type('form').send(form.toString());
    expect(exchanged.status).toBe(200);
    const token = (exchanged.body as { access_token: string }).access_token;
    const offline = createVerifier({ issuer: idp.issuer, audience: API }); // no client credentials: JWTs only
    await expect(offline.verifyCredential(token)).resolves.toMatchObject({
      subject: service.id,
      tokenType: 'exchanged',
      clientId: service.id,
      scopes: ['read'],
      claims: expect.objectContaining({ api_key_id: id }),
    });
    expect((await request(app).get('/any').set('Authorization', `Bearer ${token}`)).body).toMatchObject({ tokenType: 'exchanged', roles: ['automation'] });
  });

  it('checkRevocation: a signed-out user token and a revoked client token are refused; an active one passes', async () => {
    const strict = createVerifier({ issuer: idp.issuer, audience: [API, USERS], clientId: resource.id, clientSecret: resource.secret, checkRevocation: true, cache: { activeTtl: 0 } });
    const session = await signUp(idp.issuer);
    await expect(strict.verifyCredential(session.access_token)).resolves.toMatchObject({ tokenType: 'user' });
    expect((await request(idp.issuer).post('/auth/v1/logout').set('Authorization', `Bearer ${session.access_token}`)).status).toBe(204);
    await expect(strict.verifyCredential(session.access_token)).rejects.toMatchObject({
      code: 'invalid_token',
      reason: 'revoked',
      error_description: 'token revoked (the identity provider reports it inactive)',
    });
    // Offline verification alone cannot know: the token is still signed and unexpired.
    await expect(createVerifier({ issuer: idp.issuer, audience: USERS }).verifyCredential(session.access_token)).resolves.toMatchObject({ tokenType: 'user' });

    const token = await clientToken(idp, service);
    await expect(strict.verifyCredential(token)).resolves.toMatchObject({ tokenType: 'client' });
    const revoked = await request(idp.issuer).post('/oauth/revoke').auth(service.id, service.secret).type('form').send({ token });
    expect(revoked.status).toBe(200);
    await expect(strict.verifyCredential(token)).rejects.toMatchObject({ reason: 'revoked' });
  });

  it('wrong resource-server credentials fail closed with 503, saying the provider cannot be used', async () => {
    const misconfigured = createVerifier({ issuer: idp.issuer, audience: API, clientId: resource.id, clientSecret: 'not-the-secret' });
    const { key } = await clientKey(['read']);
    const res = await request(resourceServer(misconfigured)).get('/any').set('X-API-Key', key);
    expect(res.status).toBe(503);
    expect(res.body).toEqual({ error: 'temporarily_unavailable', error_description: 'the identity provider cannot be used by this resource server (see its log)' });
  });
});
