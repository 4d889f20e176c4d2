import crypto from 'node:crypto';
import type { AddressInfo } from 'node:net';
import SwaggerParser from '@apidevtools/swagger-parser';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import request from 'supertest';
import { loadConfig, type Config } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { createServer, openApiDocument } from '../../src/compose';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { makeKey } from '../api-keys/support';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { OpenApiChecker, type OpenApiDocument } from '../helpers/openapi';
import { basic, makeClient, type TestClient } from '../oauth/helpers';
import { adminToken, freshEmail, signUp, testEnv } from '../users/support';
import { tokenHash } from '../../src/authorization/cookies';
import { grantConsent, insertCode } from '../../src/authorization/repository';
import { makeCodeClient } from '../authorization/support';

const FORM = 'application/x-www-form-urlencoded';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/**
 * GET /openapi.json is a valid OpenAPI 3.1 document (checked by swagger-parser against the official
 * schema, and every schema in it compiled by ajv as JSON Schema 2020-12), and every route of the
 * public port answers as it says: each operation is called over real HTTP, at least one success and
 * one error each (every operation that documents an error), and every response is checked against
 * the document the server serves.
 */
describe('OpenAPI document (GET /openapi.json) against real responses', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let env: Record<string, string>;
  let config: Config;
  let server: TestServer;
  /** The same service before its database is up: main.ts listens first (/readyz answers while the database is awaited). */
  let starting: { url: string; close(): Promise<void> };
  let document: OpenApiDocument;
  let checker: OpenApiChecker;
  let superToken: string;
  let client: TestClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    // A low per-client failure limit (so a block can be listed and lifted), the test's address never blocked per address;
    // registration in `token` mode, whose operation documents the most answers.
    env = testEnv(database, { IDP_TOKEN_FAILURES_PER_CLIENT: '2', IDP_RATE_LIMIT_ALLOWLIST: '127.0.0.1,::1', IDP_DYNAMIC_REGISTRATION: 'token' });
    config = loadConfig(env);
    server = await startTestServer(config, handle);
    superToken = (await adminToken(env, handle, '--super', '--description', 'openapi test')).token;
    client = await makeClient(server.services, { scopes: ['read', 'write'], audiences: ['https://api.test'] });

    const bare = createServer({ config, logger: createLogger('silent'), metrics: createMetrics(), composition: () => undefined });
    await new Promise<void>((resolve) => bare.listen(0, '127.0.0.1', resolve));
    starting = {
      url: `http://127.0.0.1:${(bare.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => bare.close(() => resolve())),
    };

    const served = await request(server.url).get('/openapi.json').expect(200);
    document = served.body as OpenApiDocument;
    checker = new OpenApiChecker(document);
  });
  afterAll(async () => {
    await starting?.close();
    await server?.close();
    await database?.drop();
  });

  /** The response has `status` and matches the document (both reported in one diff when not). */
  const documented = (res: request.Response, status: number): request.Response => {
    const problems = checker.supertestProblems(res);
    expect({ status: res.status, problems }).toEqual({ status, problems: [] });
    return res;
  };
  /** Another method at an OAuth endpoint: 405, the components' OAuthMethodNotAllowed response. */
  const methodNotAllowed = (res: request.Response) => {
    expect({ status: res.status, allow: res.headers.allow, problems: checker.componentResponseProblems('OAuthMethodNotAllowed', res) }).toEqual({ status: 405, allow: 'POST', problems: [] });
  };
  const bearer = (token: string) => `Bearer ${token}`;
  const adminCall = (method: 'get' | 'post' | 'patch' | 'delete', path: string, body?: object, token: string | null = superToken) => {
    let req = request(server.url)[method](`/admin/v1${path}`);
    if (token !== null) req = req.set('Authorization', bearer(token));
    return body === undefined ? req : req.send(body);
  };
  const form = (url: string, path: string, fields: Record<string, string>, authorization?: string) => {
    const req = request(url).post(path).set('Content-Type', FORM);
    return (authorization ? req.set('Authorization', authorization) : req).send(new URLSearchParams(fields).toString());
  };

  describe('the document', () => {
    it('is served once generated: public caching, any origin, a strong ETag, 304 on If-None-Match, the same document the source builds', async () => {
      const res = documented(await request(server.url).get('/openapi.json'), 200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['cache-control']).toMatch(/^public, max-age=\d+$/);
      expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
      expect(res.headers['access-control-allow-origin']).toBe('*');
      expect(res.body).toEqual(JSON.parse(JSON.stringify(openApiDocument(config))));
      expect(res.body.servers).toEqual([{ url: config.issuer }]);
      const again = documented(await request(server.url).get('/openapi.json').set('If-None-Match', res.headers.etag as string), 304);
      expect(again.text).toBe('');
      expect((await request(starting.url).get('/openapi.json')).status).toBe(200);
    });

    it('is valid OpenAPI 3.1 for swagger-parser (the official 3.1 schema, every $ref resolved)', async () => {
      expect(document.openapi).toBe('3.1.0');
      await expect(SwaggerParser.validate(structuredClone(document) as never)).resolves.toBeDefined();
    });

    it('holds only valid JSON Schema 2020-12 (ajv, strict), unique operation ids, and declares every path parameter', () => {
      const ajv = new Ajv2020({ strict: true });
      addFormats(ajv);
      for (const [name, schema] of Object.entries(document.components?.schemas ?? {})) {
        expect({ name, valid: ajv.validateSchema(schema as object) }).toEqual({ name, valid: true });
      }
      const ids = checker.operations().map((o) => o.operation.operationId);
      expect(ids.every((id) => typeof id === 'string')).toBe(true);
      expect(new Set(ids).size).toBe(ids.length);
      for (const { method, template, operation } of checker.operations()) {
        const declared = ((operation as { parameters?: Array<{ in: string; name: string; required?: boolean }> }).parameters ?? []).filter((p) => p.in === 'path');
        const inTemplate = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
        expect({ at: `${method} ${template}`, params: declared.map((p) => p.name).sort() }).toEqual({ at: `${method} ${template}`, params: [...inTemplate].sort() });
        expect(declared.every((p) => p.required === true)).toBe(true);
      }
    });

    it('lists every route of the public port, every registered grant type, and not /metrics', () => {
      const paths = Object.keys(document.paths ?? {});
      expect(paths).toEqual(
        expect.arrayContaining([
          '/oauth/token',
          '/oauth/introspect',
          '/oauth/revoke',
          '/oauth/register',
          '/.well-known/jwks.json',
          '/.well-known/oauth-authorization-server',
          '/.well-known/openid-configuration',
          '/healthz',
          '/readyz',
          '/auth/v1/signup',
          '/auth/v1/token',
          '/auth/v1/logout',
          '/auth/v1/user',
          '/auth/v1/api-keys',
          '/auth/v1/api-keys/{id}',
          '/admin/v1/limits',
          '/admin/v1/limits/{key}',
          '/admin/v1/api-keys',
          '/admin/v1/api-keys/{id}',
          '/admin/v1/api-keys/{id}/revoke',
          '/admin/v1/resources',
          '/admin/v1/resources/{url}',
        ]),
      );
      expect(paths).not.toContain('/metrics');
      expect(paths.filter((p) => p.startsWith('/admin/v1/'))).toHaveLength(18);
      const body = JSON.stringify((document.paths?.['/oauth/token'] as { post: { requestBody: unknown } }).post.requestBody);
      for (const grant of server.services.registry.grantTypes()) expect(body).toContain(JSON.stringify(grant));
    });
  });

  describe('every route answers as documented', () => {
    it('discovery, JWKS and health', async () => {
      const jwks = documented(await request(server.url).get('/.well-known/jwks.json'), 200);
      documented(await request(server.url).get('/.well-known/jwks.json').set('If-None-Match', jwks.headers.etag as string), 304);
      documented(await request(server.url).head('/.well-known/jwks.json'), 200);
      documented(await request(starting.url).get('/.well-known/jwks.json'), 503);
      documented(await request(starting.url).head('/.well-known/jwks.json'), 503);
      documented(await request(server.url).get('/.well-known/oauth-authorization-server'), 200);
      documented(await request(server.url).get('/.well-known/openid-configuration'), 200);
      documented(await request(server.url).get('/healthz'), 200);
      documented(await request(server.url).get('/readyz'), 200);
      documented(await request(starting.url).get('/readyz'), 503);
    });

    it('POST /oauth/token: each grant, and its errors', async () => {
      documented(await form(server.url, '/oauth/token', { grant_type: 'client_credentials', scope: 'read' }, client.authorization), 200);
      const session = await signUp(server.url);
      documented(await form(server.url, '/oauth/token', { grant_type: 'refresh_token', refresh_token: session.refresh_token }), 200);
      const key = await makeKey(server.services, { kind: 'client', id: client.id });
      const exchanged = documented(await form(server.url, '/oauth/token', { grant_type: TOKEN_EXCHANGE, subject_token: key.key, subject_token_type: ACCESS_TOKEN_TYPE }), 200);
      expect(exchanged.body.issued_token_type).toBe(ACCESS_TOKEN_TYPE);

      documented(await form(server.url, '/oauth/token', { grant_type: TOKEN_EXCHANGE, subject_token_type: ACCESS_TOKEN_TYPE }), 400);
      documented(await form(server.url, '/oauth/token', { grant_type: 'password' }, client.authorization), 400);
      documented(await form(server.url, '/oauth/token', { grant_type: 'client_credentials', scope: 'admin' }, client.authorization), 400);
      documented(await form(server.url, '/oauth/token', { grant_type: 'refresh_token', refresh_token: 'spent' }), 400);
      methodNotAllowed(await request(server.url).get('/oauth/token'));
      documented(await request(server.url).post('/oauth/token').set('Content-Type', FORM).send(`grant_type=client_credentials&x=${'a'.repeat(70 * 1024)}`), 413);
      documented(await form(starting.url, '/oauth/token', { grant_type: 'client_credentials' }, client.authorization), 503);
      // A wrong secret is 401; past the client's limit (2 here), its failing requests are 429.
      const victim = await makeClient(server.services);
      documented(await form(server.url, '/oauth/token', { grant_type: 'client_credentials' }, basic(victim.id, 'wrong')), 401);
      documented(await form(server.url, '/oauth/token', { grant_type: 'client_credentials' }, basic(victim.id, 'wrong')), 401);
      const blocked = documented(await form(server.url, '/oauth/token', { grant_type: 'client_credentials' }, basic(victim.id, 'wrong')), 429);
      expect(blocked.headers['retry-after']).toMatch(/^\d+$/);

      // GET /admin/v1/limits lists the block, DELETE lifts it.
      const limits = documented(await adminCall('get', '/limits'), 200);
      expect(limits.body.blocks.map((b: { key: string }) => b.key)).toContain(`oauth:client:${victim.id}`);
      documented(await adminCall('delete', `/limits/oauth:client:${victim.id}`), 200);
      documented(await adminCall('delete', `/limits/oauth:client:${victim.id}`), 404);
      documented(await adminCall('delete', '/limits/not-a-key'), 400);
      documented(await adminCall('get', '/limits', undefined, null), 401);
      documented(await adminCall('delete', '/limits/oauth:client:x', undefined, null), 401);
    });

    it('POST /oauth/introspect and /oauth/revoke', async () => {
      const issued = await form(server.url, '/oauth/token', { grant_type: 'client_credentials' }, client.authorization);
      const token = issued.body.access_token as string;
      const session = await signUp(server.url);
      const key = await makeKey(server.services, { kind: 'client', id: client.id });
      for (const text of [token, session.access_token, session.refresh_token, key.key]) {
        expect(documented(await form(server.url, '/oauth/introspect', { token: text }, client.authorization), 200).body.active).toBe(true);
      }
      expect(documented(await form(server.url, '/oauth/introspect', { token: 'nonsense' }, client.authorization), 200).body).toEqual({ active: false });
      documented(await form(server.url, '/oauth/introspect', {}, client.authorization), 400);
      documented(await form(server.url, '/oauth/introspect', { token }), 401);

      const other = await makeClient(server.services);
      documented(await form(server.url, '/oauth/revoke', { token }, other.authorization), 400);
      documented(await form(server.url, '/oauth/revoke', { token }, client.authorization), 200);
      documented(await form(server.url, '/oauth/revoke', { token }), 401);
      methodNotAllowed(await request(server.url).put('/oauth/revoke'));
    });

    it('POST /oauth/register (IDP_DYNAMIC_REGISTRATION=token)', async () => {
      const metadata = { redirect_uris: ['https://app.example/callback'], client_name: 'Registered', scope: 'openid' };
      const register = (body: unknown, token: string | null = superToken, url = server.url) => {
        const req = request(url).post('/oauth/register');
        return (token === null ? req : req.set('Authorization', bearer(token))).send(body as object);
      };
      expect(documented(await register(metadata), 201).body.client_secret).toEqual(expect.any(String));
      documented(await register({ ...metadata, token_endpoint_auth_method: 'none' }), 201);
      documented(await register({ ...metadata, redirect_uris: ['http://app.example/callback'] }), 400);
      documented(await register({ ...metadata, grant_types: ['client_credentials'] }), 400);
      documented(await register(metadata, null), 401);
      documented(await register(metadata, 'not-a-token'), 401);
      const reader = await adminToken(env, handle, '--permission', 'clients:read');
      documented(await register(metadata, reader.token), 403);
      documented(await request(server.url).post('/oauth/register').set('Authorization', bearer(superToken)).set('Content-Type', 'text/plain').send('{}'), 415);
      documented(await register({ ...metadata, padding: 'p'.repeat(70 * 1024) }), 413);
      documented(await register(metadata, superToken, starting.url), 503);
    });

    it('/auth/v1: sign-up, sign-in, refresh, the user, sign-out', async () => {
      const email = freshEmail('openapi');
      const session = documented(await request(server.url).post('/auth/v1/signup').send({ email, password: 'correct horse battery' }), 201).body;
      documented(await request(server.url).post('/auth/v1/signup').send({ email, password: 'correct horse battery' }), 409);
      documented(await request(server.url).post('/auth/v1/signup').send({ email: freshEmail(), password: 'short' }), 422);
      documented(await request(server.url).post('/auth/v1/signup').send({ email: 'not an address', password: 'correct horse battery' }), 400);
      documented(await request(server.url).post('/auth/v1/signup').set('Content-Type', 'text/plain').send('{}'), 415);
      documented(await request(server.url).post('/auth/v1/signup').send({ email, password: 'x'.repeat(70 * 1024) }), 413);
      documented(await request(starting.url).post('/auth/v1/signup').send({ email: freshEmail(), password: 'correct horse battery' }), 503);

      documented(await request(server.url).post('/auth/v1/token').send({ email, password: 'correct horse battery' }), 200);
      documented(await request(server.url).post('/auth/v1/token').send({ email, password: 'wrong horse battery' }), 400);
      documented(await request(server.url).post('/auth/v1/token?grant_type=implicit').send({ email, password: 'correct horse battery' }), 400);
      const refreshed = documented(await request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: session.refresh_token }), 200).body;
      documented(await request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({}), 400);

      documented(await request(server.url).get('/auth/v1/user').set('Authorization', bearer(refreshed.access_token)), 200);
      documented(await request(server.url).get('/auth/v1/user'), 401);
      documented(await request(server.url).post('/auth/v1/logout').set('Authorization', bearer(refreshed.access_token)), 204);
      documented(await request(server.url).post('/auth/v1/logout').set('Authorization', bearer(refreshed.access_token)), 401);
      documented(await request(server.url).get('/auth/v1/user').set('Authorization', bearer(refreshed.access_token)), 401);
    });

    it('the authorization-code flow: its grant, /oauth/userinfo and /auth/v1/grants', async () => {
      const session = await signUp(server.url);
      const app = await makeCodeClient(server.services, { redirectUris: ['https://app.example/callback'] });
      // A code as the authorization endpoint stores it (the hosted pages are driven by a browser in test/authorization).
      const code = 'c'.repeat(43);
      const verifier = 'v'.repeat(43);
      const now = server.services.now();
      await insertCode(server.services.handle.db, {
        codeHash: tokenHash(code),
        clientId: app.id,
        userId: session.user.id,
        redirectUri: 'https://app.example/callback',
        redirectUriSent: true,
        codeChallenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
        scopes: ['openid', 'email', 'offline_access'],
        resources: [],
        nonce: 'n-0S6_WzA2Mj',
        authTime: now,
        browserSessionId: null,
        now,
        expiresAt: new Date(now.getTime() + 60_000),
      });
      const redeem = { grant_type: 'authorization_code', code, redirect_uri: 'https://app.example/callback', code_verifier: verifier };
      const tokens = documented(await form(server.url, '/oauth/token', redeem, basic(app.id, app.secret as string)), 200).body;
      expect(tokens.id_token).toEqual(expect.any(String));

      const userinfo = (method: 'get' | 'post', token?: string) => {
        const req = request(server.url)[method]('/oauth/userinfo');
        return token === undefined ? req : req.set('Authorization', token);
      };
      for (const method of ['get', 'post'] as const) {
        documented(await userinfo(method, bearer(tokens.access_token)), 200);
        documented(await userinfo(method), 401);
        documented(await userinfo(method, 'Basic abc'), 400);
        documented(await userinfo(method, bearer(session.access_token)), 403);
      }

      const auth = bearer(session.access_token);
      await grantConsent(server.services.handle.db, { userId: session.user.id, clientId: app.id, scopes: ['openid'], resources: [], now });
      expect(documented(await request(server.url).get('/auth/v1/grants').set('Authorization', auth), 200).body.grants).toHaveLength(1);
      documented(await request(server.url).get('/auth/v1/grants'), 401);
      documented(await request(server.url).delete(`/auth/v1/grants/${app.id}`).set('Authorization', auth), 204);
      documented(await request(server.url).delete(`/auth/v1/grants/${app.id}`).set('Authorization', auth), 404);
      documented(await request(server.url).delete(`/auth/v1/grants/${app.id}`), 401);
      // Withdrawn: the application's session ended with it.
      documented(await userinfo('get', bearer(tokens.access_token)), 401);
      // The code again: invalid_grant.
      documented(await form(server.url, '/oauth/token', redeem, basic(app.id, app.secret as string)), 400);
    });

    it('/auth/v1/api-keys', async () => {
      const session = await signUp(server.url);
      const auth = bearer(session.access_token);
      const created = documented(await request(server.url).post('/auth/v1/api-keys').set('Authorization', auth).send({ name: 'cli', expires_in: '30d' }), 201).body;
      documented(await request(server.url).post('/auth/v1/api-keys').set('Authorization', auth).send({ name: 'cli', owner: 'someone' }), 400);
      documented(await request(server.url).post('/auth/v1/api-keys').send({ name: 'cli' }), 401);
      documented(await request(server.url).get('/auth/v1/api-keys?limit=1').set('Authorization', auth), 200);
      documented(await request(server.url).get('/auth/v1/api-keys?limit=0').set('Authorization', auth), 400);
      documented(await request(server.url).delete(`/auth/v1/api-keys/${created.id}`).set('Authorization', auth), 200);
      documented(await request(server.url).delete('/auth/v1/api-keys/0000000000000000').set('Authorization', auth), 404);
    });

    it('/admin/v1 keys, clients, users, tenants and audit', async () => {
      documented(await adminCall('get', '/keys'), 200);
      const reader = (await adminToken(env, handle, '--permission', 'audit:read')).token;
      documented(await adminCall('get', '/keys', undefined, reader), 403);
      documented(await request(starting.url).get('/admin/v1/keys').set('Authorization', bearer(superToken)), 503);
      const early = documented(await adminCall('post', '/keys/rotate', { force: false }), 409);
      expect(early.body.safe_at).toEqual(expect.any(String));
      documented(await adminCall('post', '/keys/rotate', { force: true }), 200);
      const keys = documented(await adminCall('get', '/keys'), 200).body.keys as Array<{ kid: string; state: string }>;
      const next = keys.find((k) => k.state === 'next');
      documented(await adminCall('post', `/keys/${next?.kid}/revoke`, { reason: 'openapi test' }), 200);
      documented(await adminCall('post', '/keys/AAAA/revoke'), 404);
      documented(await adminCall('post', '/keys/AAAA/revoke', undefined, null), 401);

      documented(await adminCall('get', '/clients'), 200);
      documented(await adminCall('get', '/clients', undefined, null), 401);
      documented(await adminCall('get', '/clients?cursor=edited'), 400);
      const created = documented(await adminCall('post', '/clients', { name: 'openapi', scopes: 'read write', audiences: ['https://api.test'] }), 201).body;
      expect(created.client_secret).toEqual(expect.any(String));
      const jwk = { ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }), kid: 'es-1', alg: 'ES256' };
      const signer = documented(await adminCall('post', '/clients', { name: 'signer', scopes: ['read'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } }), 201).body;
      expect(signer.client_secret).toBeUndefined();
      const spa = { name: 'spa', scopes: 'openid', token_endpoint_auth_method: 'none', redirect_uris: ['https://spa.example/cb'], post_logout_redirect_uris: ['https://spa.example/'] };
      expect(documented(await adminCall('post', '/clients', spa), 201).body).toMatchObject({ token_endpoint_auth_method: 'none', registered_by: 'operator' });
      documented(await adminCall('post', '/clients', { ...spa, redirect_uris: ['https://spa.example/cb#fragment'] }), 400);
      documented(await adminCall('post', '/clients', { name: 'openapi', scopes: 'read', colour: 'blue' }), 400);
      documented(await adminCall('get', `/clients/${created.client_id}`), 200);
      documented(await adminCall('get', `/clients/${signer.client_id}`), 200);
      documented(await adminCall('get', '/clients/unknown'), 404);
      documented(await adminCall('patch', `/clients/${created.client_id}`, { name: 'renamed', disabled: true }), 200);
      documented(await adminCall('patch', `/clients/${created.client_id}`, { secret: 'mine' }), 400);
      documented(await adminCall('post', `/clients/${created.client_id}/secret`, { grace: '0s' }), 200);
      documented(await adminCall('post', '/clients/unknown/secret', {}), 404);
      expect(documented(await adminCall('get', '/clients?limit=1'), 200).body.next_cursor).toEqual(expect.any(String));
      documented(await adminCall('delete', `/clients/${created.client_id}`), 204);
      documented(await adminCall('delete', `/clients/${created.client_id}`), 404);

      const user = await signUp(server.url);
      documented(await adminCall('get', '/users?limit=1'), 200);
      documented(await adminCall('get', '/users?cursor=edited'), 400);
      documented(await adminCall('patch', `/users/${user.user.id}`, { role: 'editor' }), 200);
      documented(await adminCall('patch', `/users/${crypto.randomUUID()}`, { role: 'editor' }), 404);
      documented(await adminCall('patch', `/users/${user.user.id}`, { role: 'editor' }, null), 401);

      documented(await adminCall('post', '/tenants', { id: 'openapi-tenant', name: 'OpenAPI' }), 201);
      documented(await adminCall('post', '/tenants', { id: 'openapi-tenant', name: 'OpenAPI' }), 409);
      documented(await adminCall('get', '/tenants'), 200);
      documented(await adminCall('get', '/tenants', undefined, null), 401);
      documented(await adminCall('get', '/tenants/openapi-tenant'), 200);
      documented(await adminCall('get', '/tenants/missing'), 404);
      documented(await adminCall('delete', '/tenants/openapi-tenant'), 200);
      documented(await adminCall('delete', '/tenants/missing'), 404);

      const audit = documented(await adminCall('get', '/audit?limit=2'), 200).body;
      expect(audit.events.length).toBeGreaterThan(0);
      documented(await adminCall('get', '/audit?since=2026-02-31T00:00:00Z'), 400);
    });

    it('/admin/v1/api-keys', async () => {
      const created = documented(await adminCall('post', '/api-keys', { client_id: client.id, name: 'deploy', scopes: ['read'] }), 201).body;
      documented(await adminCall('post', '/api-keys', { client_id: client.id, user_id: crypto.randomUUID(), name: 'two owners' }), 400);
      documented(await adminCall('get', `/api-keys?client_id=${client.id}`), 200);
      documented(await adminCall('get', '/api-keys?user_id=not-a-uuid'), 400);
      documented(await adminCall('get', `/api-keys/${created.id}`), 200);
      documented(await adminCall('get', '/api-keys/0000000000000000'), 404);
      documented(await adminCall('post', `/api-keys/${created.id}/revoke`, { reason: 'rotated' }), 200);
      documented(await adminCall('post', '/api-keys/0000000000000000/revoke', {}), 404);
      const other = documented(await adminCall('post', '/api-keys', { client_id: client.id, name: 'other' }), 201).body;
      documented(await adminCall('delete', `/api-keys/${other.id}`), 200);
      documented(await adminCall('delete', `/api-keys/${other.id}`, undefined, null), 401);
    });

    it('/admin/v1/resources', async () => {
      const url = 'https://openapi.example/mcp';
      const path = `/resources/${encodeURIComponent(url)}`;
      expect(documented(await adminCall('post', '/resources', { url, name: 'MCP server', scopes: 'mcp:tools mcp:read' }), 201).body).toMatchObject({ url, scopes: ['mcp:tools', 'mcp:read'] });
      documented(await adminCall('post', '/resources', { url, name: 'again', scopes: 'x' }), 409);
      documented(await adminCall('post', '/resources', { url: 'https://openapi.example/#f', name: 'fragment', scopes: 'x' }), 400);
      documented(await adminCall('get', '/resources'), 200);
      documented(await adminCall('get', '/resources', undefined, null), 401);
      documented(await adminCall('get', path), 200);
      documented(await adminCall('get', `/resources/${encodeURIComponent('https://none.example')}`), 404);
      documented(await adminCall('delete', path), 200);
      documented(await adminCall('delete', path), 404);
    });

    it('every operation was seen succeeding, and failing wherever the document lists an error', () => {
      const missing: string[] = [];
      for (const { method, template, operation } of checker.operations()) {
        const statuses = [...checker.checked].filter((c) => c.startsWith(`${method} ${template} `)).map((c) => Number(c.split(' ')[2]));
        if (!statuses.some((s) => s < 400)) missing.push(`${method} ${template}: no success`);
        const errorsDocumented = Object.keys(operation.responses ?? {}).some((s) => Number(s) >= 400);
        if (errorsDocumented && !statuses.some((s) => s >= 400)) missing.push(`${method} ${template}: no error`);
      }
      expect(missing).toEqual([]);
    });
  });
});
