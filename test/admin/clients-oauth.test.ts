import request from 'supertest';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually } from '../oauth/helpers';
import { adminToken, signIn, signUp, testEnv } from '../users/support';

interface CreatedClient {
  client_id: string;
  client_secret: string;
}

/** Admin clients routes, user tokens at the OAuth endpoints, and tenants disabling clients and users together. */
describe('admin clients, user tokens at /oauth/*, tenants', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let token: string;
  let acme: CreatedClient;
  let globex: CreatedClient;
  /** A client without a tenant: it sees every tenant's tokens (docs/http-api.md "HTTP". */
  let platform: CreatedClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), handle);
    token = (await adminToken(env, handle, '--permission', 'clients:read', '--permission', 'clients:write', '--permission', 'tenants:write', '--permission', 'users:write')).token;
    for (const id of ['acme', 'globex']) {
      expect((await admin().post('/tenants').send({ id, name: id })).status).toBe(201);
    }
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const withToken = (req: request.Test, bearer = token) => req.set('Authorization', `Bearer ${bearer}`);
  const admin = (bearer = token) => ({
    get: (path: string) => withToken(request(server.url).get(`/admin/v1${path}`), bearer),
    post: (path: string) => withToken(request(server.url).post(`/admin/v1${path}`), bearer),
    patch: (path: string) => withToken(request(server.url).patch(`/admin/v1${path}`), bearer),
    delete: (path: string) => withToken(request(server.url).delete(`/admin/v1${path}`), bearer),
  });
  const clientToken = (client: CreatedClient) =>
    request(server.url).post('/oauth/token').auth(client.client_id, client.client_secret).type('form').send({ grant_type: 'client_credentials' });
  const introspect = (client: CreatedClient, value: string) =>
    request(server.url).post('/oauth/introspect').auth(client.client_id, client.client_secret).type('form').send({ token: value });

  it('creates, reads, changes, re-keys and deletes clients through the admin API', async () => {
    const created = await admin().post('/clients').send({ name: 'Acme API', scopes: 'read write', tenant_id: 'acme' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'Acme API', scopes: ['read', 'write'], tenant_id: 'acme', client_secret: expect.any(String) });
    acme = created.body as CreatedClient;
    globex = (await admin().post('/clients').send({ name: 'Globex', scopes: ['read'], tenant_id: 'globex' })).body as CreatedClient;
    platform = (await admin().post('/clients').send({ name: 'Platform', scopes: ['read'] })).body as CreatedClient;

    const listed = await admin().get('/clients');
    expect(listed.body.clients.map((c: { client_id: string }) => c.client_id)).toEqual(expect.arrayContaining([acme.client_id, globex.client_id]));
    expect(JSON.stringify(listed.body)).not.toContain(acme.client_secret);
    expect((await admin().get(`/clients/${acme.client_id}`)).body.name).toBe('Acme API');
    expect((await admin().patch(`/clients/${acme.client_id}`).send({ name: 'Acme' })).body.name).toBe('Acme');
    expect((await admin().post('/clients').send({ name: 'x', scopes: [], tenant_id: 'acme' })).status).toBe(400);
    expect((await admin().post('/clients').send({ name: 'x', scopes: 'read', tenant_id: 'nobody' })).status).toBe(400);
    expect((await admin().get('/clients/no-such-client')).status).toBe(404);

    const spare = (await admin().post('/clients').send({ name: 'Spare', scopes: 'read' })).body as CreatedClient;
    const rekeyed = await admin().post(`/clients/${spare.client_id}/secret`).send({ grace: '0s' });
    expect(rekeyed.status).toBe(200);
    expect((await clientToken(spare)).status).toBe(401);
    expect((await clientToken({ ...spare, client_secret: rekeyed.body.client_secret })).status).toBe(200);
    expect((await admin().delete(`/clients/${spare.client_id}`)).status).toBe(204);
    expect((await admin().get(`/clients/${spare.client_id}`)).status).toBe(404);

    const reader = (await adminToken(env, handle, '--permission', 'clients:read')).token;
    expect((await admin(reader).get('/clients')).status).toBe(200);
    expect((await admin(reader).post('/clients').send({ name: 'no', scopes: 'read' })).status).toBe(403);
  });

  it('refuses a real client-credentials token at the user API and the admin API', async () => {
    const issued = await clientToken(acme);
    expect(issued.status).toBe(200);
    const bearer = issued.body.access_token as string;
    expect((await withToken(request(server.url).get('/auth/v1/user'), bearer)).status).toBe(401);
    expect((await admin(bearer).get('/clients')).status).toBe(401);
  });

  it('serves grant_type=refresh_token at /oauth/token with the same rotation and reuse detection', async () => {
    const session = await signUp(server.url);
    const grant = (refreshToken: string) => request(server.url).post('/oauth/token').type('form').send({ grant_type: 'refresh_token', refresh_token: refreshToken });
    const first = await grant(session.refresh_token);
    expect(first.status).toBe(200);
    expect(first.headers['cache-control']).toBe('no-store');
    expect(first.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, scope: 'user', refresh_token: expect.any(String) });
    expect((await withToken(request(server.url).get('/auth/v1/user'), first.body.access_token)).status).toBe(200);
    const reused = await grant(session.refresh_token);
    expect(reused.status).toBe(400);
    expect(reused.body.error).toBe('invalid_grant');
    expect((await grant(first.body.refresh_token)).body.error).toBe('invalid_grant');
    const withClient = await request(server.url)
      .post('/oauth/token')
      .auth(acme.client_id, acme.client_secret)
      .type('form')
      .send({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token });
    // A client that authenticates is held to its grant types (docs/oauth.md "Clients of the authorization-code flow": a client-credentials client may not refresh, and a session's token is not its to spend.
    expect([withClient.status, withClient.body.error]).toEqual([400, 'unauthorized_client']);
    expect((await grant('garbage')).body.error).toBe('invalid_grant');
  });

  it('introspects user access and refresh tokens, inactive once signed out or used', async () => {
    const session = await signUp(server.url);
    const active = await introspect(platform, session.access_token);
    expect(active.body).toMatchObject({ active: true, sub: session.user.id, email: session.user.email, token_type: 'Bearer', scope: 'user', sid: expect.any(String) });
    const refresh = await introspect(platform, session.refresh_token);
    expect(refresh.body).toMatchObject({ active: true, token_type: 'refresh_token', sub: session.user.id });
    // A client of a tenant does not see a tenantless user's tokens (docs/http-api.md "HTTP".
    expect((await introspect(globex, session.access_token)).body).toEqual({ active: false });
    expect((await introspect(globex, session.refresh_token)).body).toEqual({ active: false });

    const rotated = await request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: session.refresh_token });
    expect((await introspect(platform, session.refresh_token)).body).toEqual({ active: false });
    await withToken(request(server.url).post('/auth/v1/logout'), rotated.body.access_token);
    expect((await introspect(platform, session.access_token)).body).toEqual({ active: false });
    expect((await introspect(platform, rotated.body.refresh_token)).body).toEqual({ active: false });
  });

  it('refuses to revoke a session at /oauth/revoke (unauthorized_client): sessions end at /auth/v1/logout or the admin API', async () => {
    const session = await signUp(server.url);
    for (const client of [globex, platform]) {
      for (const value of [session.refresh_token, session.access_token]) {
        const refused = await request(server.url).post('/oauth/revoke').auth(client.client_id, client.client_secret).type('form').send({ token: value });
        expect(refused.status).toBe(400);
        expect(refused.body).toEqual({ error: 'unauthorized_client', error_description: expect.any(String) });
      }
    }
    expect((await withToken(request(server.url).get('/auth/v1/user'), session.access_token)).status).toBe(200);
    expect((await introspect(platform, session.refresh_token)).body.active).toBe(true);
  });

  it('disabling a tenant stops its clients’ and users’ tokens; the other tenant is unaffected', async () => {
    const acmeUser = await signUp(server.url);
    const globexUser = await signUp(server.url);
    await admin().patch(`/users/${acmeUser.user.id}`).send({ tenant_id: 'acme' });
    await admin().patch(`/users/${globexUser.user.id}`).send({ tenant_id: 'globex' });
    const acmeSession = await signIn(server.url, acmeUser.user.email);
    const globexSession = await signIn(server.url, globexUser.user.email);
    const acmeClientToken = (await clientToken(acme)).body.access_token as string;
    const globexClientToken = (await clientToken(globex)).body.access_token as string;
    // Acme's tokens are seen by a tenantless client (and by acme's own clients), never by globex's.
    expect((await introspect(platform, acmeClientToken)).body).toMatchObject({ active: true, tenant_id: 'acme' });
    expect((await introspect(platform, acmeSession.access_token)).body).toMatchObject({ active: true, tenant_id: 'acme' });
    expect((await introspect(acme, acmeSession.refresh_token)).body).toMatchObject({ active: true, tenant_id: 'acme' });
    expect((await introspect(globex, acmeClientToken)).body).toEqual({ active: false });
    expect((await introspect(globex, acmeSession.access_token)).body).toEqual({ active: false });

    expect((await admin().delete('/tenants/acme')).status).toBe(200);
    // The client cache hears of the tenant change over LISTEN/NOTIFY; give it its second.
    await eventually(async () => expect((await clientToken(acme)).status).toBe(401), 2_000);
    expect((await introspect(platform, acmeClientToken)).body).toEqual({ active: false });
    expect((await introspect(platform, acmeSession.access_token)).body).toEqual({ active: false });
    expect((await introspect(platform, acmeSession.refresh_token)).body).toEqual({ active: false });
    expect((await request(server.url).post('/auth/v1/token').send({ email: acmeUser.user.email, password: 'correct horse battery' })).status).toBe(403);

    expect((await clientToken(globex)).status).toBe(200);
    expect((await introspect(globex, globexClientToken)).body).toMatchObject({ active: true, tenant_id: 'globex' });
    expect((await introspect(globex, globexSession.access_token)).body).toMatchObject({ active: true, tenant_id: 'globex' });
    expect((await introspect(platform, globexSession.access_token)).body).toMatchObject({ active: true, tenant_id: 'globex' });
    expect((await withToken(request(server.url).get('/auth/v1/user'), globexSession.access_token)).status).toBe(200);
  });
});
