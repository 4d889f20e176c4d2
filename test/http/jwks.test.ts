import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { calculateJwkThumbprint, createRemoteJWKSet, jwtVerify } from 'jose';
import type { PublicJwk } from '../../src/keys/jwks';
import { createLogger } from '../../src/observability/logger';
import { startMetricsListener } from '../../src/observability/metrics';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestServer, testConfig, type TestServer } from '../helpers/context';

const PUBLIC_MEMBERS = ['alg', 'e', 'kid', 'kty', 'n', 'use', 'x5c', 'x5t#S256'];

describe('JWKS, discovery and health over HTTP', () => {
  let database: TestDatabase;
  let app: TestServer;

  beforeAll(async () => {
    database = await createTestDatabase();
    app = await startTestServer(testConfig(database, { IDP_JWKS_MAX_AGE: '120', IDP_KEY_PREPUBLISH: '4m' }), await database.open());
  });
  afterAll(async () => {
    await app.close();
    await database.drop();
  });

  it('publishes current and next with public members only, current first', async () => {
    const res = await request(app.url).get('/.well-known/jwks.json').expect(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('public, max-age=120');
    const keys = res.body.keys as PublicJwk[];
    expect(keys).toHaveLength(2);
    expect(keys[0]!.kid).toBe(app.services.keys.current.kid);
    for (const key of keys) {
      expect(Object.keys(key).sort()).toEqual(PUBLIC_MEMBERS);
      expect(key).toMatchObject({ kty: 'RSA', use: 'sig', alg: 'RS256', e: 'AQAB' });
      expect(Buffer.from(key.n, 'base64url').length).toBe(256);
    }
  });

  it('uses the RFC 7638 thumbprint as kid and a certificate that matches n and e', async () => {
    const { body } = await request(app.url).get('/.well-known/jwks.json').expect(200);
    for (const key of body.keys as PublicJwk[]) {
      expect(await calculateJwkThumbprint({ kty: 'RSA', n: key.n, e: key.e }, 'sha256')).toBe(key.kid);
      const der = Buffer.from(key.x5c[0], 'base64');
      const certificate = new crypto.X509Certificate(der);
      const certJwk = certificate.publicKey.export({ format: 'jwk' });
      expect(certJwk.n).toBe(key.n);
      expect(certJwk.e).toBe(key.e);
      expect(certificate.verify(certificate.publicKey)).toBe(true); // self-signed by the key itself
      expect(crypto.createHash('sha256').update(der).digest('base64url')).toBe(key['x5t#S256']);
    }
  });

  it('answers 304 to a matching If-None-Match and a new ETag after a rotation', async () => {
    const first = await request(app.url).get('/.well-known/jwks.json').expect(200);
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    const notModified = await request(app.url).get('/.well-known/jwks.json').set('If-None-Match', `W/"other", ${etag}`).expect(304);
    expect(notModified.headers.etag).toBe(etag);
    expect(notModified.headers['cache-control']).toBe('public, max-age=120');
    expect(notModified.text).toBe('');
    await request(app.url).get('/.well-known/jwks.json').set('If-None-Match', '"stale"').expect(200);

    await app.services.lifecycle.rotate('test', { force: true });
    await app.services.keys.refresh();
    const after = await request(app.url).get('/.well-known/jwks.json').set('If-None-Match', etag).expect(200);
    expect(after.headers.etag).not.toBe(etag);
    expect(after.body.keys.map((k: PublicJwk) => k.kid)).toEqual([
      app.services.keys.current.kid,
      expect.any(String),
      first.body.keys[0].kid, // the old current is now `previous`, still published
    ]);
  });

  it('signs with the current key; stock jose verifies against the served JWKS', async () => {
    const token = await app.services.sign({ iss: 'http://idp.test', sub: 'svc', aud: 'api', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 }, 'at+jwt');
    const jwks = createRemoteJWKSet(new URL(`${app.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: 'http://idp.test',
      audience: 'api',
      typ: 'at+jwt',
      algorithms: ['RS256'],
    });
    expect(protectedHeader).toEqual({ alg: 'RS256', kid: app.services.keys.current.kid, typ: 'at+jwt' });
    expect(payload.sub).toBe('svc');
  });

  it('serves RFC 8414 metadata at both well-known paths', async () => {
    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const { body } = await request(app.url).get(path).expect(200);
      expect(body.issuer).toBe('http://idp.test');
      expect(body.jwks_uri).toBe('http://idp.test/.well-known/jwks.json');
    }
  });

  it('answers liveness, readiness and metrics', async () => {
    await request(app.url).get('/healthz').expect(200, { status: 'ok' });
    await request(app.url).get('/readyz').expect(200, { status: 'ready', checks: { database: true, signing_key: true } });
    // Metrics are on the management listener only (IDP_METRICS_PORT), never on the public port.
    await request(app.url).get('/metrics').expect(404);
    const listener = await startMetricsListener({ port: 0, host: '127.0.0.1' }, () => app.services.metrics.scrape(), createLogger('silent'));
    const { port } = listener.address() as AddressInfo;
    const metrics = await request(`http://127.0.0.1:${port}`).get('/metrics').expect(200);
    await request(`http://127.0.0.1:${port}`).get('/other').expect(404);
    listener.close();
    for (const name of ['idp_signing_key_age_seconds', 'idp_seconds_to_next_rotation', 'idp_key_transitions_total', 'idp_key_rotation_already_done_total', 'idp_jwks_requests_total']) {
      expect(metrics.text).toContain(name);
    }
    expect(metrics.text).toMatch(/idp_jwks_requests_total\{status="304"\} [1-9]/);
  });

  it('answers unknown paths with a JSON 404 and never a stack trace', async () => {
    const res = await request(app.url).get('/nope').expect(404);
    expect(res.body).toEqual({ error: 'not_found', error_description: 'no such endpoint' });
    await request(app.url).post('/.well-known/jwks.json').expect(404);
  });
});
