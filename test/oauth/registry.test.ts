import request from 'supertest';
import type { Client } from '../../src/clients/repository';
import { InvalidGrant } from '../../src/oauth/errors';
import { createOAuthRegistry, grantPerRequest } from '../../src/oauth/registry';
import type { Grant, TokenKind } from '../../src/oauth/types';
import { exchange, FORM, introspect, makeKey, TOKEN_EXCHANGE } from '../api-keys/support';
import { startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { makeClient, type TestClient } from './helpers';

/**
 * The OAuth registry is built by the composition root from the capabilities it mounts (docs/layout.md
 * "Layout"): which grants exist and which token kind answers first are explicit, never a matter of
 * which module happened to be imported.
 */
describe('the OAuth registry', () => {
  const client = { id: 'asker', tenantId: null } as unknown as Client;
  const kind = (name: string, answer: (token: string) => string | undefined): TokenKind => ({
    name,
    introspect: async (token) => {
      const who = answer(token);
      return who === undefined ? undefined : { active: true, answered_by: who };
    },
    revoke: async (token) => answer(token) !== undefined,
  });
  const grant = (grantType: string): Grant => ({
    grantType,
    parameters: [],
    clientAuthentication: 'none',
    handler: async () => {
      throw new InvalidGrant('test grant');
    },
  });

  it('holds exactly the grants and token kinds it is built with, asking the kinds in the order given', async () => {
    const registry = createOAuthRegistry({
      grants: [grant('urn:test:a'), grant('urn:test:b')],
      tokenKinds: [kind('specific', (t) => (t.startsWith('x-special') ? 'specific' : undefined)), kind('general', (t) => (t.startsWith('x') ? 'general' : undefined))],
    });
    expect(registry.grantTypes()).toEqual(['urn:test:a', 'urn:test:b']);
    expect(registry.findGrant('client_credentials')).toBeUndefined();
    expect(registry.tokenKindOrder).toEqual(['specific', 'general']);
    expect(await registry.introspect('x-special-1', { client })).toEqual({ active: true, answered_by: 'specific' });
    expect(await registry.introspect('x-plain', { client })).toEqual({ active: true, answered_by: 'general' });
    expect(await registry.introspect('other', { client })).toEqual({ active: false });

    const reversed = createOAuthRegistry({ grants: [], tokenKinds: [kind('general', (t) => (t.startsWith('x') ? 'general' : undefined)), kind('specific', () => 'specific')] });
    expect(await reversed.introspect('x-special-1', { client })).toEqual({ active: true, answered_by: 'general' });
  });

  it('serves one grant type by several grants, the form choosing (grantPerRequest), and refuses a mix of grant types', async () => {
    const byKey = { ...grant('urn:test:x'), parameters: ['key'], handler: async () => ({ access_token: 'k', token_type: 'Bearer' as const, expires_in: 1 }) };
    const byJwt: Grant = { ...grant('urn:test:x'), parameters: ['jwt', 'key'], clientAuthentication: 'required', handler: async () => ({ access_token: 'j', token_type: 'Bearer', expires_in: 1 }) };
    const both = grantPerRequest([byKey, byJwt], (params) => (params.has('jwt') ? byJwt : byKey));
    expect(both).toMatchObject({ grantType: 'urn:test:x', parameters: ['key', 'jwt'] });
    expect(both.select?.(new Map([['jwt', '1']]))).toBe(byJwt);
    expect(both.select?.(new Map([['key', '1']]))).toBe(byKey);
    const request = (params: Array<[string, string]>) => ({ params: new Map(params), client: undefined, ip: '127.0.0.1' });
    expect((await both.handler(request([['jwt', '1']]))).access_token).toBe('j');
    expect((await both.handler(request([]))).access_token).toBe('k');
    expect(createOAuthRegistry({ grants: [both], tokenKinds: [] }).grantTypes()).toEqual(['urn:test:x']);
    expect(() => grantPerRequest([byKey, grant('urn:test:y')], () => byKey)).toThrow('one grant type');
    expect(() => grantPerRequest([], () => byKey)).toThrow('one grant type');
    const stray = grantPerRequest([byKey], () => byJwt);
    expect(() => stray.select?.(new Map())).toThrow('not given');
  });

  it('refuses a grant type or a token kind given twice', () => {
    expect(() => createOAuthRegistry({ grants: [grant('urn:test:a'), grant('urn:test:a')], tokenKinds: [] })).toThrow('given twice');
    expect(() => createOAuthRegistry({ grants: [], tokenKinds: [kind('k', () => undefined), kind('k', () => undefined)] })).toThrow('given twice');
  });
});

describe('the registry the composition root builds', () => {
  let database: TestDatabase;
  let app: TestServer;
  let rs: TestClient;
  let owner: TestClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    app = await startTestServer(testConfig(database), await database.open());
    rs = await makeClient(app.services, { name: 'resource server' });
    owner = await makeClient(app.services, { name: 'key owner', scopes: ['read'], audiences: ['https://api.test'] });
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  it('serves every grant of the mounted capabilities, client_credentials first', () => {
    expect(app.services.registry.grantTypes()).toEqual(['client_credentials', 'authorization_code', 'refresh_token', TOKEN_EXCHANGE]);
  });

  it('asks the most specific token kinds first: API keys and exchanged tokens before client access tokens', () => {
    expect(app.services.registry.tokenKindOrder).toEqual(['api_key', 'exchanged_access_token', 'delegated_access_token', 'user_access_token', 'user_refresh_token', 'client_access_token']);
  });

  // The defect: the client-access-token kind recognised an exchanged token of a client-owned key
  // (sub = client_id) first, so its introspection lacked api_key_id.
  it('answers api_key_id for an exchanged token of a client-owned API key', async () => {
    const { key, id } = await makeKey(app.services, { kind: 'client', id: owner.id }, { scopes: ['read'] });
    const exchanged = await exchange(app.url, key).expect(200);
    const token = exchanged.body.access_token as string;
    const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString());
    expect(claims).toMatchObject({ sub: owner.id, client_id: owner.id, api_key_id: id });
    const res = await introspect(app.url, rs, token).expect(200);
    expect(res.body).toMatchObject({ active: true, sub: owner.id, client_id: owner.id, api_key_id: id, scope: 'read' });
  });

  it('still answers a client-credentials token as a client access token', async () => {
    const issued = await request(app.url)
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set('Authorization', owner.authorization)
      .send('grant_type=client_credentials')
      .expect(200);
    const res = await introspect(app.url, rs, issued.body.access_token as string).expect(200);
    expect(res.body).toMatchObject({ active: true, client_id: owner.id, sub: owner.id });
    expect(res.body).not.toHaveProperty('api_key_id');
  });
});
