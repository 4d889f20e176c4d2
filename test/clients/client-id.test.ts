import request from 'supertest';
import { ISSUED_CLIENT_ID, PRESENTED_CLIENT_ID } from '../../src/clients/client-id';
import { generateClientId } from '../../src/clients/secret';
import { loadConfig } from '../../src/config';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic, makeClient, type TestClient } from '../oauth/helpers';
import { adminToken, testEnv } from '../users/support';

/** Ids a client may present (printable ASCII, at most 256) that this server can never have issued. */
const NOT_ISSUED = ['https://app.example/oauth/client-metadata.json', 'svc.example', 'a~b', 'x'.repeat(129)];
/** Ids no client may present. */
const UNPRESENTABLE = ['x'.repeat(257), 'caf\u00e9', 'a b', 'tab\there'];

describe('one definition of a client id (src/clients/client-id.ts): issued ids vs presented ids', () => {
  let database: TestDatabase;
  let server: TestServer;
  let svc: TestClient;
  let superToken: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const handle = await database.open();
    // Every failure here is on purpose: a limit wide enough that none of them turns into a 429.
    const env = testEnv(database, { IDP_TOKEN_FAILURES_PER_IP: '1000', IDP_TOKEN_FAILURES_PER_CLIENT: '1000' });
    server = await startTestServer(loadConfig(env), handle);
    svc = await makeClient(server.services);
    superToken = (await adminToken(env, handle, '--super')).token;
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  it('the ids the server generates are of the issued form, which is narrower than the presented one', () => {
    for (let i = 0; i < 200; i++) expect(generateClientId()).toMatch(ISSUED_CLIENT_ID);
    expect(svc.id).toMatch(ISSUED_CLIENT_ID);
    for (const id of NOT_ISSUED) expect([id, PRESENTED_CLIENT_ID.test(id), ISSUED_CLIENT_ID.test(id)]).toEqual([id, true, false]);
    for (const id of UNPRESENTABLE) expect([id, PRESENTED_CLIENT_ID.test(id)]).toEqual([id, false]);
  });

  it('at /oauth/*, any id that is not an active client of ours is invalid_client; one that cannot be ours costs no lookup', async () => {
    const lookups = jest.spyOn(server.services.oauth.clients, 'get');
    try {
      for (const id of [...NOT_ISSUED, ...UNPRESENTABLE]) {
        for (const path of ['/oauth/token', '/oauth/introspect']) {
          const viaBasic = await request(server.url).post(path).set('Authorization', basic(id, svc.secret)).type('form').send('grant_type=client_credentials&token=x');
          expect([id, path, viaBasic.status, viaBasic.body.error]).toEqual([id, path, 401, 'invalid_client']);
        }
        const viaPost = await request(server.url).post('/oauth/token').type('form').send({ grant_type: 'client_credentials', client_id: id, client_secret: svc.secret });
        expect([id, viaPost.status, viaPost.body.error]).toEqual([id, 401, 'invalid_client']);
      }
      expect(lookups).not.toHaveBeenCalled();
      // An id of the issued form that no client has is looked up, and is invalid_client the same way.
      const unknown = await request(server.url).post('/oauth/token').set('Authorization', basic('NoSuchClient0000000000', svc.secret)).type('form').send('grant_type=client_credentials');
      expect([unknown.status, unknown.body.error]).toEqual([401, 'invalid_client']);
      expect(lookups).toHaveBeenCalledWith('NoSuchClient0000000000');
    } finally {
      lookups.mockRestore();
    }
    // The real one still works.
    await request(server.url).post('/oauth/token').set('Authorization', svc.authorization).type('form').send('grant_type=client_credentials').expect(200);
  });

  it('where the admin API names a stored client, an id not of the issued form is a 400, like the path parameter', async () => {
    const admin = (method: 'get' | 'post', path: string) => request(server.url)[method](`/admin/v1${path}`).set('Authorization', `Bearer ${superToken}`);
    for (const id of NOT_ISSUED) {
      const listed = await admin('get', `/api-keys?client_id=${encodeURIComponent(id)}`);
      expect([id, listed.status, listed.body.error]).toEqual([id, 400, 'invalid_request']);
      expect(listed.body.message).toContain('client_id');
      const created = await admin('post', '/api-keys').send({ client_id: id, name: 'k' });
      expect([id, created.status, created.body.error]).toEqual([id, 400, 'invalid_request']);
      expect(created.body.message).toContain('client_id');
      const shown = await admin('get', `/clients/${encodeURIComponent(id)}`);
      expect([id, shown.status, shown.body.error]).toEqual([id, 400, 'invalid_request']);
    }
    // A well-formed id that does not exist: nothing listed, and not found.
    expect((await admin('get', '/api-keys?client_id=NoSuchClient0000000000').expect(200)).body.api_keys).toEqual([]);
    expect((await admin('get', '/clients/NoSuchClient0000000000')).status).toBe(404);
    expect((await admin('post', '/api-keys').send({ client_id: svc.id, name: 'k' })).status).toBe(201);
  });
});
