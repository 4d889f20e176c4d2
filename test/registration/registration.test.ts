import { sql } from 'kysely';
import request from 'supertest';
import { ISSUED_CLIENT_ID } from '../../src/clients/client-id';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { readRegistration, RegistrationError } from '../../src/registration/metadata';
import { authorizePath, pkce, registerResource } from '../authorization/support';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import type { OpenApiChecker } from '../helpers/openapi';
import { basic } from '../oauth/helpers';
import { assertion, FORM, JWT_BEARER, jwksOf, testKey } from '../oauth/private-key-jwt-support';
import { adminToken, cli, signUp, testEnv } from '../users/support';
import { freshAddress, register, servedDocument } from './support';

const MCP = 'https://mcp.example/mcp';

/**
 * docs/agents.md "Dynamic client registration" over real HTTP: RFC 7591 registration in each mode (`open`,
 * `token` with an initial access token, `off`), every accepted member and every refusal in the
 * shape of RFC 7591 §3.2.2, the per-address limit, discovery and the OpenAPI document, and the
 * registered scope bounding what the client may request at /oauth/authorize.
 */
describe('dynamic client registration (POST /oauth/register)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let env: Record<string, string>;
  let open: TestServer;
  let token: TestServer;
  let off: TestServer;
  let openDocument: OpenApiChecker;
  let tokenDocument: OpenApiChecker;
  let superToken: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    // The limit is per address: each test registers from addresses of its own (X-Forwarded-For from loopback).
    env = testEnv(database, { IDP_DYNAMIC_REGISTRATION: 'open', IDP_TRUST_PROXY: 'loopback' });
    open = await startTestServer(loadConfig(env), handle);
    token = await startTestServer(loadConfig({ ...env, IDP_DYNAMIC_REGISTRATION: 'token' }), handle);
    off = await startTestServer(loadConfig({ ...env, IDP_DYNAMIC_REGISTRATION: 'off' }), handle);
    openDocument = await servedDocument(open.url);
    tokenDocument = await servedDocument(token.url);
    superToken = (await adminToken(env, handle, '--super')).token;
    await registerResource(open.services, MCP, 'Example MCP server', ['mcp:read', 'mcp:write']);
  });
  afterAll(async () => {
    await off?.close();
    await token?.close();
    await open?.close();
    await database?.drop();
  });

  /** The response has `status` and matches the document its server serves. */
  const documented = (res: request.Response, status: number, document: OpenApiChecker = openDocument): request.Response => {
    expect({ status: res.status, body: res.body as unknown, problems: document.supertestProblems(res) }).toEqual({ status, body: res.body as unknown, problems: [] });
    return res;
  };
  const refused = (res: request.Response, status: number, error: string, document?: OpenApiChecker) => {
    documented(res, status, document);
    expect(res.body).toEqual({ error, error_description: expect.any(String) });
    expect(res.headers['cache-control']).toBe('no-store');
    return res;
  };
  const clientCount = async () => Number((await sql<{ n: string }>`select count(*) as n from oauth_clients`.execute(handle.db)).rows[0]?.n);
  const stored = (id: string) => handle.db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const adminGet = (path: string) => request(open.url).get(`/admin/v1${path}`).set('Authorization', `Bearer ${superToken}`);
  const tokenRequest = (fields: Record<string, string>, authorization?: string) => {
    const req = request(open.url).post('/oauth/token').set('Content-Type', FORM);
    return (authorization ? req.set('Authorization', authorization) : req).send(new URLSearchParams(fields).toString());
  };

  describe('open: anyone may register', () => {
    it('a public client (none): 201 with its metadata as stored and no secret; unknown members ignored; listed as registered_by dynamic, third-party; audited', async () => {
      const address = freshAddress();
      const before = Math.floor(Date.now() / 1000);
      const res = documented(
        await register(
          open.url,
          {
            redirect_uris: ['http://127.0.0.1/callback', 'com.example.agent:/callback'],
            token_endpoint_auth_method: 'none',
            client_name: 'Example Agent',
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            scope: 'openid offline_access mcp:read',
            logo_uri: 'https://agent.example/logo.png',
            client_uri: 'https://agent.example/',
            contacts: ['ops@agent.example'],
            software_id: '4NRB1-0XZABZI9E6-5SM3R',
            software_version: '2.1.0',
            // Not accepted: ignored, never stored.
            first_party: true,
            post_logout_redirect_uris: ['https://agent.example/bye'],
            tos_uri: 'https://agent.example/tos',
            client_secret: 'chosen by the client',
          },
          { address },
        ),
        201,
      );
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toEqual({
        client_id: expect.stringMatching(ISSUED_CLIENT_ID),
        client_id_issued_at: expect.any(Number),
        client_name: 'Example Agent',
        redirect_uris: ['http://127.0.0.1/callback', 'com.example.agent:/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        scope: 'openid offline_access mcp:read',
        logo_uri: 'https://agent.example/logo.png',
        client_uri: 'https://agent.example/',
        contacts: ['ops@agent.example'],
        software_id: '4NRB1-0XZABZI9E6-5SM3R',
        software_version: '2.1.0',
      });
      expect(res.body.client_id_issued_at).toBeGreaterThanOrEqual(before);
      const id = res.body.client_id as string;

      const row = await stored(id);
      expect(row).toMatchObject({
        registered_by: 'dynamic',
        first_party: false,
        token_endpoint_auth_method: 'none',
        secret_hash: null,
        scopes: ['openid', 'offline_access', 'mcp:read'],
        post_logout_redirect_uris: [],
        registration_metadata: { logo_uri: 'https://agent.example/logo.png', client_uri: 'https://agent.example/', contacts: ['ops@agent.example'], software_id: '4NRB1-0XZABZI9E6-5SM3R', software_version: '2.1.0' },
      });
      const view = (await adminGet(`/clients/${id}`).expect(200)).body;
      expect(view).toMatchObject({ client_id: id, registered_by: 'dynamic', first_party: false, token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] });
      const listed = await cli(env, handle, 'clients', 'list');
      expect(listed.stdout).toContain('REGISTERED_BY');
      expect(listed.stdout.split('\n').find((line) => line.startsWith(id))).toContain('dynamic');

      const audit = await handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'client.created').where('target', '=', id).executeTakeFirstOrThrow();
      expect(audit).toMatchObject({ actor: `ip:${address}`, reason: `dynamic registration from ${address}` });
      expect(audit.details).toMatchObject({ registered_by: 'dynamic', auth_method: 'none', software_id: '4NRB1-0XZABZI9E6-5SM3R' });
    });

    it('client_secret_basic (the default): the secret once, never expiring, and named after its redirect URI; client_credentials is dropped and then refused at the token endpoint', async () => {
      const res = documented(
        await register(open.url, {
          redirect_uris: ['https://app.example/callback'],
          grant_types: ['authorization_code', 'client_credentials', 'password', 'urn:ietf:params:oauth:grant-type:token-exchange', 'implicit'],
        }),
        201,
      );
      expect(res.body).toMatchObject({
        client_secret: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        client_secret_expires_at: 0,
        client_name: 'app.example',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code'],
      });
      expect(res.body).not.toHaveProperty('scope');
      const { client_id: id, client_secret: secret } = res.body as { client_id: string; client_secret: string };
      expect((await stored(id)).grant_types).toEqual(['authorization_code']);
      expect((await stored(id)).scopes).toEqual([]);

      // The secret authenticates it (a wrong one is invalid_client); the grant it asked for is not its.
      const refusedGrant = await tokenRequest({ grant_type: 'client_credentials' }, basic(id, secret)).expect(400);
      expect(refusedGrant.body.error).toBe('unauthorized_client');
      expect((await tokenRequest({ grant_type: 'client_credentials' }, basic(id, `${secret}x`))).status).toBe(401);
      const exchange = await tokenRequest({ grant_type: 'refresh_token', refresh_token: 'x' }, basic(id, secret)).expect(400);
      expect(exchange.body.error).toBe('unauthorized_client');
    });

    it('client_secret_post: the secret in the form', async () => {
      const res = documented(await register(open.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'client_secret_post' }), 201);
      expect(res.body).toMatchObject({ token_endpoint_auth_method: 'client_secret_post', client_secret: expect.any(String), client_secret_expires_at: 0 });
      const { client_id: id, client_secret: secret } = res.body as { client_id: string; client_secret: string };
      const authenticated = await tokenRequest({ grant_type: 'client_credentials', client_id: id, client_secret: secret }).expect(400);
      expect(authenticated.body.error).toBe('unauthorized_client');
    });

    it('private_key_jwt with jwks: only the public keys stored and answered, no secret; an assertion of the key authenticates it', async () => {
      const key = testKey('RS256');
      const res = documented(await register(open.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks: jwksOf(key) }), 201);
      expect(res.body).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [expect.objectContaining({ kid: key.kid, kty: 'RSA', n: key.publicJwk.n })] } });
      expect(res.body).not.toHaveProperty('client_secret');
      const id = res.body.client_id as string;
      expect((await stored(id)).secret_hash).toBeNull();
      const signed = await assertion(key, id, open.services.config.issuer);
      const authenticated = await tokenRequest({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: signed }).expect(400);
      expect(authenticated.body.error).toBe('unauthorized_client');
      const forged = await assertion(testKey('RS256', key.kid), id, open.services.config.issuer);
      expect((await tokenRequest({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: forged })).status).toBe(401);
    });

    it('private_key_jwt with a jwks_uri', async () => {
      const res = documented(
        await register(open.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://127.0.0.1:9/jwks.json', client_name: 'Keys elsewhere' }),
        201,
      );
      expect(res.body).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://127.0.0.1:9/jwks.json' });
      expect(res.body).not.toHaveProperty('jwks');
    });

    it('is disabled like any client: the token endpoint and the authorization endpoint refuse it', async () => {
      const res = documented(await register(open.url, { redirect_uris: ['https://app.example/cb'] }), 201);
      const { client_id: id, client_secret: secret } = res.body as { client_id: string; client_secret: string };
      await cli(env, handle, 'clients', 'disable', id);
      await expect(stored(id)).resolves.toMatchObject({ disabled_at: expect.any(Date) });
      const { challenge } = pkce();
      const page = await request(open.url).get(authorizePath({ client_id: id, response_type: 'code', code_challenge: challenge, code_challenge_method: 'S256' }));
      expect(page.status).toBe(400);
      expect(page.text).toContain('disabled');
      expect((await tokenRequest({ grant_type: 'authorization_code', code: 'x', redirect_uri: 'https://app.example/cb', code_verifier: 'v'.repeat(43) }, basic(id, secret))).status).toBe(401);
    });
  });

  describe('refusals: RFC 7591 §3.2.2 errors; nothing is stored and nothing counts against the limit', () => {
    const key = testKey('ES256');
    const privateJwks = { keys: [key.privateJwk] };
    const cases: Array<[string, unknown, 'invalid_client_metadata' | 'invalid_redirect_uri']> = [
      ['no redirect_uris', { client_name: 'x' }, 'invalid_client_metadata'],
      ['empty redirect_uris', { redirect_uris: [] }, 'invalid_client_metadata'],
      ['redirect_uris not strings', { redirect_uris: [42] }, 'invalid_client_metadata'],
      ['redirect_uris a string', { redirect_uris: 'https://app.example/cb' }, 'invalid_client_metadata'],
      ['http on a host that is not loopback', { redirect_uris: ['http://app.example/callback'] }, 'invalid_redirect_uri'],
      ['a fragment', { redirect_uris: ['https://app.example/callback#x'] }, 'invalid_redirect_uri'],
      ['a wildcard', { redirect_uris: ['https://*.app.example/callback'] }, 'invalid_redirect_uri'],
      ['a scheme a browser runs', { redirect_uris: ['javascript:alert(1)'] }, 'invalid_redirect_uri'],
      ['a relative URI', { redirect_uris: ['/callback'] }, 'invalid_redirect_uri'],
      ['too many redirect URIs', { redirect_uris: Array.from({ length: 33 }, (_, i) => `https://app.example/${i}`) }, 'invalid_redirect_uri'],
      ['only client_credentials', { redirect_uris: ['https://app.example/cb'], grant_types: ['client_credentials'] }, 'invalid_client_metadata'],
      ['refresh_token without authorization_code', { redirect_uris: ['https://app.example/cb'], grant_types: ['refresh_token'] }, 'invalid_client_metadata'],
      ['grant_types not an array', { redirect_uris: ['https://app.example/cb'], grant_types: 'authorization_code' }, 'invalid_client_metadata'],
      ['response_types token', { redirect_uris: ['https://app.example/cb'], response_types: ['code', 'token'] }, 'invalid_client_metadata'],
      ['an unknown auth method', { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'tls_client_auth' }, 'invalid_client_metadata'],
      ['private_key_jwt without keys', { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata'],
      [
        'private_key_jwt with jwks and jwks_uri',
        { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks: jwksOf(key), jwks_uri: 'https://keys.example/jwks' },
        'invalid_client_metadata',
      ],
      ['private_key_jwt with a private key', { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks: privateJwks }, 'invalid_client_metadata'],
      ['private_key_jwt with a jwks that is no JWKS', { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: 'x' } }, 'invalid_client_metadata'],
      ['a scope no resource has', { redirect_uris: ['https://app.example/cb'], scope: 'openid mcp:admin' }, 'invalid_client_metadata'],
      ['a malformed scope', { redirect_uris: ['https://app.example/cb'], scope: 'openid "quoted"' }, 'invalid_client_metadata'],
      ['scope not a string', { redirect_uris: ['https://app.example/cb'], scope: ['openid'] }, 'invalid_client_metadata'],
      ['client_name not a string', { redirect_uris: ['https://app.example/cb'], client_name: 7 }, 'invalid_client_metadata'],
      ['client_name with control characters', { redirect_uris: ['https://app.example/cb'], client_name: 'App\u001b[2J' }, 'invalid_client_metadata'],
      ['client_name too long', { redirect_uris: ['https://app.example/cb'], client_name: 'n'.repeat(201) }, 'invalid_client_metadata'],
      ['a logo_uri that is not https', { redirect_uris: ['https://app.example/cb'], logo_uri: 'javascript:alert(1)' }, 'invalid_client_metadata'],
      ['a client_uri that is no URL', { redirect_uris: ['https://app.example/cb'], client_uri: 'agent.example' }, 'invalid_client_metadata'],
      ['contacts not an array', { redirect_uris: ['https://app.example/cb'], contacts: 'ops@agent.example' }, 'invalid_client_metadata'],
      ['too many contacts', { redirect_uris: ['https://app.example/cb'], contacts: Array.from({ length: 11 }, (_, i) => `c${i}@agent.example`) }, 'invalid_client_metadata'],
      ['software_id not a string', { redirect_uris: ['https://app.example/cb'], software_id: { id: 1 } }, 'invalid_client_metadata'],
      ['an array, not an object', [{ redirect_uris: ['https://app.example/cb'] }], 'invalid_client_metadata'],
    ];

    it.each(cases)('%s', async (_name, body, error) => {
      const before = await clientCount();
      refused(await register(open.url, body), 400, error);
      expect(await clientCount()).toBe(before);
    });

    it('bodies that are not JSON objects of at most 64 KiB: 400, 413, 415; another method: 405', async () => {
      const post = () => request(open.url).post('/oauth/register').set('X-Forwarded-For', freshAddress());
      refused(await post().set('Content-Type', 'application/json').send('{"redirect_uris": '), 400, 'invalid_client_metadata');
      refused(await post().set('Content-Type', 'application/json').send('"https://app.example/cb"'), 400, 'invalid_client_metadata');
      refused(await post().set('Content-Type', 'application/json').send('{"redirect_uris": ["https://app.example/\\u0000"]}'), 400, 'invalid_client_metadata');
      refused(await post(), 400, 'invalid_client_metadata');
      refused(await post().set('Content-Type', 'application/x-www-form-urlencoded').send('redirect_uris=https%3A%2F%2Fapp.example%2Fcb'), 415, 'invalid_request');
      refused(await post().set('Content-Type', 'text/plain').send(JSON.stringify({ redirect_uris: ['https://app.example/cb'] })), 415, 'invalid_request');
      const huge = { redirect_uris: ['https://app.example/cb'], client_name: 'x', padding: 'p'.repeat(70 * 1024) };
      refused(await post().send(huge), 413, 'invalid_request');
      const get = await request(open.url).get('/oauth/register');
      expect({ status: get.status, allow: get.headers.allow, body: get.body }).toEqual({ status: 405, allow: 'POST', body: { error: 'invalid_request', error_description: 'use POST' } });
    });

    it('refusals take no registration slot: 25 refused from one address, then it still registers', async () => {
      const address = freshAddress();
      for (let i = 0; i < 25; i++) refused(await register(open.url, { redirect_uris: ['http://app.example/cb'] }, { address }), 400, 'invalid_redirect_uri');
      documented(await register(open.url, { redirect_uris: ['https://app.example/cb'] }, { address }), 201);
    });

    it('production: http://localhost is refused (loopback IP literals stay allowed), as docs/oauth.md "Redirect URIs" says', async () => {
      const policy = (production: boolean) => ({ production, knownResourceScopes: async () => [] });
      const refusal = readRegistration({ redirect_uris: ['http://localhost:8080/cb'] }, policy(true));
      await expect(refusal).rejects.toBeInstanceOf(RegistrationError);
      await expect(refusal).rejects.toMatchObject({ error: 'invalid_redirect_uri', message: expect.stringContaining('http://127.0.0.1') });
      await expect(readRegistration({ redirect_uris: ['http://localhost:8080/cb'] }, policy(false))).resolves.toMatchObject({ redirectUris: ['http://localhost:8080/cb'] });
      await expect(readRegistration({ redirect_uris: ['http://127.0.0.1:8080/cb', 'http://[::1]/cb'] }, policy(true))).resolves.toMatchObject({ method: 'client_secret_basic' });
      await expect(readRegistration({ redirect_uris: ['https://app.example/cb'], logo_uri: 'http://agent.example/logo.png' }, policy(true))).rejects.toMatchObject({ error: 'invalid_client_metadata' });
    });
  });

  describe('token: an initial access token (an admin token with clients:register)', () => {
    const body = { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'none' };

    it('no token: 401 with a challenge and no error code in it; a malformed header: 400; checked before the body', async () => {
      const missing = refused(await register(token.url, body), 401, 'invalid_request', tokenDocument);
      expect(missing.headers['www-authenticate']).toBe('Bearer realm="registration"');
      refused(await register(token.url, { not: 'metadata' }), 401, 'invalid_request', tokenDocument);
      refused(await request(token.url).post('/oauth/register').set('Authorization', 'Basic YTpi').send(body), 400, 'invalid_request', tokenDocument);
    });

    it('a wrong token: 401 invalid_token (garbage, a user access token, a revoked admin token)', async () => {
      const user = await signUp(open.url);
      const revoked = await adminToken(env, handle, '--permission', 'clients:register');
      expect((await cli(env, handle, 'admin-token', 'revoke', revoked.id)).code).toBe(0);
      for (const wrong of ['not-a-token', user.access_token, revoked.token]) {
        const res = refused(await register(token.url, body, { token: wrong }), 401, 'invalid_token', tokenDocument);
        expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="registration", error="invalid_token", error_description="[^"]+"$/);
      }
    });

    it('an admin token without clients:register: 403 insufficient_scope naming it; nothing registered', async () => {
      const writer = await adminToken(env, handle, '--permission', 'clients:write', '--permission', 'clients:read');
      const before = await clientCount();
      const res = refused(await register(token.url, body, { token: writer.token }), 403, 'insufficient_scope', tokenDocument);
      expect(res.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expect(res.headers['www-authenticate']).toContain('scope="clients:register"');
      expect(await clientCount()).toBe(before);
    });

    it('with clients:register (or a super-admin token): 201, audited as the token; malformed metadata still 400', async () => {
      const registrar = await adminToken(env, handle, '--permission', 'clients:register');
      const res = documented(await register(token.url, body, { token: registrar.token }), 201, tokenDocument);
      const audit = await handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'client.created').where('target', '=', res.body.client_id).executeTakeFirstOrThrow();
      expect(audit.actor).toBe(`admin-token:${registrar.id}`);
      documented(await register(token.url, body, { token: superToken }), 201, tokenDocument);
      refused(await register(token.url, { redirect_uris: ['http://app.example/cb'] }, { token: registrar.token }), 400, 'invalid_redirect_uri', tokenDocument);
    });

    it('open mode needs no token and ignores an Authorization header', async () => {
      documented(await register(open.url, body, { token: 'not-a-token' }), 201);
    });
  });

  describe('the limit: 20 registrations an hour per address (IDP_REGISTRATIONS_PER_IP, IDP_REGISTRATION_WINDOW)', () => {
    it('the 21st from one address is 429 with Retry-After and registers nothing; another address still registers; the block is listed and can be lifted', async () => {
      const address = freshAddress();
      for (let i = 0; i < 20; i++) documented(await register(open.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'none' }, { address }), 201);
      const before = await clientCount();
      const limited = refused(await register(open.url, { redirect_uris: ['https://app.example/cb'] }, { address }), 429, 'temporarily_unavailable');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(3000);
      expect(await clientCount()).toBe(before);
      documented(await register(open.url, { redirect_uris: ['https://app.example/cb'] }), 201);

      const blocks = (await adminGet('/limits').expect(200)).body.blocks as Array<{ key: string }>;
      expect(blocks.map((b) => b.key)).toContain(`register:ip:${address}`);
      await request(open.url).delete(`/admin/v1/limits/register:ip:${address}`).set('Authorization', `Bearer ${superToken}`).expect(200);
      documented(await register(open.url, { redirect_uris: ['https://app.example/cb'] }, { address }), 201);
    });

    it('a burst from one address gets exactly 20 registrations: each takes its slot atomically', async () => {
      const address = freshAddress();
      const before = await clientCount();
      const answers = await Promise.all(Array.from({ length: 26 }, () => register(open.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'none' }, { address })));
      const statuses = answers.map((a) => a.status).sort();
      expect(statuses.filter((s) => s === 201)).toHaveLength(20);
      expect(statuses.filter((s) => s === 429)).toHaveLength(6);
      expect(await clientCount()).toBe(before + 20);
    });
  });

  describe('modes, discovery and the OpenAPI document', () => {
    it('off (the default): POST /oauth/register is 404, neither metadata document names it, the OpenAPI document does not list it', async () => {
      expect(loadConfig(testEnv(database)).dynamicRegistration).toBe('off');
      const res = await register(off.url, { redirect_uris: ['https://app.example/cb'] });
      expect({ status: res.status, body: res.body }).toEqual({ status: 404, body: { error: 'not_found', error_description: 'no such endpoint' } });
      for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
        expect((await request(off.url).get(path).expect(200)).body).not.toHaveProperty('registration_endpoint');
      }
      expect(Object.keys((await request(off.url).get('/openapi.json').expect(200)).body.paths)).not.toContain('/oauth/register');
    });

    it('token and open: both metadata documents name the registration endpoint; the OpenAPI document describes the mode', async () => {
      for (const server of [open, token]) {
        for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
          expect((await request(server.url).get(path).expect(200)).body.registration_endpoint).toBe('http://idp.test/oauth/register');
        }
      }
      const operation = (checker: OpenApiChecker) => checker.find('POST', '/oauth/register')?.operation as { security: unknown[]; responses: Record<string, unknown> };
      expect(operation(openDocument).security).toEqual([]);
      expect(Object.keys(operation(openDocument).responses)).not.toContain('401');
      expect(operation(tokenDocument).security).toEqual([{ adminToken: [] }]);
      expect(Object.keys(operation(tokenDocument).responses)).toEqual(expect.arrayContaining(['401', '403']));
    });
  });

  describe('the registered scope bounds what the client may request (docs/oauth.md "Resources"', () => {
    const authorize = async (clientId: string, scope: string | undefined, resource?: string) => {
      const { challenge } = pkce();
      return request(open.url).get(
        authorizePath({ client_id: clientId, redirect_uri: 'https://app.example/cb', response_type: 'code', scope, resource, code_challenge: challenge, code_challenge_method: 'S256', state: 's' }),
      );
    };
    const errorOf = (res: request.Response) => (res.status === 302 ? new URL(res.headers.location as string).searchParams.get('error') : `page ${res.status}`);

    it('registered with a scope: only those, the OpenID Connect scopes included; without one: any registered resource scope and the OpenID Connect scopes', async () => {
      const bounded = (await register(open.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'none', scope: 'openid mcp:read' }).expect(201)).body.client_id as string;
      expect(errorOf(await authorize(bounded, 'openid mcp:read', MCP))).toBe('page 200');
      expect(errorOf(await authorize(bounded, 'openid mcp:write', MCP))).toBe('invalid_scope');
      expect(errorOf(await authorize(bounded, 'openid email'))).toBe('invalid_scope');
      expect(errorOf(await authorize(bounded, 'offline_access'))).toBe('invalid_scope');
      expect(errorOf(await authorize(bounded, 'openid mcp:read', 'https://other.example/api'))).toBe('invalid_target');

      const unbounded = (await register(open.url, { redirect_uris: ['https://app.example/cb'], token_endpoint_auth_method: 'none' }).expect(201)).body.client_id as string;
      expect(errorOf(await authorize(unbounded, 'openid email offline_access mcp:write mcp:read', MCP))).toBe('page 200');
      expect(errorOf(await authorize(unbounded, 'openid mcp:write'))).toBe('invalid_scope');
    });
  });
});
