import crypto from 'node:crypto';
import { SignJWT } from 'jose';
import request from 'supertest';
import { clientPolicy, createPublicClient, disableClient } from '../../src/clients/service';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { createTenant } from '../../src/tenants/repository';
import { updateUser } from '../../src/users/repository';
import { captureLogs, FakeClock, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { matchesOpenApi } from '../helpers/openapi';
import { eventually } from '../oauth/helpers';
import { freePort } from '../oauth/private-key-jwt-support';
import { issuerEnv, makeUser, registerResource, type TestUser } from '../authorization/support';
import { cli, signUp } from '../users/support';
import { ACCESS_TOKEN_TYPE, claimsOf, clientCredentialsToken, codeFlowToken, exchange, FORM, makeAgent, REDIRECT_URI, TOKEN_EXCHANGE, type Agent } from './support';

const CALENDAR = 'https://calendar.test';
const TOOLS = 'https://tools.test';
const MAIL = 'https://mail.test';
const CODE_FLOW = ['authorization_code', 'refresh_token'];

/**
 * Every refusal of docs/delegation.md "Delegation" over real HTTP, each with its RFC 6749 / RFC 8693 code, the
 * no-store error body, no token issued (no `token.exchange` audit event), and a log line naming its
 * cause (never a token): a subject token the client does not hold, a client without the grant, scope
 * widening, a resource not allowed, an expired / revoked / forged subject, the depth cap
 * (IDP_MAX_DELEGATION_DEPTH=2 here), requested_token_type other than an access token, and another
 * tenant's subject or actor.
 */
describe('delegation: refusals', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let issuer: string;
  const clock = new FakeClock(new Date());
  const logs = captureLogs();
  let user: TestUser;
  let acmeUser: TestUser;
  /** A code-flow application allowed the exchange; B, a service allowed it; C, an application not allowed it. */
  let agentA: Agent;
  let agentB: Agent;
  let agentC: Agent;
  /** Of tenant acme, allowed the exchange. */
  let acmeAgent: Agent;
  /** A service of tenant globex. */
  let globexAgent: Agent;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    const port = await freePort();
    env = issuerEnv(database, port, { IDP_LOG_LEVEL: 'info', IDP_MAX_DELEGATION_DEPTH: '2' });
    server = await startTestServer(loadConfig(env), handle, clock.now, { port, logs });
    issuer = server.url;
    const { services } = server;
    await createTenant(handle.db, { id: 'acme', name: 'Acme', now: clock.now() });
    await createTenant(handle.db, { id: 'globex', name: 'Globex', now: clock.now() });
    await registerResource(services, CALENDAR, 'Calendar', ['calendar:read', 'calendar:write', 'mail:read']);
    user = await makeUser(issuer, 'refusals');
    acmeUser = await makeUser(issuer, 'acme');
    await updateUser(handle.db, acmeUser.id, { tenantId: 'acme', now: clock.now() });
    const scopes = ['openid', 'calendar:read', 'calendar:write', 'mail:read'];
    agentA = await makeAgent(services, { name: 'Agent A', redirect: true, scopes, audiences: [CALENDAR, TOOLS, MAIL], grantTypes: [...CODE_FLOW, TOKEN_EXCHANGE] });
    agentB = await makeAgent(services, { name: 'Agent B', scopes: ['calendar:read'], audiences: [TOOLS], grantTypes: ['client_credentials', TOKEN_EXCHANGE] });
    agentC = await makeAgent(services, { name: 'Agent C', redirect: true, scopes, audiences: [CALENDAR, TOOLS] });
    acmeAgent = await makeAgent(services, { name: 'Acme agent', redirect: true, scopes, audiences: [CALENDAR, TOOLS], grantTypes: [...CODE_FLOW, TOKEN_EXCHANGE], tenantId: 'acme' });
    globexAgent = await makeAgent(services, { name: 'Globex agent', scopes: ['calendar:read'], audiences: [TOOLS], grantTypes: ['client_credentials'], tenantId: 'globex' });
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const userToken = async (app: Agent = agentA, who: TestUser = user, scope = 'openid calendar:read mail:read') => (await codeFlowToken(issuer, app, who, scope, CALENDAR)).access_token;
  const exchanges = async () => Number((await handle.db.selectFrom('audit_events').select((eb) => eb.fn.countAll().as('n')).where('action', '=', 'token.exchange').executeTakeFirstOrThrow()).n);
  /** The refusal: its status and code, the no-store error body, documented; no exchange audited; its cause logged. */
  const refused = async (send: () => Promise<request.Response>, error: string, status = 400): Promise<string> => {
    const before = await exchanges();
    const logged = logs.lines.length;
    const res = await send();
    matchesOpenApi(res);
    expect([res.status, res.body.error]).toEqual([status, error]);
    expect(res.body).toEqual({ error, error_description: expect.any(String) });
    expect(res.headers['cache-control']).toBe('no-store');
    expect(await exchanges()).toBe(before);
    if (status === 400) {
      // The grant's own refusals, or the endpoint's (a client not allowed the grant type) with its detail.
      const line = logs.lines.slice(logged).find((l) => l.event === 'token.exchange.refused' || (l.endpoint === 'token' && l.detail !== undefined));
      expect(line).toMatchObject({ error });
      expect(line?.cause ?? line?.detail).toEqual(expect.any(String));
    }
    return res.body.error_description as string;
  };

  it('a subject token the client does not hold: unauthorized_client', async () => {
    // Issued to another application.
    const cs = await userToken(agentC);
    expect(await refused(() => exchange(issuer, agentA, cs), 'unauthorized_client')).toBe('subject_token was not issued to this client');
    // A delegated token whose current actor is another client.
    const hop = (await exchange(issuer, agentA, await userToken(), { scope: 'calendar:read', resource: TOOLS, actor_token: await clientCredentialsToken(issuer, agentB), actor_token_type: ACCESS_TOKEN_TYPE }).expect(200)).body
      .access_token as string;
    expect(await refused(() => exchange(issuer, agentA, hop), 'unauthorized_client')).toBe('this client is not the current actor of subject_token');
    // A /auth/v1 token names no client: the API key exchange is the way there.
    const own = await signUp(issuer);
    expect(await refused(() => exchange(issuer, agentA, own.access_token), 'unauthorized_client')).toMatch(/names no client and cannot be delegated/);
  });

  it('a client not allowed the grant: unauthorized_client; none authenticated: invalid_client; a public client: unauthorized_client', async () => {
    const cs = await userToken(agentC);
    expect(await refused(() => exchange(issuer, agentC, cs), 'unauthorized_client')).toMatch(/may not use grant_type urn:ietf:params:oauth:grant-type:token-exchange/);
    await refused(() => exchange(issuer, undefined, cs), 'invalid_client', 401);
    const pub = await createPublicClient(
      handle.db,
      { name: 'Public agent', scopes: ['calendar:read'], audiences: [TOOLS], redirectUris: [REDIRECT_URI], grantTypes: [...CODE_FLOW, TOKEN_EXCHANGE] },
      clientPolicy(server.services.config),
      { actor: 'test', now: clock.now() },
    );
    const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: cs, subject_token_type: ACCESS_TOKEN_TYPE, client_id: pub.id });
    expect(await refused(() => request(issuer).post('/oauth/token').set('Content-Type', FORM).send(form.toString()), 'unauthorized_client')).toMatch(/public client/);
    // Allowed by the operator (the list replaces the default): then C may exchange its own token.
    const updated = await cli(env, handle, 'clients', 'update', agentC.id, '--grant-type', 'authorization_code', '--grant-type', 'refresh_token', '--grant-type', TOKEN_EXCHANGE, '--json');
    expect(updated.code).toBe(0);
    expect(JSON.parse(updated.stdout).grant_types).toEqual([...CODE_FLOW, TOKEN_EXCHANGE]);
    await eventually(async () => {
      expect((await exchange(issuer, agentC, cs, { resource: TOOLS })).status).toBe(200);
    }, 5_000);
  });

  it('scope widening: invalid_scope; a resource not allowed: invalid_target', async () => {
    const subject = await userToken(agentA, user, 'calendar:read mail:read');
    // Beyond the subject token (A may have calendar:write; the user did not grant it).
    expect(await refused(() => exchange(issuer, agentA, subject, { scope: 'calendar:read calendar:write' }), 'invalid_scope')).toMatch(/calendar:write/);
    // Beyond the new actor's scopes (B has calendar:read only).
    const actor = await clientCredentialsToken(issuer, agentB);
    await refused(() => exchange(issuer, agentA, subject, { scope: 'mail:read', actor_token: actor, actor_token_type: ACCESS_TOKEN_TYPE }), 'invalid_scope');
    await refused(() => exchange(issuer, agentA, subject, { resource: 'https://evil.test' }), 'invalid_target');
    await refused(() => exchange(issuer, agentA, subject, { audience: 'https://evil.test' }), 'invalid_target');
    await refused(() => exchange(issuer, agentA, subject, { resource: TOOLS, audience: MAIL }), 'invalid_target');
    // MAIL is A's but not B's: the new actor's audiences bound it.
    await refused(() => exchange(issuer, agentA, subject, { resource: MAIL, actor_token: actor, actor_token_type: ACCESS_TOKEN_TYPE }), 'invalid_target');
    // The narrowest that is allowed passes.
    const ok = await exchange(issuer, agentA, subject, { resource: TOOLS, actor_token: actor, actor_token_type: ACCESS_TOKEN_TYPE }).expect(200);
    expect(ok.body.scope).toBe('calendar:read');
  });

  it('a revoked, forged or foreign-kind subject: invalid_grant', async () => {
    const subject = await userToken();
    const [header, payload, signature] = subject.split('.') as [string, string, string];
    // The signature of another token; the claims edited; signed by a key that is not ours.
    const other = (await userToken()).split('.')[2] as string;
    await refused(() => exchange(issuer, agentA, `${header}.${payload}.${other}`), 'invalid_grant');
    const edited = Buffer.from(JSON.stringify({ ...claimsOf(subject), scope: 'calendar:read calendar:write mail:read' })).toString('base64url');
    await refused(() => exchange(issuer, agentA, `${header}.${edited}.${signature}`), 'invalid_grant');
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = (JSON.parse(Buffer.from(header, 'base64url').toString()) as { kid: string }).kid;
    const foreign = await new SignJWT(claimsOf(subject)).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid }).sign(privateKey);
    await refused(() => exchange(issuer, agentA, foreign), 'invalid_grant');
    // A forged delegated token (act added to a user token's claims): not ours either.
    const forgedAct = await new SignJWT({ ...claimsOf(subject), token_type: undefined, act: { sub: agentA.id }, delegated_from: ['x'] })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
      .sign(privateKey);
    await refused(() => exchange(issuer, agentA, forgedAct), 'invalid_grant');
    // Not a user's token: a client's own, an API key's exchange, anything JWT-shaped.
    const clientOwn = await clientCredentialsToken(issuer, agentB);
    await refused(() => exchange(issuer, agentA, clientOwn), 'invalid_grant');
    await refused(() => exchange(issuer, agentA, 'a.b.c'), 'invalid_grant');
    // Revoked by its client.
    await request(issuer).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', agentA.authorization).send(`token=${subject}`).expect(200);
    expect(await refused(() => exchange(issuer, agentA, subject), 'invalid_grant')).toMatch(/revoked/);
  });

  it('the actor token: valid, unexpired, not revoked, of an active client in the tenant: else invalid_grant', async () => {
    const subject = await userToken();
    const withActor = (actor: string) => () => exchange(issuer, agentA, subject, { resource: TOOLS, actor_token: actor, actor_token_type: ACCESS_TOKEN_TYPE });
    // A user's token is not a client's proof of itself.
    await refused(withActor(await userToken()), 'invalid_grant');
    await refused(withActor('not-a-token'), 'invalid_grant');
    const revoked = await clientCredentialsToken(issuer, agentB);
    await request(issuer).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', agentB.authorization).send(`token=${revoked}`).expect(200);
    await refused(withActor(revoked), 'invalid_grant');
    const doomed = await makeAgent(server.services, { name: 'Doomed', scopes: ['calendar:read'], audiences: [TOOLS] });
    const doomedToken = await clientCredentialsToken(issuer, doomed);
    await disableClient(handle.db, doomed.id, { actor: 'test', now: clock.now() });
    await eventually(async () => {
      expect((await withActor(doomedToken)()).body.error).toBe('invalid_grant');
    }, 5_000);
  });

  it("another tenant's subject or actor: invalid_grant", async () => {
    // A user of acme signed in at a client without a tenant: the acme client may not present that token…
    const acmeSubject = await userToken(agentA, acmeUser);
    expect(claimsOf(acmeSubject).tenant_id).toBe('acme');
    // …nor can a globex client act for an acme user.
    const globexToken = await clientCredentialsToken(issuer, globexAgent);
    expect(await refused(() => exchange(issuer, agentA, acmeSubject, { actor_token: globexToken, actor_token_type: ACCESS_TOKEN_TYPE }), 'invalid_grant')).toMatch(/another tenant/);
    // The tenant-bound client holding a token of its tenant: the globex actor token is another tenant's.
    const acmeOwn = await userToken(acmeAgent, acmeUser);
    expect(await refused(() => exchange(issuer, acmeAgent, acmeOwn, { actor_token: globexToken, actor_token_type: ACCESS_TOKEN_TYPE }), 'invalid_grant')).toMatch(/another tenant/);
    // A token of a user without a tenant, or of another tenant, at the acme client: refused before holding is asked.
    const plain = await userToken();
    expect(await refused(() => exchange(issuer, acmeAgent, plain), 'invalid_grant')).toBe('subject_token belongs to another tenant');
    expect(await refused(() => exchange(issuer, acmeAgent, acmeSubject), 'unauthorized_client')).toBe('subject_token was not issued to this client');
    // Its own: carries the tenant.
    const ok = await exchange(issuer, acmeAgent, acmeOwn, { resource: TOOLS }).expect(200);
    expect(claimsOf(ok.body.access_token as string)).toMatchObject({ tenant_id: 'acme', client_id: acmeAgent.id });
  });

  it('the form: requested_token_type other than an access token, token types, actor_token without its type: invalid_request', async () => {
    const subject = await userToken();
    for (const type of ['urn:ietf:params:oauth:token-type:refresh_token', 'urn:ietf:params:oauth:token-type:id_token', 'urn:ietf:params:oauth:token-type:jwt']) {
      expect(await refused(() => exchange(issuer, agentA, subject, { requested_token_type: type }), 'invalid_request')).toMatch(/requested_token_type/);
    }
    await refused(() => exchange(issuer, agentA, subject, { subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }), 'invalid_request');
    const actor = await clientCredentialsToken(issuer, agentB);
    expect(await refused(() => exchange(issuer, agentA, subject, { actor_token: actor }), 'invalid_request')).toBe('actor_token_type is required with actor_token');
    await refused(() => exchange(issuer, agentA, subject, { actor_token_type: ACCESS_TOKEN_TYPE }), 'invalid_request');
    await refused(() => exchange(issuer, agentA, subject, { actor_token: actor, actor_token_type: 'urn:ietf:params:oauth:token-type:jwt' }), 'invalid_request');
    // Accepted when it says access_token.
    await exchange(issuer, agentA, subject, { resource: TOOLS, requested_token_type: ACCESS_TOKEN_TYPE }).expect(200);
  });

  it('depth over IDP_MAX_DELEGATION_DEPTH (2 here): invalid_request', async () => {
    const hop1 = (await exchange(issuer, agentA, await userToken(), { scope: 'calendar:read', resource: TOOLS }).expect(200)).body.access_token as string;
    const hop2 = (await exchange(issuer, agentA, hop1, { actor_token: await clientCredentialsToken(issuer, agentB), actor_token_type: ACCESS_TOKEN_TYPE }).expect(200)).body.access_token as string;
    expect(claimsOf(hop2).act).toEqual({ sub: agentB.id, act: { sub: agentA.id } });
    expect(await refused(() => exchange(issuer, agentB, hop2), 'invalid_request')).toBe('delegation depth 3 is over the limit of 2 (IDP_MAX_DELEGATION_DEPTH)');
  });

  it('no log line carries a token, and an expired subject is invalid_grant (last: it moves the clock past every token)', async () => {
    const subject = await userToken();
    const hop = (await exchange(issuer, agentA, subject, { resource: TOOLS }).expect(200)).body.access_token as string;
    const exp = claimsOf(subject).exp as number;
    clock.advance(exp * 1000 - clock.now().getTime() + 1_000);
    expect(await refused(() => exchange(issuer, agentA, subject), 'invalid_grant')).toMatch(/expired/);
    expect(await refused(() => exchange(issuer, agentA, hop), 'invalid_grant')).toMatch(/expired at/);
    const text = logs.text();
    for (const token of [subject, hop]) expect(text).not.toContain(token.split('.')[2] as string);
  });
});
