import request from 'supertest';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { ServiceError } from '../../src/errors';
import { findResource, Resources } from '../../src/resources';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { matchesOpenApi } from '../helpers/openapi';
import { adminToken, cli, testEnv } from '../users/support';

/** Resources (docs/oauth.md "Resources": `idp resources`, /admin/v1/resources, and discovery's scopes_supported. */
describe('resources: CLI, admin API, discovery', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let writer: { id: string; token: string };
  let reader: { id: string; token: string };
  let other: { id: string; token: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), handle);
    writer = await adminToken(env, handle, '--permission', 'resources:read', '--permission', 'resources:write');
    reader = await adminToken(env, handle, '--permission', 'resources:read');
    other = await adminToken(env, handle, '--permission', 'clients:write');
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const idp = (...argv: string[]) => cli(env, handle, ...argv);
  const count = async () => Number((await handle.db.selectFrom('resources').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const call = (method: 'get' | 'post' | 'delete', path: string, token: string | null = writer.token) => {
    const req = request(server.url)[method](`/admin/v1${path}`);
    return token === null ? req : req.set('Authorization', `Bearer ${token}`);
  };
  const encoded = (url: string) => `/resources/${encodeURIComponent(url)}`;
  const auditOf = (url: string) => handle.db.selectFrom('audit_events').select(['action', 'actor', 'details']).where('target', '=', url).execute();

  describe('idp resources', () => {
    it('create, list and delete; each change audited with actor cli', async () => {
      const url = 'https://api.example/mcp';
      const created = await idp('resources', 'create', url, '--name', 'MCP server', '--scope', 'mcp:tools mcp:read', '--json');
      expect({ code: created.code, stderr: created.stderr }).toEqual({ code: 0, stderr: '' });
      expect(JSON.parse(created.stdout)).toMatchObject({ url, name: 'MCP server', scopes: ['mcp:tools', 'mcp:read'], created_at: expect.any(String) });
      expect((await idp('resources', 'create', 'http://localhost:8080/api', '--name', 'Local', '--scope', 'local')).stdout).toMatch(/^registered resource http:\/\/localhost:8080\/api/);

      const listed = await idp('resources', 'list', '--json');
      expect(JSON.parse(listed.stdout).map((r: { url: string }) => r.url)).toEqual(['http://localhost:8080/api', url]);
      expect((await idp('resources', 'list')).stdout).toMatch(/URL\s+NAME\s+SCOPES[\s\S]*https:\/\/api\.example\/mcp\s+MCP server\s+mcp:tools mcp:read/);

      expect(await findResource(handle.db, url)).toMatchObject({ url, name: 'MCP server', scopes: ['mcp:tools', 'mcp:read'] });
      const deleted = await idp('resources', 'delete', url, '--json');
      expect(JSON.parse(deleted.stdout)).toEqual({ url, deleted: true });
      expect(await findResource(handle.db, url)).toBeUndefined();
      const events = await auditOf(url);
      expect(events.map((e) => `${e.action} ${e.actor}`).sort()).toEqual(['resource.created cli', 'resource.deleted cli']);
      expect(events.find((e) => e.action === 'resource.created')?.details).toEqual({ name: 'MCP server', scopes: ['mcp:tools', 'mcp:read'] });
    });

    it('refuses bad input with one line on stderr, exit 1, nothing changed', async () => {
      await idp('resources', 'create', 'https://dup.example/api', '--name', 'Dup', '--scope', 'dup');
      const before = await count();
      const cases: Array<[string[], RegExp]> = [
        [['create', 'https://a.example/api#frag', '--name', 'A', '--scope', 'a'], /fragment/],
        [['create', '/relative', '--name', 'A', '--scope', 'a'], /not an absolute URL/],
        [['create', 'ftp://a.example/api', '--name', 'A', '--scope', 'a'], /must be https/],
        [['create', 'https://user:pw@a.example/api', '--name', 'A', '--scope', 'a'], /user information/],
        [['create', `https://a.example/${'x'.repeat(2048)}`, '--name', 'A', '--scope', 'a'], /longer than 2048/],
        [['create', 'https://a.example/api', '--name', 'A', '--scope', 'bad"scope'], /not a space-separated list of scopes/],
        [['create', 'https://a.example/api', '--name', 'A', '--scope', ' '], /at least one scope/],
        [['create', 'https://a.example/api', '--name', ' ', '--scope', 'a'], /resource name/],
        [['create', 'https://dup.example/api', '--name', 'Dup', '--scope', 'dup'], /registered already/],
        [['delete', 'https://none.example/api'], /no resource https:\/\/none\.example\/api/],
      ];
      for (const [args, message] of cases) {
        const result = await idp('resources', ...args);
        expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 1, stdout: '' });
        expect(result.stderr).toMatch(message);
        expect(result.stderr.trim().split('\n')).toHaveLength(1);
      }
      expect(await count()).toBe(before);
    });

    it('in production, only https', async () => {
      const production = new Resources({ db: handle.db, now: () => new Date(), policy: { production: true } });
      await expect(production.create({ url: 'http://localhost:8080/p', name: 'P', scopes: ['p'] }, { actor: 'test' })).rejects.toThrow(ServiceError);
      await expect(production.create({ url: 'http://127.0.0.1/p', name: 'P', scopes: ['p'] }, { actor: 'test' })).rejects.toThrow(/must be https/);
      expect(await production.create({ url: 'https://prod.example/p', name: 'P', scopes: ['p'] }, { actor: 'test' })).toMatchObject({ url: 'https://prod.example/p' });
      const tooMany = Array.from({ length: 101 }, (_, i) => `s${i}`);
      await expect(production.create({ url: 'https://prod.example/many', name: 'Many', scopes: tooMany }, { actor: 'test' })).rejects.toThrow(/at most 100 scopes/);
    });
  });

  describe('/admin/v1/resources', () => {
    it('POST, GET, GET one, DELETE with resources:write / resources:read; audited with the admin token', async () => {
      const url = 'https://api.example/v2?tenant=a%2Fb';
      const created = await call('post', '/resources').send({ url, name: 'API v2', scopes: ['read', 'write', 'read'] }).expect(matchesOpenApi);
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ url, name: 'API v2', scopes: ['read', 'write'] });
      expect(created.headers['cache-control']).toBe('no-store');

      const listed = await call('get', '/resources', reader.token).expect(matchesOpenApi);
      expect(listed.status).toBe(200);
      expect(listed.body.resources.map((r: { url: string }) => r.url)).toContain(url);
      const one = await call('get', encoded(url), reader.token).expect(matchesOpenApi);
      expect({ status: one.status, url: one.body.url }).toEqual({ status: 200, url });

      const conflict = await call('post', '/resources').send({ url, name: 'again', scopes: 'x' }).expect(matchesOpenApi);
      expect({ status: conflict.status, error: conflict.body.error }).toEqual({ status: 409, error: 'conflict' });

      const deleted = await call('delete', encoded(url)).expect(matchesOpenApi);
      expect({ status: deleted.status, url: deleted.body.url }).toEqual({ status: 200, url });
      expect((await call('get', encoded(url)).expect(matchesOpenApi)).status).toBe(404);
      expect((await call('delete', encoded(url)).expect(matchesOpenApi)).status).toBe(404);
      const events = await auditOf(url);
      expect(events.map((e) => `${e.action} ${e.actor}`).sort()).toEqual([`resource.created admin-token:${writer.id}`, `resource.deleted admin-token:${writer.id}`]);
    });

    it('401 without a token, 403 without the permission, and nothing changed', async () => {
      const before = await count();
      const body = { url: 'https://forbidden.example/api', name: 'F', scopes: 'f' };
      expect((await call('get', '/resources', null).expect(matchesOpenApi)).status).toBe(401);
      expect((await call('post', '/resources', null).send(body).expect(matchesOpenApi)).status).toBe(401);
      expect((await call('get', '/resources', other.token).expect(matchesOpenApi)).status).toBe(403);
      expect((await call('post', '/resources', reader.token).send(body).expect(matchesOpenApi)).status).toBe(403);
      expect((await call('post', '/resources', other.token).send(body).expect(matchesOpenApi)).status).toBe(403);
      await idp('resources', 'create', 'https://kept.example/api', '--name', 'Kept', '--scope', 'k');
      expect((await call('delete', encoded('https://kept.example/api'), reader.token).expect(matchesOpenApi)).status).toBe(403);
      expect((await call('delete', encoded('https://kept.example/api'), null).expect(matchesOpenApi)).status).toBe(401);
      expect(await count()).toBe(before + 1);
    });

    it('400 for bad input, and exact routes', async () => {
      const before = await count();
      for (const body of [
        { url: 'https://a.example/#x', name: 'A', scopes: 'a' },
        { url: 'not a url', name: 'A', scopes: 'a' },
        { url: 'https://a.example/api', name: 'A', scopes: [] },
        { url: 'https://a.example/api', name: 'A', scopes: 'a', colour: 'blue' },
        { name: 'A', scopes: 'a' },
      ]) {
        const res = await call('post', '/resources').send(body).expect(matchesOpenApi);
        expect({ body, status: res.status, error: res.body.error }).toEqual({ body, status: 400, error: 'invalid_request' });
      }
      expect((await call('get', '/resources/')).status).toBe(404);
      expect((await call('get', '/RESOURCES')).status).toBe(404);
      expect(await count()).toBe(before);
    });
  });

  it("discovery lists openid email offline_access and the resources' scopes, bounded and sorted", async () => {
    const metadata = async () => {
      const res = await request(server.url).get('/.well-known/oauth-authorization-server').expect(200);
      const other = await request(server.url).get('/.well-known/openid-configuration').expect(200);
      expect(other.body.scopes_supported).toEqual(res.body.scopes_supported);
      return res.body.scopes_supported as string[];
    };
    await idp('resources', 'create', 'https://calendar.example/api', '--name', 'Calendar', '--scope', 'calendar:read calendar:write');
    const scopes = await metadata();
    expect(scopes).toEqual(expect.arrayContaining(['openid', 'email', 'offline_access', 'calendar:read', 'calendar:write']));
    expect(scopes).toEqual([...new Set(scopes)].sort());
    await idp('resources', 'delete', 'https://calendar.example/api');
    expect(await metadata()).not.toContain('calendar:read');

    // Many resources with many scopes: still 100 at most, and the OpenID Connect scopes are among them.
    for (let i = 0; i < 3; i++) {
      const many = Array.from({ length: 60 }, (_, j) => `a${String(i * 60 + j).padStart(4, '0')}`).join(' ');
      expect((await idp('resources', 'create', `https://bulk.example/${i}`, '--name', `Bulk ${i}`, '--scope', many)).code).toBe(0);
    }
    const bounded = await metadata();
    expect(bounded).toHaveLength(100);
    expect(bounded).toEqual(expect.arrayContaining(['openid', 'email', 'offline_access', 'a0000']));
    expect(bounded).toEqual([...new Set(bounded)].sort());
  });
});
