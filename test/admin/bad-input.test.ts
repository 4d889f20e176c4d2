import crypto from 'node:crypto';
import express from 'express';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import request from 'supertest';
import { adminRoutes } from '../../src/admin/routes';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { apiErrorHandler } from '../../src/http/api-error';
import { createLogger } from '../../src/observability/logger';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { adminToken, cli, signUp, testEnv } from '../users/support';
import { rawRequest, type RawResponse } from './http';

const b64 = (text: string) => Buffer.from(text).toString('base64url');
const UUID = '3f2b8c1e-5d4a-4e2b-9c1d-7a6b5c4d3e2f';

interface RouterLayer {
  route?: { path: string; methods: Record<string, boolean> };
  rawPath?: string;
  handle?: { stack?: RouterLayer[] };
}

/** Every route of the admin API, read from the router itself (mounted sub-routers included): a route added later is swept too. */
function adminRouteTable(): Array<{ method: string; path: string; params: string[] }> {
  const router = adminRoutes({ deps: () => undefined, logger: createLogger('silent') });
  const table: Array<{ method: string; path: string; params: string[] }> = [];
  const walk = (stack: RouterLayer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        const path = `${prefix}${layer.route.path === '/' && prefix !== '' ? '' : layer.route.path}`;
        for (const method of Object.keys(layer.route.methods)) {
          table.push({ method: method.toUpperCase(), path, params: [...path.matchAll(/:(\w+)/g)].map((m) => m[1] as string) });
        }
      } else if (Array.isArray(layer.handle?.stack) && typeof layer.rawPath === 'string') {
        walk(layer.handle.stack, `${prefix}${layer.rawPath === '/' ? '' : layer.rawPath}`);
      }
    }
  };
  walk(router.stack as RouterLayer[], '');
  return table;
}

/**
 * Values no path parameter may take, whatever the route: NUL, control characters (C0, DEL, C1, a
 * bidi override), bytes that are not UTF-8 (a lone surrogate's among them), an overlong encoding.
 */
const BAD_PATH_VALUES = ['%00', 'a%00b', '%0A', '%1B%5B31m', '%7F', '%C2%85', '%E2%80%AE', '%ED%A0%80', '%FF', '%C0%AF'];
/** Well-formed text of the wrong shape, per parameter: ids that are not UUIDs where the id is a UUID, and so on. */
const WRONG_SHAPE: Record<string, string[]> = {
  userId: ['not-a-uuid', '------------------------------------', '0123456789abcdef0123456789abcdef0123', '3f2b8c1e-5d4a-4e2b-9c1d-7a6b5c4d3e2g', `${UUID}0`, 'u'.repeat(300)],
  tenantId: ['_acme', 'ac%20me', '.hidden', 'a'.repeat(65)],
  clientId: ['a.b', 'a%20b', 'a!b', 'c'.repeat(129)],
  kid: ['a.b', 'a!b', 'k'.repeat(129)],
};
/** Query strings no route may accept, whatever parameters it reads. */
const BAD_QUERIES = ['x=%00', 'x=a%00b', '%00=1', 'x=%ED%A0%80', 'x=%FF', 'x[y]=%00'];
/** Bodies no route may accept (the JSON texts are sent verbatim, escapes included). */
const BAD_BODIES: Array<string | Buffer> = [
  '{"name":"\\u0000"}',
  '{"name":"a\\u0000b"}',
  '{"name":"\\ud800"}',
  '{"name":"\\udc00x"}',
  '{"\\u0000":1}',
  '{"\\ud800":1}',
  '{"scopes":["a\\u0000"]}',
  '{"a":{"b":["\\ud800"]}}',
  '"text"',
  '42',
  'null',
  '{',
  '{"a":1}garbage',
  Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
];
/** Cursors this API never handed out: tampered, foreign, old-format, out of range. */
const TAMPERED_CURSORS = [
  b64('2026-11-26T00:00:00.000Z|x'),
  b64(`2026-11-26T00:00:00.000Z|${UUID}`),
  b64(`-005000-01-01T00:00:00.000Z|${UUID}`),
  b64(JSON.stringify({ v: 1, k: 'users', at: '-005000-01-01T00:00:00.000Z', id: UUID })),
  b64(JSON.stringify({ v: 1, k: 'users', at: '+275760-09-13T00:00:00.000Z', id: UUID })),
  b64(JSON.stringify({ v: 1, k: 'users', at: '2026-02-31T00:00:00.000Z', id: UUID })),
  b64(JSON.stringify({ v: 1, k: 'users', at: '2026-11-26T00:00:00.000Z', id: 'x' })),
  b64(JSON.stringify({ v: 1, k: 'users', at: '2026-11-26T00:00:00.000Z', id: '\u0000' })),
  b64(JSON.stringify({ v: 2, k: 'users', at: '2026-11-26T00:00:00.000Z', id: UUID })),
  b64(JSON.stringify({ v: 1, k: 'users', at: '2026-11-26T00:00:00.000Z', id: UUID, extra: 1 })),
  b64(JSON.stringify([1])),
  b64('{'),
  'garbage!',
  '%00',
  'x'.repeat(500),
];

describe('bad input at /admin/v1 and /auth/v1: 400 with the standard body, nothing changed', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let token: string;
  let clientId: string;
  let clientSecret: string;
  let userId: string;
  let userToken: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), handle);
    token = (await adminToken(env, handle, '--super')).token;
    const created = await request(server.url).post('/admin/v1/clients').set('Authorization', `Bearer ${token}`).send({ name: 'sweep', scopes: 'read' });
    expect(created.status).toBe(201);
    clientId = created.body.client_id;
    clientSecret = created.body.client_secret;
    expect((await request(server.url).post('/admin/v1/tenants').set('Authorization', `Bearer ${token}`).send({ id: 'acme', name: 'Acme' })).status).toBe(201);
    const user = await signUp(server.url);
    userId = user.user.id;
    userToken = user.access_token;
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  /** Everything a refused request must leave as it was. */
  const snapshot = async () => {
    const tables = ['oauth_clients', 'tenants', 'users', 'sessions', 'refresh_tokens', 'admin_tokens', 'signing_keys', 'audit_events'] as const;
    const state: Record<string, unknown> = {};
    for (const table of tables) {
      state[table] = (await sql<Record<string, unknown>>`select * from ${sql.table(table)} order by 1`.execute(handle.db)).rows;
    }
    return state;
  };

  const sample = (param: string) => ({ kid: 'AAAAAAAAAAAAAAAA', clientId, userId, tenantId: 'acme' })[param] ?? 'sample';
  const fill = (path: string, values: Record<string, string> = {}) => path.replace(/:(\w+)/g, (_m, name: string) => values[name] ?? sample(name));
  const send = (method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}) =>
    rawRequest(server.url, method, path, {
      headers: { Authorization: `Bearer ${token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers },
      body,
    });

  /** The standard refusal: 400, JSON `{error: "invalid_request", message}` and nothing else. */
  const expectBadRequest = (res: RawResponse, what: string) => {
    const summary = `${what} → ${res.status} ${res.text.slice(0, 200)}`;
    expect({ summary, status: res.status }).toEqual({ summary, status: 400 });
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(Object.keys(res.body as object).sort()).toEqual(['error', 'message']);
    expect(res.body).toMatchObject({ error: 'invalid_request', message: expect.any(String) });
  };

  it('reads the route table from the router: every documented admin route is in the sweep', () => {
    const routes = adminRouteTable().map((r) => `${r.method} ${r.path}`);
    for (const route of [
      'GET /keys',
      'POST /keys/rotate',
      'POST /keys/:kid/revoke',
      'GET /clients',
      'POST /clients',
      'GET /clients/:clientId',
      'PATCH /clients/:clientId',
      'DELETE /clients/:clientId',
      'POST /clients/:clientId/secret',
      'GET /users',
      'PATCH /users/:userId',
      'GET /tenants',
      'GET /tenants/:tenantId',
      'POST /tenants',
      'DELETE /tenants/:tenantId',
      'GET /audit',
    ]) {
      expect(routes).toContain(route);
    }
  });

  it('sweeps every admin route with bad path parameters, query strings and bodies', async () => {
    const before = await snapshot();
    let sent = 0;
    for (const route of adminRouteTable()) {
      const body = route.method === 'GET' ? undefined : '{}';
      for (const param of route.params) {
        for (const value of [...BAD_PATH_VALUES, ...(WRONG_SHAPE[param] ?? [])]) {
          const path = `/admin/v1${fill(route.path, { [param]: value })}`;
          expectBadRequest(await send(route.method, path, body), `${route.method} ${path}`);
          sent++;
        }
      }
      for (const query of BAD_QUERIES) {
        const path = `/admin/v1${fill(route.path)}?${query}`;
        expectBadRequest(await send(route.method, path, body), `${route.method} ${path}`);
        sent++;
      }
      if (route.method !== 'GET') {
        for (const bad of BAD_BODIES) {
          const path = `/admin/v1${fill(route.path)}`;
          expectBadRequest(await send(route.method, path, bad), `${route.method} ${path} ${JSON.stringify(bad.toString())}`);
          sent++;
        }
      }
    }
    expect(sent).toBeGreaterThan(300);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses bad filters, limits, dates and tampered cursors at the paged lists', async () => {
    const before = await snapshot();
    const queries = [
      '/users?email=a%00%40b.co',
      '/users?tenant_id=%00',
      '/users?tenant_id=a%20b',
      '/users?limit=0',
      '/users?limit=abc',
      '/users?limit=1e400',
      '/users?limit=501',
      '/users?email=a&email=b',
      '/audit?actor=%00',
      '/audit?action=%00',
      '/audit?target=a%00',
      '/audit?since=yesterday',
      '/audit?since=2026-02-31T00:00:00Z',
      '/audit?until=-005000-01-01T00:00:00Z',
      '/audit?since=%00',
      '/audit?limit=-1',
      '/clients?limit=0',
      '/clients?limit=501',
      '/clients?limit=abc',
      ...TAMPERED_CURSORS.flatMap((cursor) => [`/users?cursor=${cursor}`, `/audit?cursor=${cursor}`, `/clients?cursor=${cursor}`]),
    ];
    for (const query of queries) expectBadRequest(await send('GET', `/admin/v1${query}`), query);
    expect(await snapshot()).toEqual(before);
  });

  it('hands out opaque cursors that page correctly and only where they came from', async () => {
    await signUp(server.url);
    await signUp(server.url);
    const first = await send('GET', '/admin/v1/users?limit=1');
    const cursor = (first.body as { next_cursor: string }).next_cursor;
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    const second = await send('GET', `/admin/v1/users?limit=1&cursor=${cursor}`);
    expect(second.status).toBe(200);
    const [a] = (first.body as { users: Array<{ id: string }> }).users;
    const [b] = (second.body as { users: Array<{ id: string }> }).users;
    expect(b?.id).not.toBe(a?.id);
    // A users cursor is not an audit cursor.
    expectBadRequest(await send('GET', `/admin/v1/audit?cursor=${cursor}`), 'users cursor at /audit');
    const audit = await send('GET', '/admin/v1/audit?limit=1');
    const auditCursor = (audit.body as { next_cursor: string }).next_cursor;
    expect((await send('GET', `/admin/v1/audit?limit=1&cursor=${auditCursor}`)).status).toBe(200);
    expectBadRequest(await send('GET', `/admin/v1/users?cursor=${auditCursor}`), 'audit cursor at /users');
    // Nor is either a clients cursor, or one of those theirs.
    expectBadRequest(await send('GET', `/admin/v1/clients?cursor=${cursor}`), 'users cursor at /clients');
    expectBadRequest(await send('GET', `/admin/v1/clients?cursor=${auditCursor}`), 'audit cursor at /clients');
    await send('POST', '/admin/v1/clients', JSON.stringify({ name: 'second', scopes: 'read' }));
    const clientsCursor = ((await send('GET', '/admin/v1/clients?limit=1')).body as { next_cursor: string }).next_cursor;
    expect((await send('GET', `/admin/v1/clients?limit=1&cursor=${clientsCursor}`)).status).toBe(200);
    expectBadRequest(await send('GET', `/admin/v1/users?cursor=${clientsCursor}`), 'clients cursor at /users');
  });

  it('refuses every single-bit flip and every truncation of a real cursor: cursors are authenticated (issue 15)', async () => {
    await signUp(server.url);
    const first = await send('GET', '/admin/v1/users?limit=1');
    const cursor = (first.body as { next_cursor: string }).next_cursor;
    expect((await send('GET', `/admin/v1/users?limit=1&cursor=${cursor}`)).status).toBe(200);
    const bytes = Buffer.from(cursor, 'base64url');
    const edited = new Set<string>();
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const copy = Buffer.from(bytes);
      copy[bit >> 3] = (copy[bit >> 3] as number) ^ (1 << (bit & 7));
      edited.add(copy.toString('base64url'));
    }
    // A spare low bit of the last character: other text, the same bytes.
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    if (bytes.length % 3 !== 0) edited.add(`${cursor.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(cursor.slice(-1)) ^ 1]}`);
    for (let length = 1; length < cursor.length; length++) edited.add(cursor.slice(0, length));
    edited.delete(cursor);
    expect(edited.size).toBeGreaterThan(bytes.length * 8);
    const before = await snapshot();
    const accepted: string[] = [];
    const pending = [...edited];
    const worker = async () => {
      for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
        const res = await send('GET', `/admin/v1/users?limit=1&cursor=${next}`);
        const body = res.body as { error?: string; message?: string } | undefined;
        if (res.status !== 400 || body?.error !== 'invalid_request' || !/^cursor: /.test(body.message ?? '')) accepted.push(`${next} → ${res.status}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(accepted).toEqual([]);
    expect(await snapshot()).toEqual(before);
  });

  it('repeats at most a short, escaped prefix of what the caller sent in any error (issue 15)', async () => {
    // A response holding any 33 characters of it in a row repeats more than the 32 allowed.
    const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    const LONG = Array.from({ length: 200 }, (_, i) => ALPHABET[(i * 7) % ALPHABET.length]).join('');
    const echoes = (text: string) => Array.from({ length: LONG.length - 32 }, (_, i) => LONG.slice(i, i + 33)).some((window) => text.includes(window));
    const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
    const apiKey = await send('POST', '/admin/v1/api-keys', JSON.stringify({ client_id: clientId, name: 'echo' }));
    expect(apiKey.status).toBe(201);
    const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: LONG, use: 'sig', alg: 'RS256' };
    const FORM = { 'Content-Type': 'application/x-www-form-urlencoded' };
    const form = (fields: string) => ['POST', '/oauth/token', fields, { ...FORM, Authorization: basic }] as const;
    const ADMIN = { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` };
    const json = (method: string, path: string, body: unknown, headers: Record<string, string> = ADMIN) => [method, path, JSON.stringify(body), headers] as const;
    const requests: Array<readonly [string, string, string | undefined, Record<string, string>]> = [
      form(`grant_type=${LONG}`),
      form(`grant_type=client_credentials&scope=${LONG}`),
      form(`${LONG}=1&${LONG}=2`),
      // Token exchange takes no client authentication.
      ['POST', '/oauth/token', `grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=${(apiKey.body as { key: string }).key}&subject_token_type=urn:ietf:params:oauth:token-type:access_token&scope=${LONG}`, FORM],
      json('POST', '/admin/v1/clients', { name: 'echo', scopes: [`${LONG.slice(0, 199)}"`] }),
      json('POST', '/admin/v1/clients', { name: 'echo', scopes: 'read', audiences: [`${LONG}\u0001`] }),
      json('POST', '/admin/v1/clients', { name: 'echo', scopes: 'read', tenant_id: LONG.slice(0, 64) }),
      json('POST', '/admin/v1/clients', { name: 'echo', scopes: 'read', [LONG]: 1 }),
      json('POST', '/admin/v1/clients', { name: 'echo', scopes: 'read', token_endpoint_auth_method: 'private_key_jwt', jwks_uri: LONG }),
      json('POST', '/admin/v1/clients', { name: 'echo', scopes: 'read', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk, jwk] } }),
      json('POST', '/admin/v1/clients', { name: { [LONG]: '\u0000' } }),
      ['GET', `/admin/v1/clients/${LONG.slice(0, 128)}`, undefined, ADMIN],
      ['GET', `/admin/v1/tenants/${LONG.slice(0, 64)}`, undefined, ADMIN],
      json('PATCH', `/admin/v1/users/${userId}`, { tenant_id: LONG.slice(0, 64) }),
      ['GET', `/admin/v1/api-keys?${LONG}=1`, undefined, ADMIN],
      json('POST', '/admin/v1/api-keys', { client_id: LONG.slice(0, 128), name: 'k' }),
      json('POST', '/admin/v1/api-keys', { client_id: clientId, name: 'k', scopes: [LONG] }),
      ['GET', `/admin/v1/api-keys/${LONG}`, undefined, ADMIN],
      json('POST', '/auth/v1/token', { grant_type: LONG }, { 'Content-Type': 'application/json' }),
      json('POST', '/auth/v1/api-keys', { name: 'k', [LONG]: 1 }, { 'Content-Type': 'application/json', Authorization: `Bearer ${userToken}` }),
    ];
    const echoed: string[] = [];
    for (const [method, path, body, headers] of requests) {
      const res = await rawRequest(server.url, method, path, { headers, body });
      expect({ path, body, status: Math.floor(res.status / 100) }).toEqual({ path, body, status: 4 });
      if (echoes(res.text)) echoed.push(`${method} ${path.slice(0, 60)} → ${res.status} ${res.text}`);
    }
    expect(echoed).toEqual([]);
    // What is shown is escaped: a control sequence cannot reach a terminal that prints the message.
    const escaped = await rawRequest(server.url, 'POST', '/oauth/token', { headers: { ...FORM, Authorization: basic }, body: 'grant_type=%1B%5B31m%C3%A9' });
    expect(escaped.body).toEqual({ error: 'unsupported_grant_type', error_description: 'unsupported grant_type "\\u001b[31m\\u00e9"' });
  });

  it('bounds the secret grace period at 30 days (admin API and CLI), changing nothing when refused', async () => {
    const before = await snapshot();
    for (const grace of ['99999999999999d', '31d', '2592000001ms', '721h', '-1d', '1e3d', 'soon', '\u0000']) {
      expectBadRequest(await send('POST', `/admin/v1/clients/${clientId}/secret`, JSON.stringify({ grace })), `grace ${grace}`);
    }
    for (const grace of ['99999999999999d', '31d', '721h']) {
      const result = await cli(env, handle, 'clients', 'rotate-secret', clientId, '--grace', grace, '--json');
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(/at most 30d/);
    }
    expect(await snapshot()).toEqual(before);
    const ok = await send('POST', `/admin/v1/clients/${clientId}/secret`, JSON.stringify({ grace: '30d' }));
    expect(ok.status).toBe(200);
    const until = Date.parse((ok.body as { previous_secret_valid_until: string }).previous_secret_valid_until);
    expect(Math.abs(until - (Date.now() + 30 * 86_400_000))).toBeLessThan(120_000);
  });

  it('refuses control characters and lone surrogates in every name, at the API and in the CLI', async () => {
    const before = await snapshot();
    const badNames = ['a\u0001b', 'red \u001b[31malert', 'two\nlines', 'tab\there', 'del\u007f', 'nel\u0085', 'evil\u202etxt.exe', 'a\u2028b', 'lone \ud800', '   ', ''];
    for (const name of badNames) {
      const what = JSON.stringify(name);
      expectBadRequest(await send('POST', '/admin/v1/clients', JSON.stringify({ name, scopes: 'read' })), `client name ${what}`);
      expectBadRequest(await send('PATCH', `/admin/v1/clients/${clientId}`, JSON.stringify({ name })), `client rename ${what}`);
      expectBadRequest(await send('POST', '/admin/v1/tenants', JSON.stringify({ id: 'named', name })), `tenant name ${what}`);
      for (const argv of [
        ['clients', 'create', '--name', name, '--scope', 'read'],
        ['tenants', 'create', '--id', 'named', '--name', name],
        ['admin-token', 'issue', '--super', '--description', name],
      ]) {
        const result = await cli(env, handle, ...argv, '--json');
        expect({ argv, code: result.code }).toEqual({ argv, code: 1 });
        expect(result.stdout).toBe('');
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
        // The refusal never echoes the raw control characters back to the terminal.
        // eslint-disable-next-line no-control-regex
        expect(result.stderr).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f]/);
      }
    }
    expect(await snapshot()).toEqual(before);
  });

  it('refuses bad input at /auth/v1 with the standard body', async () => {
    const before = await snapshot();
    const cases: Array<[string, string, string | undefined]> = [
      ['POST', '/auth/v1/signup', '{"email":"a\\u0000@b.co","password":"correct horse battery"}'],
      ['POST', '/auth/v1/signup', '{"email":"\\ud800@b.co","password":"correct horse battery"}'],
      ['POST', '/auth/v1/signup', '{"email":"new@b.co","password":"correct horse \\ud800"}'],
      ['POST', '/auth/v1/signup', '{"email":"new@b.co","password":"correct horse battery","\\u0000":1}'],
      ['POST', '/auth/v1/token', '{"email":"a\\u0000@b.co","password":"x"}'],
      ['POST', '/auth/v1/token?grant_type=refresh_token', '{"refresh_token":"\\u0000"}'],
      ['POST', '/auth/v1/token?grant_type=%00', '{"email":"a@b.co","password":"x"}'],
      ['POST', '/auth/v1/token?x=%ED%A0%80', '{"email":"a@b.co","password":"x"}'],
      ['POST', '/auth/v1/signup', '['],
      ['GET', '/auth/v1/user?x=%00', undefined],
    ];
    for (const [method, path, body] of cases) {
      const res = await rawRequest(server.url, method, path, { headers: body === undefined ? {} : { 'Content-Type': 'application/json' }, body });
      expectBadRequest(res, `${method} ${path} ${body ?? ''}`);
    }
    expect(await snapshot()).toEqual(before);
  });

  it('the one serializer answers a Postgres data error with 400, never 500', async () => {
    // A real error from the real database, thrown by a real route through the real error handler.
    const errors: unknown[] = [];
    for (const statement of [sql`select 'not-a-uuid'::uuid`, sql`select ${'a\u0000b'}::text`, sql`select ${'{"a":"\\ud800"}'}::jsonb`, sql`select '-5000-01-01'::timestamptz`]) {
      errors.push(await statement.execute(handle.db).then(() => undefined, (error: unknown) => error));
    }
    expect(errors.every((e) => e instanceof Error)).toBe(true);
    const app = express();
    app.get('/fail/:n', (req) => {
      throw errors[Number(req.params.n)];
    });
    app.use(apiErrorHandler(createLogger('silent')));
    const listener = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => listener.once('listening', resolve));
    try {
      const url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
      for (const [index, error] of errors.entries()) {
        const res = await rawRequest(url, 'GET', `/fail/${index}`);
        expectBadRequest(res, `${(error as { code?: string }).code} ${(error as Error).message}`);
        expect(res.text).not.toMatch(/uuid|jsonb|syntax|byte/i);
      }
    } finally {
      await new Promise((resolve) => listener.close(resolve));
    }
  });
});
