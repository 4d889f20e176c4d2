import request from 'supertest';
import { makeClient, type TestClient } from '../oauth/helpers';
import { createVerifier, type Verifier } from '../../src/verifier';
import { API, clientToken, eventually, resourceServer, startIdp, type Idp } from './support';

const UNREACHABLE = { error: 'temporarily_unavailable', error_description: 'the identity provider is unreachable; try again shortly' };

/**
 * The identity provider stopped (its HTTP server closed) and started again on the same port:
 * JWTs keep verifying from the cached key set; API keys and checkRevocation fail closed with 503;
 * everything recovers without restarting the resource server.
 */
describe('verifier kit: the identity provider down and back', () => {
  let idp: Idp;
  let service: TestClient;
  let resource: TestClient;
  let apiKey: string;
  /** JWTs only, with a key set that goes stale after 200 ms, so that it tries (and fails) to refetch. */
  let offline: Verifier;
  /** checkRevocation and API keys: needs the provider for every answer it has not cached. */
  let strict: Verifier;

  beforeAll(async () => {
    idp = await startIdp();
    service = await makeClient(idp.services, { scopes: ['read'], audiences: [API] });
    resource = await makeClient(idp.services, { name: 'resource server', scopes: ['read'], audiences: [API] });
    apiKey = (await idp.services.apiKeys.create({ owner: { kind: 'client', id: service.id }, name: 'k', scopes: ['read'] }, { actor: 'test' })).key;
    offline = createVerifier({ issuer: idp.issuer, audience: API, jwks: { cooldown: 0, maxAge: 200 } });
    strict = createVerifier({ issuer: idp.issuer, audience: API, clientId: resource.id, clientSecret: resource.secret, checkRevocation: true, cache: { activeTtl: 0, inactiveTtl: 0 } });
  });
  afterAll(async () => {
    await idp?.close();
  });

  it('JWTs verify from the cached key set, API keys and checkRevocation answer 503, and both recover', async () => {
    const before = await clientToken(idp, service);
    await expect(offline.verifyCredential(before)).resolves.toMatchObject({ tokenType: 'client' });
    await expect(strict.verifyCredential(before)).resolves.toMatchObject({ tokenType: 'client' });
    await expect(strict.authenticate({ 'x-api-key': apiKey })).resolves.toMatchObject({ tokenType: 'api_key' });
    const during = await clientToken(idp, service); // issued now, presented while the provider is down
    // A verifier that has never reached the provider has no keys at all.
    const newcomer = createVerifier({ issuer: idp.issuer, audience: API });

    await idp.stop();
    // Once its key set is past its lifetime, a verification refetches, fails, and verifies from the stale set.
    await eventually(async () => {
      await expect(offline.verifyCredential(during)).resolves.toMatchObject({ subject: service.id, tokenType: 'client' });
      expect(offline.status().keys.lastError).toEqual(expect.stringContaining('/.well-known/jwks.json'));
    });

    const strictApp = resourceServer(strict);
    for (const send of [(r: request.Test) => r.set('Authorization', `Bearer ${during}`), (r: request.Test) => r.set('X-API-Key', apiKey)]) {
      const res = await send(request(strictApp).get('/any'));
      expect(res.status).toBe(503);
      expect(res.body).toEqual(UNREACHABLE);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.headers['www-authenticate']).toBeUndefined();
    }
    await expect(newcomer.verifyCredential(during)).rejects.toMatchObject({ code: 'temporarily_unavailable', status: 503 });

    await idp.start();
    await eventually(async () => {
      await expect(strict.verifyCredential(during)).resolves.toMatchObject({ tokenType: 'client' });
      await expect(strict.authenticate({ 'x-api-key': apiKey })).resolves.toMatchObject({ tokenType: 'api_key', subject: service.id });
      await expect(newcomer.verifyCredential(during)).resolves.toMatchObject({ tokenType: 'client' });
    });
    expect((await request(strictApp).get('/any').set('X-API-Key', apiKey)).status).toBe(200);
    await eventually(async () => {
      await offline.verifyCredential(await clientToken(idp, service));
      expect(offline.status().keys.lastError).toBeUndefined();
    });
  });
});
