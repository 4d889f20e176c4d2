import request from 'supertest';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { matchesOpenApi } from '../helpers/openapi';
import { adminToken, cli, signIn, signUp, testEnv } from '../users/support';

describe('/admin/v1 and `idp admin-token` / `idp tenants`', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let superToken: { id: string; token: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), handle);
    superToken = await adminToken(env, handle, '--super', '--description', 'tests');
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const admin = (token = superToken.token) => ({
    // Every answer must match the OpenAPI document (test/helpers/openapi.ts).
    get: (path: string) => request(server.url).get(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`).expect(matchesOpenApi),
    post: (path: string, body: object = {}) => request(server.url).post(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`).send(body).expect(matchesOpenApi),
    patch: (path: string, body: object) => request(server.url).patch(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`).send(body).expect(matchesOpenApi),
    delete: (path: string) => request(server.url).delete(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`).expect(matchesOpenApi),
  });

  it('authenticates before it reads a body: 401 for an anonymous malformed body, then 400 and 413 for a known caller', async () => {
    const send = (body: string, token?: string) => {
      const req = request(server.url).post('/admin/v1/tenants').set('Content-Type', 'application/json');
      return (token ? req.set('Authorization', `Bearer ${token}`) : req).send(body);
    };
    expect((await send('{not json')).status).toBe(401);
    const malformed = await send('{not json', superToken.token);
    expect(malformed.status).toBe(400);
    expect(malformed.body.error).toBe('invalid_request');
    const oversized = await send(JSON.stringify({ name: 'x'.repeat(70 * 1024) }), superToken.token);
    expect(oversized.status).toBe(413);
    expect((await admin().get('/tenants')).body.tenants.map((t: { name: string }) => t.name)).not.toContain('x'.repeat(70 * 1024));
  });

  it('issues, lists and revokes admin tokens from the CLI, with the documented shape and claims', async () => {
    const issued = await cli(env, handle, 'admin-token', 'issue', '--permission', 'keys:read', '--permission', 'audit:read', '--ttl', '30m', '--json');
    expect(issued.code).toBe(0);
    const body = JSON.parse(issued.stdout);
    expect(Object.keys(body).sort()).toEqual(['expires_at', 'id', 'permissions', 'token']);
    expect(body.permissions).toEqual(['keys:read', 'audit:read']);
    const [header, payload] = (body.token as string).split('.').slice(0, 2).map((p: string) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    expect(header).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(payload).toMatchObject({ iss: 'http://idp.test', aud: 'http://idp.test/admin', token_type: 'admin', permissions: ['keys:read', 'audit:read'], is_super_admin: false, jti: body.id });
    expect(payload.exp - payload.iat).toBe(1800);

    const list = await cli(env, handle, 'admin-token', 'list', '--json');
    const listed = JSON.parse(list.stdout) as Array<Record<string, unknown>>;
    expect(listed.find((t) => t.id === body.id)).toMatchObject({ revoked_at: null, is_super_admin: false });
    expect(list.stdout).not.toContain(body.token);

    const revoke = await cli(env, handle, 'admin-token', 'revoke', body.id, '--json');
    expect(revoke.code).toBe(0);
    expect(JSON.parse(revoke.stdout).revoked).toBe(body.id);
    expect((await admin(body.token).get('/keys')).status).toBe(401);
    const twice = await cli(env, handle, 'admin-token', 'revoke', body.id);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/already revoked/);
  });

  it('refuses bad admin-token requests with one line and nothing issued', async () => {
    const before = (await handle.db.selectFrom('admin_tokens').select('id').execute()).length;
    for (const args of [
      ['--permission', 'keys:everything'],
      ['--super', '--permission', 'keys:read'],
      [],
      ['--super', '--ttl', '30d'],
      ['--super', '--ttl', 'soon'],
    ]) {
      const result = await cli(env, handle, 'admin-token', 'issue', ...args, '--json');
      expect(result.code).not.toBe(0);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    const ttl = await cli(env, handle, 'admin-token', 'issue', '--super', '--ttl', '30d');
    expect(ttl.stderr).toMatch(/exceeds the key retention IDP_KEY_RETENTION \(70m\)/);
    expect((await handle.db.selectFrom('admin_tokens').select('id').execute()).length).toBe(before);
  });

  it('lists, rotates and revokes keys through the same lifecycle as the CLI', async () => {
    const listed = await admin().get('/keys');
    expect(listed.status).toBe(200);
    const current = listed.body.keys.find((k: { state: string }) => k.state === 'current');
    const early = await admin().post('/keys/rotate', { force: false });
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({ error: 'conflict', safe_at: expect.any(String) });
    const bad = await admin().post('/keys/rotate', { force: 'yes' });
    expect(bad.status).toBe(400);

    const rotated = await admin().post('/keys/rotate', { force: true });
    expect(rotated.status).toBe(200);
    expect(rotated.body.changes.map((c: { action: string }) => c.action)).toEqual(['deactivated', 'promoted', 'created-next']);
    expect(server.services.keys.current.kid).not.toBe(current.kid);

    const revoked = await admin().post(`/keys/${current.kid}/revoke`, { reason: 'drill' });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ revoked: current.kid, previous_state: 'previous' });
    const jwks = await request(server.url).get('/.well-known/jwks.json');
    expect(jwks.body.keys.map((k: { kid: string }) => k.kid)).not.toContain(current.kid);
    const events = await handle.db.selectFrom('audit_events').select(['actor', 'action', 'target']).where('actor', '=', `admin-token:${superToken.id}`).execute();
    expect(events).toEqual(expect.arrayContaining([{ actor: `admin-token:${superToken.id}`, action: 'key.revoked', target: current.kid }]));
    // The admin token was signed by the key just revoked: it is refused from now on, as every token of that key.
    expect((await admin().get('/keys')).status).toBe(401);
    superToken = await adminToken(env, handle, '--super');
    expect((await admin().post('/keys/no-such-kid/revoke')).status).toBe(404);
  });

  it('lists users in pages and disables one, which ends its sessions', async () => {
    const a = await signUp(server.url);
    await signUp(server.url);
    await signUp(server.url);
    const page1 = await admin().get('/users?limit=2');
    expect(page1.status).toBe(200);
    expect(page1.body.users).toHaveLength(2);
    expect(JSON.stringify(page1.body)).not.toMatch(/password/);
    const page2 = await admin().get(`/users?limit=2&cursor=${page1.body.next_cursor}`);
    expect(page2.body.users.length).toBeGreaterThanOrEqual(1);
    const ids = [...page1.body.users, ...page2.body.users].map((u: { id: string }) => u.id);
    expect(new Set(ids).size).toBe(ids.length);
    const byEmail = await admin().get(`/users?email=${encodeURIComponent(a.user.email.toUpperCase())}`);
    expect(byEmail.body.users.map((u: { id: string }) => u.id)).toEqual([a.user.id]);

    const disabled = await admin().patch(`/users/${a.user.id}`, { disabled: true, role: 'support' });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ id: a.user.id, role: 'support', disabled_at: expect.any(String) });
    expect((await request(server.url).get('/auth/v1/user').set('Authorization', `Bearer ${a.access_token}`)).status).toBe(401);
    const refused = await request(server.url).post('/auth/v1/token').send({ email: a.user.email, password: 'correct horse battery' });
    expect(refused.status).toBe(403);
    expect((await admin().patch(`/users/${a.user.id}`, { disabled: false })).body.disabled_at).toBeNull();
    await signIn(server.url, a.user.email);

    expect((await admin().patch('/users/00000000-0000-0000-0000-000000000000', { role: 'x' })).status).toBe(404);
    expect((await admin().patch(`/users/${a.user.id}`, { password_hash: 'x' })).status).toBe(400);
    expect((await admin().patch(`/users/${a.user.id}`, { tenant_id: 'no-such-tenant' })).status).toBe(400);
  });

  it('creates, lists and disables tenants (API and CLI); a disabled tenant’s users lose their tokens, others keep theirs', async () => {
    const created = await admin().post('/tenants', { id: 'acme', name: 'Acme' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: 'acme', name: 'Acme', disabled_at: null });
    expect((await admin().post('/tenants', { id: 'acme', name: 'Again' })).status).toBe(409);
    const cliCreate = await cli(env, handle, 'tenants', 'create', '--id', 'globex', '--name', 'Globex', '--json');
    expect(cliCreate.code).toBe(0);
    const cliList = JSON.parse((await cli(env, handle, 'tenants', 'list', '--json')).stdout) as Array<{ id: string }>;
    expect(cliList.map((t) => t.id)).toEqual(expect.arrayContaining(['acme', 'globex']));
    expect((await admin().get('/tenants')).body.tenants.map((t: { id: string }) => t.id)).toEqual(expect.arrayContaining(['acme', 'globex']));

    const acmeUser = await signUp(server.url);
    const globexUser = await signUp(server.url);
    await admin().patch(`/users/${acmeUser.user.id}`, { tenant_id: 'acme' });
    await admin().patch(`/users/${globexUser.user.id}`, { tenant_id: 'globex' });
    const acmeSession = await signIn(server.url, acmeUser.user.email);
    const globexSession = await signIn(server.url, globexUser.user.email);
    const acmeClaims = JSON.parse(Buffer.from(acmeSession.access_token.split('.')[1] as string, 'base64url').toString());
    expect(acmeClaims.tenant_id).toBe('acme');

    const disabled = await admin().delete('/tenants/acme');
    expect(disabled.status).toBe(200);
    expect(disabled.body.disabled_at).toEqual(expect.any(String));
    const me = (token: string) => request(server.url).get('/auth/v1/user').set('Authorization', `Bearer ${token}`);
    expect((await me(acmeSession.access_token)).status).toBe(401);
    expect((await request(server.url).post('/auth/v1/token').send({ email: acmeUser.user.email, password: 'correct horse battery' })).status).toBe(403);
    expect(
      (await request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: acmeSession.refresh_token })).body.error,
    ).toBe('invalid_grant');
    expect((await me(globexSession.access_token)).status).toBe(200);

    const cliDisable = await cli(env, handle, 'tenants', 'disable', 'globex', '--json');
    expect(cliDisable.code).toBe(0);
    expect((await me(globexSession.access_token)).status).toBe(401);
    expect((await cli(env, handle, 'tenants', 'disable', 'nobody')).code).not.toBe(0);
  });

  it('reads the audit log with filters and pages, and it holds no secrets', async () => {
    const all = await admin().get('/audit?limit=500');
    expect(all.status).toBe(200);
    const actions = new Set(all.body.events.map((e: { action: string }) => e.action));
    for (const action of ['admin_token.issued', 'admin_token.revoked', 'key.revoked', 'user.signed_up', 'user.updated', 'session.revoked', 'tenant.created', 'tenant.disabled']) {
      expect(actions).toContain(action);
    }
    expect(all.body.events[0].request_id === null || typeof all.body.events[0].request_id === 'string').toBe(true);
    const text = JSON.stringify(all.body);
    expect(text).not.toMatch(/correct horse|argon2|eyJ/);

    const filtered = await admin().get('/audit?action=tenant.created');
    expect(filtered.body.events.map((e: { target: string }) => e.target).sort()).toEqual(['acme', 'globex']);
    const first = await admin().get('/audit?limit=3');
    const second = await admin().get(`/audit?limit=3&cursor=${first.body.next_cursor}`);
    expect(first.body.events).toHaveLength(3);
    const seen = [...first.body.events, ...second.body.events].map((e: { id: string }) => e.id);
    expect(new Set(seen).size).toBe(seen.length);
    expect(first.body.events[2].occurred_at >= second.body.events[0].occurred_at).toBe(true);
    expect((await admin().get('/audit?since=yesterday')).status).toBe(400);
    expect((await admin().get('/audit?cursor=garbage')).status).toBe(400);
  });
});
