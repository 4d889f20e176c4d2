import request from 'supertest';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { adminToken, cli, testEnv } from '../users/support';
import { rawRequest, socketExchange } from './http';

const ISSUER = 'http://idp.test';
const USER_AUDIENCE = 'https://users.idp.test';

/** Issue 7: reserved audiences (7), admin token expiry and ids (9), exact routes, 415 and 413 (12), discovery scopes (16). */
describe('admin API and HTTP hardening', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let token: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database, { IDP_USER_AUDIENCE: USER_AUDIENCE });
    server = await startTestServer(loadConfig(env), handle);
    token = (await adminToken(env, handle, '--super')).token;
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const admin = () => ({
    get: (path: string) => request(server.url).get(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`),
    post: (path: string, body?: object) => {
      const req = request(server.url).post(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`);
      return body === undefined ? req : req.send(body);
    },
    patch: (path: string, body: object) => request(server.url).patch(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`).send(body),
  });
  const count = async (table: 'oauth_clients' | 'users' | 'tenants') =>
    Number((await handle.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  describe("the identity provider's own audiences are reserved (item 7)", () => {
    const reserved = [
      ISSUER,
      `${ISSUER}/admin`,
      USER_AUDIENCE,
      `${ISSUER}/`,
      `${ISSUER}/admin/`,
      'HTTP://IDP.TEST/admin',
      `${USER_AUDIENCE}/`,
      'http://idp.test:80/admin',
      // Issue 15: other spellings of the same URL (WHATWG-normalised, unreserved escapes decoded, userinfo, `?` and `#` dropped).
      `${ISSUER}/admin?`,
      'http://u@idp.test/admin',
      'http://u:p@idp.test/admin',
      `${ISSUER}/%61dmin`,
      `${ISSUER}/%61%64%6D%69%6E`,
      'http://IDP.test/admin',
      `${ISSUER}/admin#`,
      `${ISSUER}/./admin`,
      'https://users.idp.test:443',
      'https://USERS.idp.test/?#',
      'http://%69dp.test/admin',
    ];

    it('refuses them at client creation, in the admin API and the CLI, creating nothing', async () => {
      const before = await count('oauth_clients');
      for (const audience of reserved) {
        const res = await admin().post('/clients', { name: 'sneaky', scopes: 'read', audiences: ['https://api.example', audience] });
        expect({ audience, status: res.status }).toEqual({ audience, status: 400 });
        expect(Object.keys(res.body).sort()).toEqual(['error', 'message']);
        expect(res.body.message).toMatch(/reserved/);
        const result = await cli(env, handle, 'clients', 'create', '--name', 'sneaky', '--scope', 'read', '--audience', audience, '--json');
        expect({ audience, code: result.code }).toEqual({ audience, code: 1 });
        expect(result.stdout).toBe('');
        expect(result.stderr).toMatch(/reserved/);
      }
      expect(await count('oauth_clients')).toBe(before);
    });

    it('refuses them when a client is changed, leaving it as it was', async () => {
      const created = await admin().post('/clients', { name: 'billing', scopes: 'read', audiences: ['https://billing.example'] });
      expect(created.status).toBe(201);
      for (const audience of reserved) {
        const res = await admin().patch(`/clients/${created.body.client_id}`, { audiences: [audience] });
        expect({ audience, status: res.status }).toEqual({ audience, status: 400 });
      }
      expect((await admin().get(`/clients/${created.body.client_id}`)).body.audiences).toEqual(['https://billing.example']);
      // Other audiences on the issuer's host stay allowed: only the provider's own are reserved.
      expect((await admin().patch(`/clients/${created.body.client_id}`, { audiences: [`${ISSUER}/api`, `${ISSUER}/administration`, `${ISSUER}/admin?x=1`, `${ISSUER}/%2561dmin`] })).status).toBe(200);
    });
  });

  describe('admin tokens (item 9)', () => {
    it("answers 401 once the row's expires_at has passed, whatever the JWT's exp says", async () => {
      const issued = await adminToken(env, handle, '--permission', 'keys:read', '--ttl', '30m');
      const get = () => request(server.url).get('/admin/v1/keys').set('Authorization', `Bearer ${issued.token}`);
      expect((await get()).status).toBe(200);
      await handle.db.updateTable('admin_tokens').set({ expires_at: new Date(Date.now() - 60_000) }).where('id', '=', issued.id).execute();
      const refused = await get();
      expect(refused.status).toBe(401);
      expect(refused.body).toEqual({ error: 'token_expired', message: expect.stringMatching(/^admin token expired 1 minute ago at /) });
    });

    it('answers 401, never 500, to a validly signed token whose jti is not a UUID', async () => {
      const now = Math.floor(Date.now() / 1000);
      for (const jti of ['------------------------------------', '0123456789abcdef0123456789abcdef0123', 'not-a-uuid', '\u0000', 42, undefined]) {
        const forged = await server.services.sign(
          {
            iss: ISSUER,
            sub: 'admin-token:x',
            aud: `${ISSUER}/admin`,
            exp: now + 600,
            iat: now,
            nbf: now,
            ...(jti === undefined ? {} : { jti }),
            token_type: 'admin',
            permissions: ['keys:read'],
            is_super_admin: true,
          },
          'at+jwt',
        );
        const res = await request(server.url).get('/admin/v1/keys').set('Authorization', `Bearer ${forged}`);
        expect({ jti, status: res.status }).toEqual({ jti, status: 401 });
        expect(res.body).toMatchObject({ error: 'invalid_token', message: expect.any(String) });
      }
    });

    it('`idp admin-token revoke` refuses an id that is not a UUID in one line', async () => {
      for (const id of ['------------------------------------', '0123456789abcdef0123456789abcdef0123']) {
        const result = await cli(env, handle, 'admin-token', 'revoke', id);
        expect(result.code).toBe(1);
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
        expect(result.stderr).toMatch(/no admin token/);
      }
    });
  });

  describe('exact routes, JSON media type and body size (item 12)', () => {
    it('routes exactly and case-sensitively: other spellings and trailing slashes are 404', async () => {
      for (const path of [
        '/ADMIN/V1/KEYS',
        '/Admin/v1/keys',
        '/admin/V1/keys',
        '/admin/v1/KEYS',
        '/admin/v1/keys/',
        '/admin/v1/',
        '/admin/v1/clients/',
        '/auth/v1/user/',
        '/auth/v1/USER',
        '/AUTH/v1/user',
        '/healthz/',
        '/HEALTHZ',
        '/.well-known/OAUTH-authorization-server',
        '/.well-known/openid-configuration/',
      ]) {
        const res = await rawRequest(server.url, 'GET', path, { headers: { Authorization: `Bearer ${token}` } });
        expect({ path, status: res.status }).toEqual({ path, status: 404 });
      }
      expect((await admin().get('/keys')).status).toBe(200);
      expect((await request(server.url).get('/auth/v1/user')).status).toBe(401);
      expect((await request(server.url).get('/healthz')).status).toBe(200);
    });

    it('requires Content-Type: application/json for JSON bodies (415), but not for a body-less POST', async () => {
      const users = await count('users');
      const tenants = await count('tenants');
      const body = JSON.stringify({ email: 'cross-site@example.com', password: 'correct horse battery' });
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', 'application/json; charset=utf-16', undefined]) {
        for (const path of ['/auth/v1/signup', '/auth/v1/token', '/auth/v1/token?grant_type=refresh_token']) {
          const res = await rawRequest(server.url, 'POST', path, { headers: type === undefined ? {} : { 'Content-Type': type }, body });
          expect({ path, type, status: res.status }).toEqual({ path, type, status: 415 });
          expect(res.body).toEqual({ error: 'unsupported_media_type', message: expect.any(String) });
        }
        const res = await rawRequest(server.url, 'POST', '/admin/v1/tenants', {
          headers: { Authorization: `Bearer ${token}`, ...(type === undefined ? {} : { 'Content-Type': type }) },
          body: JSON.stringify({ id: 'media', name: 'Media' }),
        });
        expect({ type, status: res.status }).toEqual({ type, status: 415 });
        expect(res.body).toEqual({ error: 'unsupported_media_type', message: expect.any(String) });
      }
      // Authentication still comes first at the admin API.
      expect((await rawRequest(server.url, 'POST', '/admin/v1/tenants', { headers: { 'Content-Type': 'text/plain' }, body: '{}' })).status).toBe(401);
      expect(await count('users')).toBe(users);
      expect(await count('tenants')).toBe(tenants);

      // Parameters and case of the media type are fine.
      const signup = await rawRequest(server.url, 'POST', '/auth/v1/signup', { headers: { 'Content-Type': 'Application/JSON; charset=UTF-8' }, body });
      expect(signup.status).toBe(201);
      // A POST without a body needs no Content-Type.
      const rotate = await rawRequest(server.url, 'POST', '/admin/v1/keys/rotate', { headers: { Authorization: `Bearer ${token}` } });
      expect(rotate.status).toBe(409);
      const empty = await rawRequest(server.url, 'POST', '/admin/v1/keys/rotate', { headers: { Authorization: `Bearer ${token}`, 'Content-Length': '0' } });
      expect(empty.status).toBe(409);
    });

    it('answers 413 from Content-Length before reading the body, and closes the connection', async () => {
      for (const [path, auth] of [
        ['/auth/v1/signup', ''],
        ['/auth/v1/token', ''],
        ['/admin/v1/tenants', `Authorization: Bearer ${token}\r\n`],
      ] as const) {
        // 10 MB declared, not one byte of it sent: the answer cannot have waited for the body.
        const head = `POST ${path} HTTP/1.1\r\nHost: idp.test\r\n${auth}Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n`;
        const exchange = await socketExchange(server.url, head);
        expect(exchange.response).toMatch(/^HTTP\/1\.1 413 /);
        expect(exchange.response).toMatch(/\r\nconnection: close\r\n/i);
        expect(exchange.response).toContain('"error":"payload_too_large"');
        expect(exchange.closedByServer).toBe(true);
      }
    });

    it('answers 413 to a chunked body as soon as it passes 64 KiB, and closes the connection', async () => {
      const chunk = `{"name":"${'x'.repeat(70 * 1024)}`;
      const head = `POST /auth/v1/signup HTTP/1.1\r\nHost: idp.test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n`;
      const exchange = await socketExchange(server.url, head);
      expect(exchange.response).toMatch(/^HTTP\/1\.1 413 /);
      expect(exchange.closedByServer).toBe(true);
    });
  });

  describe('deeply nested JSON (issue 15)', () => {
    /** `prefix` + `levels` nested arrays (or `{"a":` objects) + `suffix`, one JSON text. */
    const nested = (prefix: string, levels: number, suffix: string, kind: 'array' | 'object' = 'array') =>
      kind === 'array' ? `${prefix}${'['.repeat(levels)}${']'.repeat(levels)}${suffix}` : `${prefix}${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}${suffix}`;
    /** The most levels of `kind` that fit, with prefix and suffix, in a 64 KiB body. */
    const deepest = (prefix: string, suffix: string, kind: 'array' | 'object') =>
      Math.floor((64 * 1024 - prefix.length - suffix.length - (kind === 'array' ? 0 : 1)) / (kind === 'array' ? 2 : 6));
    const bodies = (prefix: string, suffix: string) => {
      const cases = [nested(prefix, 33, suffix), nested(prefix, 5_000, suffix), nested(prefix, 5_000, suffix, 'object')];
      for (const kind of ['array', 'object'] as const) {
        const body = nested(prefix, deepest(prefix, suffix, kind), suffix, kind);
        expect(body.length).toBeLessThanOrEqual(64 * 1024);
        expect(body.length).toBeGreaterThan(64 * 1024 - 6);
        cases.push(body);
      }
      return cases;
    };
    const send = (method: string, path: string, body: string, auth = true) =>
      rawRequest(server.url, method, path, { headers: { 'Content-Type': 'application/json', ...(auth && { Authorization: `Bearer ${token}` }) }, body });
    const expectRefused = (res: Awaited<ReturnType<typeof send>>, what: string) => {
      expect({ what, status: res.status }).toEqual({ what, status: 400 });
      expect(res.body).toEqual({ error: 'invalid_request', message: 'body is nested more than 32 levels deep' });
    };

    it('refuses a deep jwks in POST /admin/v1/clients with 400, creating nothing', async () => {
      const before = await count('oauth_clients');
      const prefix = '{"name":"deep","scopes":"read","token_endpoint_auth_method":"private_key_jwt","jwks":';
      for (const body of bodies(prefix, '}')) expectRefused(await send('POST', '/admin/v1/clients', body), `${body.length} bytes`);
      for (const body of bodies(`${prefix}{"keys":`, '}}')) expectRefused(await send('POST', '/admin/v1/clients', body), `${body.length} bytes in keys`);
      expect(await count('oauth_clients')).toBe(before);
      // 32 levels are read (and the JWKS then refused for what it is, not for its depth).
      const shallow = await send('POST', '/admin/v1/clients', nested(prefix, 31, '}'));
      expect(shallow.status).toBe(400);
      expect((shallow.body as { message: string }).message).toMatch(/JSON Web Key Set/);
      expect(await count('oauth_clients')).toBe(before);
    });

    it('refuses a deep jwks in PATCH /admin/v1/clients/{id} with 400, leaving the client as it was', async () => {
      const created = await admin().post('/clients', { name: 'shallow', scopes: 'read' });
      expect(created.status).toBe(201);
      const path = `/admin/v1/clients/${created.body.client_id}`;
      const row = () => handle.db.selectFrom('oauth_clients').selectAll().where('id', '=', created.body.client_id).executeTakeFirstOrThrow();
      const before = await row();
      for (const body of bodies('{"token_endpoint_auth_method":"private_key_jwt","jwks":', '}')) expectRefused(await send('PATCH', path, body), `${body.length} bytes`);
      expect(await row()).toEqual(before);
    });

    it('refuses the same depth at every JSON endpoint, e.g. POST /auth/v1/signup', async () => {
      const before = await count('users');
      for (const body of bodies('{"email":"deep@example.com","password":"correct horse battery","x":', '}')) {
        expectRefused(await send('POST', '/auth/v1/signup', body, false), `${body.length} bytes`);
      }
      expect(await count('users')).toBe(before);
    });
  });

  describe('discovery scopes (item 16)', () => {
    const metadata = async () => {
      const res = await request(server.url).get('/.well-known/oauth-authorization-server');
      expect(res.status).toBe(200);
      const other = await request(server.url).get('/.well-known/openid-configuration');
      expect(other.body.scopes_supported).toEqual(res.body.scopes_supported);
      return res.body.scopes_supported as string[];
    };

    it("lists only enabled tenantless clients' scopes, never a tenant's", async () => {
      expect((await admin().post('/tenants', { id: 'globex', name: 'Globex' })).status).toBe(201);
      expect((await admin().post('/clients', { name: 'public', scopes: 'pub:read pub:write' })).status).toBe(201);
      expect((await admin().post('/clients', { name: 'again', scopes: 'pub:write pub:admin' })).status).toBe(201);
      expect((await admin().post('/clients', { name: 'globex', scopes: 'globex:secret-project', tenant_id: 'globex' })).status).toBe(201);
      const disabled = await admin().post('/clients', { name: 'old', scopes: 'old:scope' });
      expect((await admin().patch(`/clients/${disabled.body.client_id}`, { disabled: true })).status).toBe(200);
      const scopes = await metadata();
      expect(scopes).toEqual(expect.arrayContaining(['pub:admin', 'pub:read', 'pub:write']));
      expect(scopes).not.toContain('globex:secret-project');
      expect(scopes).not.toContain('old:scope');
      expect(scopes).toEqual([...new Set(scopes)].sort());
    });

    it('stays bounded: at most 100 scopes, sorted and distinct, however many clients have how many', async () => {
      for (let i = 0; i < 3; i++) {
        const scopes = Array.from({ length: 60 }, (_, j) => `bulk:${String(i * 50 + j).padStart(4, '0')}:${'s'.repeat(150)}`);
        expect((await admin().post('/clients', { name: `bulk ${i}`, scopes })).status).toBe(201);
      }
      const scopes = await metadata();
      expect(scopes).toHaveLength(100);
      expect(scopes).toEqual([...new Set(scopes)].sort());
    });
  });
});
