import request from 'supertest';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { createTenant } from '../../src/tenants/repository';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually, makeClient, type TestClient } from '../oauth/helpers';
import { adminToken, cli, signUp, testEnv, type SignedIn } from '../users/support';
import { introspect } from './support';

/** `/admin/v1/api-keys` (permissions `api-keys:read` / `api-keys:write`) and `idp api-keys create|list|revoke`. */
describe('API keys: admin API and CLI', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let superToken: string;
  let readOnly: string;
  let otherPermission: string;
  let rs: TestClient;
  let svc: TestClient;
  let user: SignedIn;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database, { IDP_API_KEY_MAX_TTL: '30d' });
    server = await startTestServer(loadConfig(env), handle);
    superToken = (await adminToken(env, handle, '--super')).token;
    readOnly = (await adminToken(env, handle, '--permission', 'api-keys:read')).token;
    otherPermission = (await adminToken(env, handle, '--permission', 'clients:read')).token;
    await createTenant(handle.db, { id: 'acme', name: 'Acme', now: new Date() });
    rs = await makeClient(server.services, { name: 'resource server' });
    svc = await makeClient(server.services, { name: 'acme svc', scopes: ['read', 'write'], tenantId: 'acme' });
    user = await signUp(server.url);
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const admin = (token = superToken) => ({
    get: (path: string) => request(server.url).get(`/admin/v1/api-keys${path}`).set('Authorization', `Bearer ${token}`),
    post: (path: string, body?: object) => {
      const req = request(server.url).post(`/admin/v1/api-keys${path}`).set('Authorization', `Bearer ${token}`);
      return body === undefined ? req : req.send(body);
    },
    delete: (path: string) => request(server.url).delete(`/admin/v1/api-keys${path}`).set('Authorization', `Bearer ${token}`),
  });

  it('guards every route with its permission: 401 without a token, 403 without the permission', async () => {
    await request(server.url).get('/admin/v1/api-keys').expect(401);
    await request(server.url).get('/admin/v1/api-keys').set('Authorization', `Bearer ${user.access_token}`).expect(401);
    expect((await admin(otherPermission).get('').expect(403)).body.error).toBe('forbidden');
    await admin(readOnly).get('').expect(200);
    expect((await admin(readOnly).post('', { client_id: svc.id, name: 'x' }).expect(403)).body.message).toContain('api-keys:write');
    await admin(readOnly).delete('/AAAAAAAAAAAAAAAA').expect(403);
    await admin(readOnly).post('/AAAAAAAAAAAAAAAA/revoke').expect(403);
    // Exact routes.
    await admin().get('/').expect(404);
    await request(server.url).get('/admin/v1/API-KEYS').set('Authorization', `Bearer ${superToken}`).expect(404);
  });

  it('creates for a client or a user (once showing the key), shows, revokes with DELETE or POST /revoke, all audited', async () => {
    const created = await admin().post('', { client_id: svc.id, name: 'deploy bot', scopes: 'read', expires_in: '7d' }).expect(201);
    expect(created.body).toMatchObject({ client_id: svc.id, user_id: null, tenant_id: 'acme', scopes: ['read'], status: 'active', created_by: expect.stringMatching(/^admin-token:/) });
    expect(created.body.key).toMatch(/^idpk_/);
    expect((await introspect(server.url, rs, created.body.key).expect(200)).body).toMatchObject({ active: true, sub: svc.id, client_id: svc.id, tenant_id: 'acme', scope: 'read' });
    const shown = await admin(readOnly).get(`/${created.body.id}`).expect(200);
    expect(shown.body).not.toHaveProperty('key');
    expect(shown.body.id).toBe(created.body.id);

    const forUser = await admin().post('', { user_id: user.user.id, name: 'for a user' }).expect(201);
    expect(forUser.body).toMatchObject({ user_id: user.user.id, client_id: null, scopes: ['user'] });

    // Refusals.
    expect((await admin().post('', { name: 'no owner' }).expect(400)).body.message).toContain('exactly one owner');
    await admin().post('', { user_id: user.user.id, client_id: svc.id, name: 'two owners' }).expect(400);
    expect((await admin().post('', { client_id: 'nope', name: 'x' }).expect(400)).body.message).toContain('no client "nope"');
    expect((await admin().post('', { client_id: svc.id, name: 'x', scopes: ['admin'] }).expect(400)).body.message).toContain('admin');
    expect((await admin().post('', { client_id: svc.id, name: 'x', expires_in: '31d' }).expect(400)).body.message).toContain('IDP_API_KEY_MAX_TTL');
    await admin().get('/not-an-id').expect(404);
    await admin().get('/AAAAAAAAAAAAAAAA').expect(404);

    const viaDelete = await admin().delete(`/${created.body.id}`).expect(200);
    expect(viaDelete.body).toMatchObject({ status: 'revoked', revoked_by: expect.stringMatching(/^admin-token:/) });
    expect((await introspect(server.url, rs, created.body.key).expect(200)).body).toEqual({ active: false });
    const viaPost = await admin().post(`/${forUser.body.id}/revoke`, { reason: 'rotated' }).expect(200);
    expect(viaPost.body.status).toBe('revoked');
    const events = await handle.db
      .selectFrom('audit_events')
      .select(['action', 'target', 'reason'])
      .where('target', 'in', [created.body.id, forUser.body.id])
      .orderBy('occurred_at')
      .execute();
    expect(events).toEqual([
      { action: 'api-key.created', target: created.body.id, reason: null },
      { action: 'api-key.created', target: forUser.body.id, reason: null },
      { action: 'api-key.revoked', target: created.body.id, reason: 'revoked through the admin API' },
      { action: 'api-key.revoked', target: forUser.body.id, reason: 'rotated' },
    ]);
  });

  it('lists with owner and tenant filters in keyset pages, refusing a forged cursor', async () => {
    const other = await makeClient(server.services, { name: 'other', scopes: ['read'] });
    for (let i = 0; i < 5; i++) await admin().post('', { client_id: other.id, name: `k${i}` }).expect(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await admin(readOnly).get(`?client_id=${other.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`).expect(200);
      expect(res.body.api_keys.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.api_keys.map((k: { name: string }) => k.name));
      cursor = res.body.next_cursor;
    } while (cursor);
    // The pages walk the same order as one long page (newest first; ties on the time by id), each key once.
    const whole = (await admin(readOnly).get(`?client_id=${other.id}`).expect(200)).body.api_keys.map((k: { name: string }) => k.name);
    expect(seen).toEqual(whole);
    expect([...seen].sort()).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    const byTenant = (await admin().get('?tenant_id=acme').expect(200)).body.api_keys;
    expect(byTenant.length).toBeGreaterThan(0);
    expect(byTenant.every((k: { tenant_id: string }) => k.tenant_id === 'acme')).toBe(true);
    expect((await admin().get(`?user_id=${user.user.id}`).expect(200)).body.api_keys.every((k: { user_id: string }) => k.user_id === user.user.id)).toBe(true);
    for (const forged of ['nonsense', Buffer.from('{"v":1,"k":"users","at":"2026-01-01T00:00:00.000Z","id":"AAAAAAAAAAAAAAAA"}').toString('base64url'), 'a'.repeat(500)]) {
      expect((await admin().get(`?cursor=${forged}`).expect(400)).body.message).toContain('cursor');
    }
    await admin().get('?user_id=not-a-uuid').expect(400);
    await admin().get('?limit=0').expect(400);
    await admin().get('?unknown=1').expect(400);
  });

  it('idp api-keys create | list | revoke', async () => {
    const created = await cli(env, handle, 'api-keys', 'create', '--client', svc.id, '--name', 'cli key', '--scope', 'write', '--expires', '10d', '--json');
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const body = JSON.parse(created.stdout);
    expect(Object.keys(body).sort()).toEqual(['expires_at', 'id', 'key', 'name', 'scopes']);
    expect(body).toMatchObject({ name: 'cli key', scopes: ['write'] });
    expect((await introspect(server.url, rs, body.key).expect(200)).body.scope).toBe('write');

    const text = await cli(env, handle, 'api-keys', 'create', '--user', user.user.id, '--name', 'readable');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^id: +[0-9A-Za-z]{16}\nkey: +idpk_/);

    const listed = await cli(env, handle, 'api-keys', 'list', '--client', svc.id, '--json');
    expect(listed.code).toBe(0);
    const keys = JSON.parse(listed.stdout) as Array<Record<string, unknown>>;
    expect(keys.map((k) => k.id)).toContain(body.id);
    expect(listed.stdout).not.toContain(body.key);
    expect(keys.every((k) => k.client_id === svc.id && !('key' in k))).toBe(true);
    const table = await cli(env, handle, 'api-keys', 'list');
    expect(table.stdout.split('\n')[0]).toMatch(/^ID +NAME +OWNER/);

    const revoked = await cli(env, handle, 'api-keys', 'revoke', body.id, '--json');
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ id: body.id, revoked: true });
    // The CLI is another writer: the server hears of it by notification.
    await eventually(async () => expect((await introspect(server.url, rs, body.key).expect(200)).body).toEqual({ active: false }), 1_000);
    const event = await handle.db.selectFrom('audit_events').selectAll().where('target', '=', body.id).where('action', '=', 'api-key.revoked').executeTakeFirstOrThrow();
    expect(event.actor).toBe('cli');

    // Refusals: one line on stderr, non-zero, nothing changed.
    const refusals: Array<[string[], RegExp]> = [
      [['api-keys', 'create', '--name', 'x'], /--user <id> or --client <id>/],
      [['api-keys', 'create', '--user', user.user.id, '--client', svc.id, '--name', 'x'], /not both/],
      [['api-keys', 'create', '--client', svc.id, '--name', 'x', '--scope', 'admin'], /scope not allowed/],
      [['api-keys', 'create', '--client', svc.id, '--name', 'x', '--expires', '31d'], /IDP_API_KEY_MAX_TTL/],
      [['api-keys', 'create', '--client', svc.id, '--name', 'x', '--expires', 'never'], /requires every key to expire/],
      [['api-keys', 'create', '--client', 'nope', '--name', 'x'], /no client "nope"/],
      [['api-keys', 'revoke', 'AAAAAAAAAAAAAAAA'], /no API key "AAAAAAAAAAAAAAAA"/],
      [['api-keys', 'revoke', 'x'], /no API key "x"/],
    ];
    const before = await handle.db.selectFrom('api_keys').select('id').execute();
    for (const [argv, message] of refusals) {
      const result = await cli(env, handle, ...argv);
      expect([argv.join(' '), result.code === 0]).toEqual([argv.join(' '), false]);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(await handle.db.selectFrom('api_keys').select('id').execute()).toEqual(before);
  });
});
