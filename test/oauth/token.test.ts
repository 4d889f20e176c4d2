import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import request from 'supertest';
import { disableClient } from '../../src/clients/service';
import { createTenant, setTenantDisabled } from '../../src/tenants/repository';
import { startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { matchesOpenApi } from '../helpers/openapi';
import { basic, makeClient, type TestClient } from './helpers';

const FORM = 'application/x-www-form-urlencoded';

/** jsonwebtoken + jwks-rsa in a plain Node process (jwks-rsa needs require(esm), which Jest lacks). */
export function verifyWithJwksRsa(jwksUri: string, token: string, audience = 'https://api.test'): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [path.join(__dirname, '../fixtures/verify-jwks-rsa.js'), jwksUri, 'http://idp.test', audience], (error, stdout, stderr) => {
      if (error) reject(new Error(stderr || error.message));
      else resolve(stdout);
    });
    child.stdin?.end(token);
  });
}

describe('POST /oauth/token (client_credentials)', () => {
  let database: TestDatabase;
  let app: TestServer;
  let svc: TestClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    app = await startTestServer(testConfig(database), await database.open());
    svc = await makeClient(app.services, { scopes: ['read', 'write', 'admin'], audiences: ['https://api.test', 'https://other.test'] });
  });
  afterAll(async () => {
    await app.close();
    await database.drop();
  });

  const token = (body: string, authorization?: string) => {
    const req = request(app.url).post('/oauth/token').set('Content-Type', FORM);
    if (authorization) req.set('Authorization', authorization);
    // Every answer must match the OpenAPI document (test/helpers/openapi.ts).
    return req.send(body).expect(matchesOpenApi);
  };

  /** The exact RFC 6749 §5.2 shape: `error` and a string `error_description`, nothing else, never cached. */
  const expectError = (res: request.Response, status: number, error: string) => {
    expect(res.status).toBe(status);
    expect(Object.keys(res.body).sort()).toEqual(['error', 'error_description']);
    expect(res.body.error).toBe(error);
    expect(typeof res.body.error_description).toBe('string');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
    if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
  };

  it('issues an RFC 9068 access token with client_secret_basic', async () => {
    const res = await token('grant_type=client_credentials', svc.authorization).expect(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'scope', 'token_type']);
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'read write admin' });
    expect(decodeProtectedHeader(res.body.access_token)).toEqual({ alg: 'RS256', kid: app.services.keys.current.kid, typ: 'at+jwt' });

    // A resource server with a stock library, against the running server's JWKS.
    const jwks = createRemoteJWKSet(new URL(`${app.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(res.body.access_token, jwks, { issuer: 'http://idp.test', audience: 'https://api.test', typ: 'at+jwt', algorithms: ['RS256'] });
    expect(Object.keys(payload).sort()).toEqual(['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'nbf', 'scope', 'sub']);
    expect(payload).toMatchObject({ iss: 'http://idp.test', sub: svc.id, client_id: svc.id, aud: 'https://api.test', scope: 'read write admin' });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload.nbf).toBe(payload.iat);
  });

  it('issues tokens that jsonwebtoken + jwks-rsa verify against the JWKS', async () => {
    const res = await token(`grant_type=client_credentials&client_id=${svc.id}&client_secret=${svc.secret}`).expect(200);
    const payload = JSON.parse(await verifyWithJwksRsa(`${app.url}/.well-known/jwks.json`, res.body.access_token));
    expect(payload.client_id).toBe(svc.id);
  });

  it('gives every token a unique jti', async () => {
    const [a, b] = await Promise.all([token('grant_type=client_credentials', svc.authorization), token('grant_type=client_credentials', svc.authorization)]);
    const jti = (t: string) => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()).jti;
    expect(jti(a.body.access_token)).not.toBe(jti(b.body.access_token));
  });

  it('grants a requested subset of the allowed scopes, and refuses any other scope', async () => {
    const res = await token('grant_type=client_credentials&scope=read', svc.authorization).expect(200);
    expect(res.body.scope).toBe('read');
    expectError(await token('grant_type=client_credentials&scope=read%20delete', svc.authorization), 400, 'invalid_scope');
    expectError(await token('grant_type=client_credentials&scope=%22quoted%22', svc.authorization), 400, 'invalid_request');
  });

  it('sets aud from resource or audience when allowed, and answers invalid_target otherwise', async () => {
    const claims = (t: string) => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString());
    const byResource = await token(`grant_type=client_credentials&resource=${encodeURIComponent('https://other.test')}`, svc.authorization).expect(200);
    expect(claims(byResource.body.access_token).aud).toBe('https://other.test');
    const byAudience = await token(`grant_type=client_credentials&audience=${encodeURIComponent('https://other.test')}`, svc.authorization).expect(200);
    expect(claims(byAudience.body.access_token).aud).toBe('https://other.test');
    expectError(await token(`grant_type=client_credentials&resource=${encodeURIComponent('https://evil.test')}`, svc.authorization), 400, 'invalid_target');
    expectError(await token(`grant_type=client_credentials&resource=https%3A%2F%2Fapi.test&audience=https%3A%2F%2Fother.test`, svc.authorization), 400, 'invalid_target');
  });

  it('uses the per-client token lifetime', async () => {
    const short = await makeClient(app.services, { tokenTtlSeconds: 60 });
    const res = await token('grant_type=client_credentials', short.authorization).expect(200);
    expect(res.body.expires_in).toBe(60);
  });

  it('adds tenant_id, and refuses tokens once the tenant is disabled', async () => {
    await createTenant(app.services.handle.db, { id: 'acme', name: 'Acme', now: new Date() });
    const tenant = await makeClient(app.services, { tenantId: 'acme' });
    const res = await token('grant_type=client_credentials', tenant.authorization).expect(200);
    expect(JSON.parse(Buffer.from(res.body.access_token.split('.')[1], 'base64url').toString()).tenant_id).toBe('acme');
    await setTenantDisabled(app.services.handle.db, 'acme', new Date());
    const deadline = Date.now() + 1_000;
    let refused: request.Response;
    do refused = await token('grant_type=client_credentials', tenant.authorization);
    while (refused.status === 200 && Date.now() < deadline);
    expectError(refused, 401, 'invalid_client');
  });

  describe('RFC 6749 §5.2 errors', () => {
    it('wrong secret, unknown client, no authentication: 401 invalid_client with WWW-Authenticate', async () => {
      expectError(await token('grant_type=client_credentials', basic(svc.id, 'wrong')), 401, 'invalid_client');
      expectError(await token('grant_type=client_credentials', basic('no-such-client', svc.secret)), 401, 'invalid_client');
      expectError(await token(`grant_type=client_credentials&client_id=${svc.id}&client_secret=wrong`), 401, 'invalid_client');
      expectError(await token('grant_type=client_credentials'), 401, 'invalid_client');
      expectError(await token(`grant_type=client_credentials&client_id=${svc.id}`), 401, 'invalid_client');
    });

    it('disabled client: invalid_client', async () => {
      const gone = await makeClient(app.services);
      await token('grant_type=client_credentials', gone.authorization).expect(200);
      await disableClient(app.services.handle.db, gone.id, { actor: 'test', now: new Date() });
      const deadline = Date.now() + 1_000;
      let res: request.Response;
      do res = await token('grant_type=client_credentials', gone.authorization);
      while (res.status === 200 && Date.now() < deadline);
      expectError(res, 401, 'invalid_client');
    });

    it('two authentication methods in one request: invalid_request', async () => {
      expectError(await token(`grant_type=client_credentials&client_id=${svc.id}&client_secret=${svc.secret}`, svc.authorization), 400, 'invalid_request');
      expectError(await token(`grant_type=client_credentials&client_id=someone-else`, svc.authorization), 400, 'invalid_request');
    });

    it('malformed Basic credentials: invalid_client', async () => {
      for (const header of ['Basic', 'Basic !!!', `Basic ${Buffer.from('no-colon').toString('base64')}`, `Basic ${Buffer.from(':secret').toString('base64')}`, `Basic ${Buffer.from('%zz:x').toString('base64')}`, 'Bearer abc']) {
        expectError(await token('grant_type=client_credentials', header), 401, 'invalid_client');
      }
    });

    it('decodes form-urlencoded Basic credentials (RFC 6749 §2.3.1)', async () => {
      // Our ids and secrets are URL-safe, so only the encoding of an unsafe character can be checked: it must not match.
      expectError(await token('grant_type=client_credentials', `Basic ${Buffer.from(`${svc.id}:${svc.secret}%`).toString('base64')}`), 401, 'invalid_client');
      await token('grant_type=client_credentials', `Basic ${Buffer.from(`${encodeURIComponent(svc.id)}:${encodeURIComponent(svc.secret)}`).toString('base64')}`).expect(200);
    });

    it('missing or unsupported grant_type', async () => {
      expectError(await token('', svc.authorization), 400, 'invalid_request');
      expectError(await token('scope=read', svc.authorization), 400, 'invalid_request');
      expectError(await token('grant_type=', svc.authorization), 400, 'invalid_request');
      expectError(await token('grant_type=password', svc.authorization), 400, 'unsupported_grant_type');
      expectError(await token('grant_type=implicit', svc.authorization), 400, 'unsupported_grant_type');
      // A grant this server has, which this client was not given (docs/oauth.md "Grant types".
      expectError(await token('grant_type=authorization_code', svc.authorization), 400, 'unauthorized_client');
    });

    it('a JSON body or no content type: invalid_request', async () => {
      const json = await request(app.url).post('/oauth/token').set('Authorization', svc.authorization).set('Content-Type', 'application/json').send('{"grant_type":"client_credentials"}');
      expectError(json, 400, 'invalid_request');
      const none = await request(app.url).post('/oauth/token').set('Authorization', svc.authorization).unset('Content-Type').send(Buffer.from('grant_type=client_credentials'));
      expectError(none, 400, 'invalid_request');
    });

    it('duplicate parameters: invalid_request', async () => {
      expectError(await token('grant_type=client_credentials&grant_type=client_credentials', svc.authorization), 400, 'invalid_request');
      expectError(await token('grant_type=client_credentials&scope=read&scope=write', svc.authorization), 400, 'invalid_request');
      expectError(await token('grant_type=client_credentials&resource=https%3A%2F%2Fapi.test&resource=https%3A%2F%2Fapi.test', svc.authorization), 400, 'invalid_request');
    });

    it('a body over 64 KiB: 413 before parsing, declared or chunked', async () => {
      const big = `grant_type=client_credentials&pad=${'a'.repeat(70 * 1024)}`;
      expectError(await token(big, svc.authorization), 413, 'invalid_request');
      const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const url = new URL(`${app.url}/oauth/token`);
        const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'Content-Type': FORM, 'Transfer-Encoding': 'chunked', Authorization: svc.authorization } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        for (let i = 0; i < 9; i++) req.write('a'.repeat(8 * 1024));
        req.end();
      });
      expect(chunked.status).toBe(413);
      expect(JSON.parse(chunked.body).error).toBe('invalid_request');
      // The server still answers afterwards.
      await token('grant_type=client_credentials', svc.authorization).expect(200);
    });

    it('other methods: 405 with Allow', async () => {
      const res = await request(app.url).get('/oauth/token');
      expectError(res, 405, 'invalid_request');
      expect(res.headers.allow).toBe('POST');
    });

    it('never answers 5xx, whatever the input', async () => {
      const bodies = [
        '%',
        '%%%%',
        '=&=&=',
        'grant_type=client_credentials&scope=%FF%FE',
        `grant_type=client_credentials&resource=${'x'.repeat(5000)}`,
        'grant_type=client_credentials&client_id=%00&client_secret=%00',
        'grant_type[]=client_credentials',
        'grant_type=client_credentials&audience=%E2%80%8B',
        `grant_type=${'\u0000'.repeat(10)}`,
      ];
      const headers = [undefined, svc.authorization, 'Basic ' + 'A'.repeat(4000), 'Basic ==', 'basic ' + Buffer.from(`${svc.id}:${svc.secret}`).toString('base64')];
      for (const body of bodies) {
        for (const header of headers) {
          const res = await token(body, header);
          expect(res.status).toBeLessThan(500);
          expect(res.body.error ?? res.body.access_token).toBeDefined();
        }
      }
    });
  });

  it('counts issued tokens, errors and latency in /metrics, with no label that grows with clients', async () => {
    const text = (await app.services.metrics.scrape()).body;
    expect(text).toMatch(/idp_oauth_tokens_issued_total\{grant_type="client_credentials"\} [1-9]/);
    expect(text).not.toContain(svc.id);
    expect(text).not.toMatch(/client_id=/);
    expect(text).toMatch(/idp_oauth_errors_total\{endpoint="token",error="invalid_client"\} [1-9]/);
    expect(text).toMatch(/idp_oauth_token_duration_seconds_count\{outcome="success"\} [1-9]/);
  });

  it('lists the OAuth endpoints, grant types, auth methods and scopes in the discovery metadata', async () => {
    const { body } = await request(app.url).get('/.well-known/oauth-authorization-server').expect(200);
    expect(body).toMatchObject({
      issuer: 'http://idp.test',
      token_endpoint: 'http://idp.test/oauth/token',
      introspection_endpoint: 'http://idp.test/oauth/introspect',
      revocation_endpoint: 'http://idp.test/oauth/revoke',
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none'],
      token_endpoint_auth_signing_alg_values_supported: ['RS256', 'PS256', 'ES256'],
      response_types_supported: ['code'],
    });
    expect(body.grant_types_supported).toContain('client_credentials');
    expect(body.scopes_supported).toEqual(expect.arrayContaining(['admin', 'read', 'write']));
  });
});
