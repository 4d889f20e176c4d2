import { sql } from 'kysely';
import request from 'supertest';
import { loadConfig } from '../../src/config';
import { clientPolicy, ClientError, createPublicClient } from '../../src/clients/service';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { matchesOpenApi } from '../helpers/openapi';
import { basic, eventually } from '../oauth/helpers';
import { adminToken, cli, testEnv } from '../users/support';

/**
 * Clients of the authorization-code flow (docs/oauth.md "Clients of the authorization-code flow",
 * "Public clients", "Grant types", "Redirect URIs"): created and changed through the CLI and the
 * admin API, and held to their method and grants at the OAuth endpoints.
 */
describe('authorization-code clients: CLI, admin API, token endpoint', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let token: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), handle);
    token = (await adminToken(env, handle, '--permission', 'clients:read', '--permission', 'clients:write', '--permission', 'audit:read')).token;
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const idp = (...argv: string[]) => cli(env, handle, ...argv);
  const json = async (...argv: string[]) => {
    const result = await idp(...argv, '--json');
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    return JSON.parse(result.stdout) as Record<string, unknown>;
  };
  /** A refusal: exit 1, one line on stderr matching `message`, nothing on stdout. */
  const refused = async (message: RegExp, ...argv: string[]) => {
    const result = await idp(...argv);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  };
  const clientCount = async () => Number((await handle.db.selectFrom('oauth_clients').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const row = (id: string) => handle.db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const admin = () => ({
    get: (path: string) => request(server.url).get(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`),
    post: (path: string) => request(server.url).post(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`),
    patch: (path: string) => request(server.url).patch(`/admin/v1${path}`).set('Authorization', `Bearer ${token}`),
  });
  const form = (path: string, fields: Record<string, string>, authorization?: string) => {
    const req = request(server.url).post(path).type('form');
    return (authorization ? req.set('Authorization', authorization) : req).send(fields);
  };

  describe('idp clients create', () => {
    it('a confidential client with redirect URIs: a secret, authorization_code and refresh_token by default', async () => {
      const created = await json(
        'clients', 'create', '--name', 'Web app', '--scope', 'openid email',
        '--redirect-uri', 'https://app.example/callback', '--redirect-uri', 'http://127.0.0.1/cb',
        '--post-logout-redirect-uri', 'https://app.example/bye', '--first-party',
      );
      expect(created).toMatchObject({
        client_secret: expect.stringMatching(/^\S{20,}$/),
        name: 'Web app',
        scopes: ['openid', 'email'],
        token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: ['https://app.example/callback', 'http://127.0.0.1/cb'],
        post_logout_redirect_uris: ['https://app.example/bye'],
        grant_types: ['authorization_code', 'refresh_token'],
        first_party: true,
      });
      const shown = await json('clients', 'show', String(created.client_id));
      expect(shown).toMatchObject({ redirect_uris: ['https://app.example/callback', 'http://127.0.0.1/cb'], registered_by: 'operator', first_party: true });
      expect(JSON.stringify(shown)).not.toContain(String(created.client_secret));
      // Stored as null: the default follows the rule, not a copy of it.
      expect((await row(String(created.client_id))).grant_types).toBeNull();
    });

    it('--public: no secret (client_secret null), token_endpoint_auth_method none', async () => {
      const created = await json('clients', 'create', '--name', 'Desktop', '--scope', 'openid', '--public', '--redirect-uri', 'http://127.0.0.1/callback', '--redirect-uri', 'com.example.desktop:/cb');
      expect(created).toMatchObject({ client_secret: null, token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'], first_party: false });
      const stored = await row(String(created.client_id));
      expect({ secret: stored.secret_hash, jwks: stored.jwks, uri: stored.jwks_uri, method: stored.token_endpoint_auth_method }).toEqual({ secret: null, jwks: null, uri: null, method: 'none' });
      const text = await idp('clients', 'create', '--name', 'Desktop 2', '--scope', 'openid', '--public', '--redirect-uri', 'http://127.0.0.1/callback');
      expect(text.stdout).toMatch(/no secret: a public client/);
      expect(text.stdout).not.toMatch(/client_secret:/);
    });

    it('--grant-type replaces the default; a client without redirect URIs keeps client_credentials', async () => {
      expect(await json('clients', 'create', '--name', 'Both', '--scope', 'read', '--redirect-uri', 'https://both.example/cb', '--grant-type', 'client_credentials', '--grant-type', 'authorization_code')).toMatchObject({
        grant_types: ['client_credentials', 'authorization_code'],
      });
      // A plain client-credentials client: the documented shape of `clients create`, nothing added.
      const plain = await json('clients', 'create', '--name', 'Service', '--scope', 'read');
      expect(Object.keys(plain).sort()).toEqual(['audiences', 'client_id', 'client_secret', 'name', 'scopes']);
      expect(await json('clients', 'show', String(plain.client_id))).toMatchObject({ grant_types: ['client_credentials'], redirect_uris: [], first_party: false, token_endpoint_auth_method: 'client_secret_basic' });
    });

    it('refuses bad redirect URIs and inconsistent settings with one line, creating nothing', async () => {
      const before = await clientCount();
      const create = (...args: string[]) => ['clients', 'create', '--name', 'Bad', '--scope', 'read', ...args];
      await refused(/fragment/, ...create('--redirect-uri', 'https://app.example/cb#x'));
      await refused(/not absolute/, ...create('--redirect-uri', '/callback'));
      await refused(/wildcard/, ...create('--redirect-uri', 'https://*.example.com/cb'));
      await refused(/http: only loopback/, ...create('--redirect-uri', 'http://app.example/cb'));
      await refused(/never a redirect target/, ...create('--redirect-uri', 'javascript:alert(1)'));
      await refused(/post-logout redirect URIs: .*fragment/, ...create('--redirect-uri', 'https://app.example/cb', '--post-logout-redirect-uri', 'https://app.example/#bye'));
      await refused(/public client needs at least one redirect URI/, ...create('--public'));
      await refused(/public client may not have the client_credentials grant/, ...create('--public', '--redirect-uri', 'https://app.example/cb', '--grant-type', 'client_credentials'));
      await refused(/authorization_code grant needs at least one redirect URI/, ...create('--grant-type', 'authorization_code'));
      await refused(/unknown grant type "password"/, ...create('--grant-type', 'password'));
      await refused(/--public has no credentials/, ...create('--public', '--redirect-uri', 'https://app.example/cb', '--auth-method', 'private_key_jwt'));
      expect(await clientCount()).toBe(before);
    });

    it('allows http://localhost outside production only, and loopback IP literals in production too', async () => {
      expect(await json('clients', 'create', '--name', 'Dev', '--scope', 'read', '--public', '--redirect-uri', 'http://localhost:5173/cb')).toMatchObject({ redirect_uris: ['http://localhost:5173/cb'] });
      const production = { ...clientPolicy(loadConfig(env)), production: true };
      const change = { actor: 'test' as const, now: new Date() };
      const before = await clientCount();
      for (const uri of ['http://localhost:5173/cb', 'http://app.example/cb']) {
        await expect(createPublicClient(handle.db, { name: 'Prod', scopes: ['read'], redirectUris: [uri] }, production, change)).rejects.toThrow(ClientError);
      }
      expect(await clientCount()).toBe(before);
      const ok = await createPublicClient(handle.db, { name: 'Prod', scopes: ['read'], redirectUris: ['http://127.0.0.1/cb', 'http://[::1]/cb', 'https://app.example/cb'] }, production, change);
      expect(ok.redirectUris).toHaveLength(3);
    });
  });

  describe('idp clients update', () => {
    it('replaces lists, sets first/third party, scopes and grant types, back to the default; audited with the new values', async () => {
      const id = String((await json('clients', 'create', '--name', 'Updatable', '--scope', 'read', '--redirect-uri', 'https://u.example/one')).client_id);
      const updated = await json('clients', 'update', id, '--redirect-uri', 'https://u.example/two', '--redirect-uri', 'https://u.example/three', '--post-logout-redirect-uri', 'https://u.example/bye', '--scope', 'read write', '--first-party');
      expect(updated).toMatchObject({
        client_id: id,
        updated: ['redirect_uris', 'post_logout_redirect_uris', 'scopes', 'first_party'],
        redirect_uris: ['https://u.example/two', 'https://u.example/three'],
        post_logout_redirect_uris: ['https://u.example/bye'],
        scopes: ['read', 'write'],
        first_party: true,
      });
      expect(await json('clients', 'update', id, '--grant-type', 'authorization_code', '--third-party')).toMatchObject({ grant_types: ['authorization_code'], first_party: false });
      expect((await row(id)).grant_types).toEqual(['authorization_code']);
      // Back to the rule: without redirect URIs the default is client_credentials again.
      expect(await json('clients', 'update', id, '--default-grant-types', '--clear-redirect-uris', '--clear-post-logout-redirect-uris')).toMatchObject({
        grant_types: ['client_credentials'],
        redirect_uris: [],
        post_logout_redirect_uris: [],
      });
      expect((await row(id)).grant_types).toBeNull();

      // Events of one millisecond have no order between them: matched by content.
      const events = await handle.db.selectFrom('audit_events').select(['action', 'details']).where('target', '=', id).execute();
      expect(events.map((e) => e.action).sort()).toEqual(['client.created', 'client.updated', 'client.updated', 'client.updated']);
      expect(events).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ action: 'client.created', details: expect.objectContaining({ redirect_uris: ['https://u.example/one'] }) }),
          expect.objectContaining({ action: 'client.updated', details: expect.objectContaining({ redirect_uris: ['https://u.example/two', 'https://u.example/three'], first_party: true }) }),
          expect.objectContaining({ action: 'client.updated', details: expect.objectContaining({ redirect_uris: [], grant_types: null }) }),
        ]),
      );
    });

    it('refuses what would leave a client inconsistent, and bad options, changing nothing', async () => {
      const id = String((await json('clients', 'create', '--name', 'Public', '--scope', 'read', '--public', '--redirect-uri', 'https://p.example/cb')).client_id);
      const before = await row(id);
      await refused(/public client needs at least one redirect URI/, 'clients', 'update', id, '--clear-redirect-uris');
      await refused(/public client may not have the client_credentials grant/, 'clients', 'update', id, '--grant-type', 'client_credentials');
      await refused(/fragment/, 'clients', 'update', id, '--redirect-uri', 'https://p.example/cb#f', '--scope', 'read write');
      await refused(/give one of --first-party and --third-party/, 'clients', 'update', id, '--first-party', '--third-party');
      await refused(/give one of --redirect-uri and --clear-redirect-uris/, 'clients', 'update', id, '--redirect-uri', 'https://p.example/x', '--clear-redirect-uris');
      await refused(/nothing to change/, 'clients', 'update', id);
      await refused(/no client "nobody"/, 'clients', 'update', 'nobody', '--first-party');
      await refused(/has no secret: it is a public client/, 'clients', 'rotate-secret', id);
      expect(await row(id)).toEqual(before);
    });
  });

  describe('the admin API', () => {
    it('creates a public client (no client_secret), views, patches and lists the new fields; registered_by is read-only', async () => {
      const created = await admin()
        .post('/clients')
        .send({ name: 'SPA', scopes: 'openid', token_endpoint_auth_method: 'none', redirect_uris: ['https://spa.example/cb'], post_logout_redirect_uris: ['https://spa.example/'] })
        .expect(matchesOpenApi);
      expect(created.status).toBe(201);
      expect(created.body).not.toHaveProperty('client_secret');
      expect(created.body).toMatchObject({
        token_endpoint_auth_method: 'none',
        redirect_uris: ['https://spa.example/cb'],
        post_logout_redirect_uris: ['https://spa.example/'],
        grant_types: ['authorization_code', 'refresh_token'],
        first_party: false,
        registered_by: 'operator',
      });
      const id = created.body.client_id as string;
      const patched = await admin().patch(`/clients/${id}`).send({ redirect_uris: ['http://127.0.0.1/cb'], grant_types: ['authorization_code'], first_party: true }).expect(matchesOpenApi);
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ redirect_uris: ['http://127.0.0.1/cb'], grant_types: ['authorization_code'], first_party: true });
      const reset = await admin().patch(`/clients/${id}`).send({ grant_types: null }).expect(matchesOpenApi);
      expect(reset.body.grant_types).toEqual(['authorization_code', 'refresh_token']);
      expect((await admin().get(`/clients/${id}`).expect(matchesOpenApi)).body).toMatchObject({ redirect_uris: ['http://127.0.0.1/cb'], registered_by: 'operator' });
      const listed = (await admin().get('/clients').expect(matchesOpenApi)).body.clients as Array<Record<string, unknown>>;
      expect(listed.find((c) => c.client_id === id)).toMatchObject({ token_endpoint_auth_method: 'none', first_party: true });
      // Existing clients read as before, with the new fields added.
      expect(listed.every((c) => Array.isArray(c.redirect_uris) && Array.isArray(c.grant_types) && typeof c.first_party === 'boolean' && c.registered_by === 'operator')).toBe(true);

      const refusedPatch = await admin().patch(`/clients/${id}`).send({ registered_by: 'dynamic' }).expect(matchesOpenApi);
      expect(refusedPatch.status).toBe(400);
      const events = await handle.db.selectFrom('audit_events').select(['action', 'actor']).where('target', '=', id).execute();
      expect(events.map((e) => e.action).sort()).toEqual(['client.created', 'client.updated', 'client.updated']);
    });

    it('a client_secret_post client is shown as registered and gets its secret once', async () => {
      const created = await admin().post('/clients').send({ name: 'Post', scopes: 'read', token_endpoint_auth_method: 'client_secret_post' }).expect(matchesOpenApi);
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ token_endpoint_auth_method: 'client_secret_post', client_secret: expect.any(String), grant_types: ['client_credentials'] });
    });

    it('refuses bad redirect URIs and inconsistent settings with 400 naming the problem, creating and changing nothing', async () => {
      const before = await clientCount();
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ redirect_uris: ['https://a.example/cb#frag'] }, /fragment/],
        [{ redirect_uris: ['cb'] }, /not absolute/],
        [{ redirect_uris: ['https://*.a.example/cb'] }, /wildcard/],
        [{ redirect_uris: ['http://a.example/cb'] }, /http: only loopback/],
        [{ token_endpoint_auth_method: 'none' }, /public client needs at least one redirect URI/],
        [{ token_endpoint_auth_method: 'none', redirect_uris: ['https://a.example/cb'], grant_types: ['client_credentials'] }, /client_credentials/],
        [{ grant_types: ['password'] }, /grant_types/],
        [{ registered_by: 'dynamic' }, /registered_by/],
        [{ redirect_uris: Array.from({ length: 33 }, (_, i) => `https://a.example/${i}`) }, /redirect_uris/],
      ];
      for (const [extra, message] of cases) {
        const res = await admin().post('/clients').send({ name: 'Bad', scopes: 'read', ...extra }).expect(matchesOpenApi);
        expect({ extra, status: res.status }).toEqual({ extra, status: 400 });
        expect(JSON.stringify(res.body)).toMatch(message);
      }
      expect(await clientCount()).toBe(before);

      const id = (await admin().post('/clients').send({ name: 'Steady', scopes: 'read', token_endpoint_auth_method: 'none', redirect_uris: ['https://s.example/cb'] })).body.client_id as string;
      const stored = await row(id);
      for (const body of [{ redirect_uris: [] }, { grant_types: ['client_credentials'] }, { redirect_uris: ['https://s.example/#x'], name: 'Renamed' }]) {
        expect((await admin().patch(`/clients/${id}`).send(body).expect(matchesOpenApi)).status).toBe(400);
      }
      expect(await row(id)).toEqual(stored);
    });
  });

  describe('at the OAuth endpoints', () => {
    let publicId: string;
    let webApp: { id: string; secret: string };
    let service: { id: string; secret: string };
    let both: { id: string; secret: string };

    beforeAll(async () => {
      publicId = String((await json('clients', 'create', '--name', 'Native', '--scope', 'read', '--public', '--redirect-uri', 'http://127.0.0.1/cb')).client_id);
      const make = async (...args: string[]) => {
        const created = await json('clients', 'create', '--name', 'C', '--scope', 'read', ...args);
        return { id: String(created.client_id), secret: String(created.client_secret) };
      };
      webApp = await make('--redirect-uri', 'https://web.example/cb');
      service = await make();
      both = await make('--redirect-uri', 'https://both.example/cb', '--grant-type', 'client_credentials', '--grant-type', 'authorization_code');
    });

    it('a public client never gets client_credentials: unauthorized_client (400), whether it sends client_id alone or anything else', async () => {
      const res = await form('/oauth/token', { grant_type: 'client_credentials', client_id: publicId });
      expect({ status: res.status, body: res.body }).toEqual({ status: 400, body: { error: 'unauthorized_client', error_description: 'a public client may not use grant_type client_credentials' } });
      expect(res.headers['cache-control']).toBe('no-store');
      // It has no secret: presenting one is a failed authentication.
      expect((await form('/oauth/token', { grant_type: 'client_credentials' }, basic(publicId, 'guess'))).status).toBe(401);
    });

    it('holds every client to its grant types: a client with redirect URIs gets no client_credentials unless it was given them', async () => {
      const refusedGrant = await form('/oauth/token', { grant_type: 'client_credentials' }, basic(webApp.id, webApp.secret));
      expect({ status: refusedGrant.status, error: refusedGrant.body.error }).toEqual({ status: 400, error: 'unauthorized_client' });
      for (const client of [service, both]) {
        const res = await form('/oauth/token', { grant_type: 'client_credentials' }, basic(client.id, client.secret));
        expect({ status: res.status, type: res.body.token_type }).toEqual({ status: 200, type: 'Bearer' });
      }
    });

    it('a confidential client naming itself by client_id alone is invalid_client (401)', async () => {
      const res = await form('/oauth/token', { grant_type: 'client_credentials', client_id: service.id });
      expect({ status: res.status, error: res.body.error }).toEqual({ status: 401, error: 'invalid_client' });
    });

    it('a public client may revoke (RFC 7009) by client_id, and may not introspect', async () => {
      const revoked = await form('/oauth/revoke', { token: 'some-opaque-token', client_id: publicId });
      expect(revoked.status).toBe(200);
      const introspected = await form('/oauth/introspect', { token: 'some-opaque-token', client_id: publicId });
      expect({ status: introspected.status, error: introspected.body.error }).toEqual({ status: 401, error: 'invalid_client' });
    });

    it('discovery lists none for the token and revocation endpoints, not for introspection', async () => {
      const { body } = await request(server.url).get('/.well-known/oauth-authorization-server').expect(200);
      expect(body.token_endpoint_auth_methods_supported).toContain('none');
      expect(body.revocation_endpoint_auth_methods_supported).toContain('none');
      expect(body.introspection_endpoint_auth_methods_supported).not.toContain('none');
    });

    it("a recorded use announces nothing to the client caches and leaves the client's row as it was; any change of the client does announce", async () => {
      const heard: string[] = [];
      await handle.listen('idp_clients', (payload) => heard.push(payload));
      const { touchClients } = await import('../../src/clients/repository');
      // Fences: notifications arrive in commit order, so once a later change's is heard, an earlier one would have been too.
      let fences = 0;
      const fence = async (id: string) => {
        fences += 1;
        await handle.db.updateTable('oauth_clients').set({ name: `fence ${fences}` }).where('id', '=', id).execute();
        await eventually(async () => expect(heard).toContain(`client:${id}`), 5_000);
      };
      // The row's version (xmin, ctid): a use that rewrote the client's row would change both.
      const version = async (id: string) => (await sql<{ v: string }>`select xmin::text || ' ' || ctid::text as v from oauth_clients where id = ${id}`.execute(handle.db)).rows[0]?.v;
      await fence(both.id);
      heard.length = 0;
      const before = await version(webApp.id);
      expect(await touchClients(handle, [webApp.id], new Date(Date.now() + 3_600_000), 60_000)).toBe(1);
      expect(await touchClients(handle, [webApp.id], new Date(Date.now() + 7_200_000), 60_000)).toBe(1);
      await fence(both.id);
      expect(heard).not.toContain(`client:${webApp.id}`);
      expect(await version(webApp.id)).toBe(before);
      await handle.db.updateTable('oauth_clients').set({ first_party: true }).where('id', '=', webApp.id).execute();
      await eventually(async () => expect(heard).toContain(`client:${webApp.id}`), 5_000);
    });

    it("writes no use of an operator's client: only the sweep of unused self-registered clients reads uses (test/registration/flow.test.ts has a dynamic client's)", async () => {
      const lastUsed = async (id: string) => (await handle.db.selectFrom('oauth_client_uses').select('used_at').where('client_id', '=', id).executeTakeFirst())?.used_at ?? null;
      const unused = await json('clients', 'create', '--name', 'Operator client', '--scope', 'read');
      expect((await form('/oauth/token', { grant_type: 'client_credentials' }, basic(String(unused.client_id), String(unused.client_secret)))).status).toBe(200);
      // Writes every use waiting for its batch, as at shutdown.
      await server.services.oauth.clients.stop();
      expect(await lastUsed(String(unused.client_id))).toBeNull();
    });
  });
});
