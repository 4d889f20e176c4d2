import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { createVerifier, requireAuth, type Verifier } from '../../src/verifier';
import { FakeClock, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { matchesOpenApi } from '../helpers/openapi';
import { makeUser, registerResource, startIssuer, type TestUser } from '../authorization/support';
import { ACCESS_TOKEN_TYPE, claimsOf, clientCredentialsToken, codeFlowToken, exchange, FORM, introspect, makeAgent, TOKEN_EXCHANGE, type Agent } from './support';

const TOOLS = 'https://tools.test';
const MAIL = 'https://mail.test';
const CALENDAR = 'https://calendar.test';

/**
 * docs/delegation.md "Delegation" end to end over real HTTP: a user signs in to agent A (the authorization-code
 * flow); A exchanges the user's token for one for the tool server (act: A), then hands a narrower one
 * to sub-agent B (act: B, then A). The tokens verify with jose against the JWKS and with the verifier
 * kit (req.auth.actor, requireAuth({ actors })); introspection says act and client_id; every exchange
 * is audited; and ending the session or revoking any token of the chain ends everything delegated
 * from it, at introspection and at the verifier kit with checkRevocation.
 */
describe('delegation: a user → agent A → agent B chain', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let issuer: string;
  let user: TestUser;
  let agentA: Agent;
  let agentB: Agent;
  let tool: Agent;
  let verifier: Verifier;
  let toolServer: http.Server;
  let toolUrl: string;
  const clock = new FakeClock(new Date());

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle, {}, clock.now);
    issuer = server.url;
    user = await makeUser(issuer, 'delegation');
    // The API the user grants agent A access to (docs/oauth.md "Resources": the user's token is for it.
    await registerResource(server.services, CALENDAR, 'Calendar', ['calendar:read', 'calendar:write', 'mail:read']);
    agentA = await makeAgent(server.services, {
      name: 'Agent A',
      redirect: true,
      scopes: ['openid', 'offline_access', 'calendar:read', 'calendar:write', 'mail:read'],
      audiences: [CALENDAR, TOOLS, MAIL],
      grantTypes: ['authorization_code', 'refresh_token', TOKEN_EXCHANGE],
    });
    agentB = await makeAgent(server.services, { name: 'Agent B', scopes: ['calendar:read'], audiences: [TOOLS], grantTypes: ['client_credentials', TOKEN_EXCHANGE] });
    tool = await makeAgent(server.services, { name: 'Tool server', scopes: ['introspect'], audiences: [TOOLS] });

    // The tool server of docs/delegation.md "Delegation": the verifier kit, checking revocation at introspection.
    verifier = createVerifier({ issuer, audience: TOOLS, clientId: tool.id, clientSecret: tool.secret, checkRevocation: true, cache: { activeTtl: 0, inactiveTtl: 0 } });
    const app = express();
    const answer = (req: express.Request, res: express.Response) => void res.json(req.auth);
    app.get('/calendar', requireAuth({ verifier, scopes: ['calendar:read'] }), answer);
    app.get('/for-b', requireAuth({ verifier, actors: [agentB.id] }), answer);
    app.get('/for-a-and-b', requireAuth({ verifier, actors: [agentA.id, agentB.id] }), answer);
    app.get('/no-agents', requireAuth({ verifier, actors: [] }), answer);
    toolServer = http.createServer(app);
    await new Promise<void>((resolve) => toolServer.listen(0, '127.0.0.1', resolve));
    toolUrl = `http://127.0.0.1:${(toolServer.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => (toolServer ? toolServer.close(() => resolve()) : resolve()));
    await server?.close();
    await database?.drop();
  });

  const userToken = async (scope = 'openid calendar:read calendar:write mail:read') => codeFlowToken(issuer, agentA, user, scope, CALENDAR);
  /** A's token for the tool server, then B's narrower one handed over by A with B's own token as actor_token. */
  const chain = async (subject: string) => {
    const hop1 = await exchange(issuer, agentA, subject, { scope: 'calendar:read calendar:write', resource: TOOLS }).expect(200).expect(matchesOpenApi);
    const actorToken = await clientCredentialsToken(issuer, agentB);
    const hop2 = await exchange(issuer, agentA, hop1.body.access_token as string, { scope: 'calendar:read', actor_token: actorToken, actor_token_type: ACCESS_TOKEN_TYPE })
      .expect(200)
      .expect(matchesOpenApi);
    return { hop1: hop1.body.access_token as string, hop2: hop2.body.access_token as string, bodies: [hop1.body, hop2.body] };
  };
  const active = async (token: string) => (await introspect(issuer, tool, token)).active === true;
  const atTool = (path: string, token: string) => request(toolUrl).get(path).set('Authorization', `Bearer ${token}`);

  it('issues the chain with act nested as RFC 8693 §4.1 shows, verified by jose against the JWKS', async () => {
    const subject = await userToken();
    const subjectClaims = claimsOf(subject.access_token);
    const { hop1, hop2, bodies } = await chain(subject.access_token);
    for (const body of bodies) {
      expect(body).toEqual({ access_token: expect.any(String), issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: expect.any(Number), scope: expect.any(String) });
    }
    expect(bodies.map((b) => b.scope)).toEqual(['calendar:read calendar:write', 'calendar:read']);

    const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
    const verified = async (token: string) => (await jwtVerify(token, jwks, { issuer, audience: TOOLS, typ: 'at+jwt', algorithms: ['RS256'] })).payload;
    const first = await verified(hop1);
    const second = await verified(hop2);
    expect(first).toMatchObject({ sub: user.id, client_id: agentA.id, act: { sub: agentA.id }, sid: subjectClaims.sid, scope: 'calendar:read calendar:write', aud: TOOLS });
    expect(first.act).toEqual({ sub: agentA.id });
    expect(second).toMatchObject({ sub: user.id, client_id: agentB.id, sid: subjectClaims.sid, scope: 'calendar:read', aud: TOOLS });
    expect(second.act).toEqual({ sub: agentB.id, act: { sub: agentA.id } });
    // Never past the subject's expiry; no tenant for a user without one; no may_act.
    expect(second.exp).toBeLessThanOrEqual(subjectClaims.exp as number);
    expect(first.exp).toBeLessThanOrEqual(subjectClaims.exp as number);
    expect(second).not.toHaveProperty('tenant_id');
    expect(second).not.toHaveProperty('may_act');
  });

  it('no refresh token, whatever the subject had', async () => {
    const subject = await userToken('openid offline_access calendar:read');
    expect(subject.refresh_token).toEqual(expect.any(String));
    const res = await exchange(issuer, agentA, subject.access_token, { resource: TOOLS }).expect(200);
    expect(res.body).not.toHaveProperty('refresh_token');
    // Without scope: the subject's scopes the actor is allowed (offline_access and openid included, both A's).
    expect(res.body.scope).toBe('openid offline_access calendar:read');
  });

  it('the verifier kit: req.auth.actor outermost first, requireAuth({ actors }) requires, allows or forbids delegation', async () => {
    const { hop1, hop2 } = await chain((await userToken()).access_token);
    const auth = (await atTool('/calendar', hop2).expect(200)).body;
    expect(auth).toMatchObject({ subject: user.id, tokenType: 'user', clientId: agentB.id, actor: [agentB.id, agentA.id], scopes: ['calendar:read'] });
    expect((await atTool('/calendar', hop1).expect(200)).body.actor).toEqual([agentA.id]);
    expect((await atTool('/for-b', hop2).expect(200)).body.actor).toEqual([agentB.id, agentA.id]);
    expect((await atTool('/for-a-and-b', hop2).expect(200)).body.subject).toBe(user.id);

    const forbidden = async (path: string, token: string, description: RegExp) => {
      const res = await atTool(path, token).expect(403);
      expect(res.body).toEqual({ error: 'insufficient_scope', error_description: expect.stringMatching(description) });
    };
    await forbidden('/for-b', hop1, /actor ".*" not in the delegation chain/);
    await forbidden('/no-agents', hop2, /delegated tokens are not accepted here/);
    // A client's own token is no delegation: [] and refused where an actor is required.
    const own = await clientCredentialsToken(issuer, tool);
    expect((await atTool('/no-agents', own).expect(200)).body.actor).toEqual([]);
    await forbidden('/for-b', own, /a delegated token is required/);
    expect(() => requireAuth({ verifier, actors: [''] })).toThrow(/actors must be an array of non-empty strings/);
  });

  it('introspection answers act and client_id; every exchange is audited with subject, actor_chain, scope and audience', async () => {
    const subject = await userToken();
    const { hop1, hop2 } = await chain(subject.access_token);
    const answer = await introspect(issuer, tool, hop2);
    expect(answer).toMatchObject({
      active: true,
      token_type: 'Bearer',
      sub: user.id,
      client_id: agentB.id,
      act: { sub: agentB.id, act: { sub: agentA.id } },
      sid: claimsOf(subject.access_token).sid,
      scope: 'calendar:read',
      aud: TOOLS,
      iss: issuer,
    });
    const jtis = [claimsOf(hop1).jti, claimsOf(hop2).jti];
    const events = (await handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'token.exchange').execute())
      .filter((e) => jtis.includes(e.details.jti))
      .sort((a, b) => jtis.indexOf(a.details.jti) - jtis.indexOf(b.details.jti));
    expect(events.map((e) => ({ actor: e.actor, target: e.target, details: e.details }))).toEqual([
      {
        actor: `client:${agentA.id}`,
        target: user.id,
        details: expect.objectContaining({ subject: user.id, actor_chain: [agentA.id], scope: 'calendar:read calendar:write', audience: TOOLS, subject_jti: claimsOf(subject.access_token).jti }),
      },
      {
        actor: `client:${agentA.id}`,
        target: user.id,
        details: expect.objectContaining({ subject: user.id, actor_chain: [agentB.id, agentA.id], scope: 'calendar:read', audience: TOOLS, subject_jti: jtis[0] }),
      },
    ]);
    // No token is ever written to the audit log.
    expect(JSON.stringify(events)).not.toContain(hop2.split('.')[2]);
  });

  it('B holds what A handed it: B may exchange it further, A no longer may', async () => {
    const { hop2 } = await chain((await userToken()).access_token);
    const further = await exchange(issuer, agentB, hop2, { resource: TOOLS }).expect(200);
    expect(claimsOf(further.body.access_token as string).act).toEqual({ sub: agentB.id, act: { sub: agentB.id, act: { sub: agentA.id } } });
    const refused = await exchange(issuer, agentA, hop2).expect(400);
    expect(refused.body).toEqual({ error: 'unauthorized_client', error_description: 'this client is not the current actor of subject_token' });
  });

  describe('revocation reaches every token delegated from a revoked one', () => {
    it('revoking the user token (its client, by jti) ends the whole chain: introspection and the verifier kit with checkRevocation', async () => {
      const subject = await userToken();
      const { hop1, hop2 } = await chain(subject.access_token);
      expect(await active(hop2)).toBe(true);
      await atTool('/calendar', hop2).expect(200);
      await request(issuer).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', agentA.authorization).send(`token=${subject.access_token}`).expect(200);
      expect(await active(subject.access_token)).toBe(false);
      expect(await active(hop1)).toBe(false);
      expect(await active(hop2)).toBe(false);
      const res = await atTool('/calendar', hop2).expect(401);
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
      expect(res.body.error_description).toMatch(/revoked/);
      // Nor can it be exchanged again.
      expect((await exchange(issuer, agentA, hop1).expect(400)).body.error).toBe('invalid_grant');
    });

    it('revoking a delegated token (its holder) ends those delegated from it, not its subject', async () => {
      const subject = await userToken();
      const { hop1, hop2 } = await chain(subject.access_token);
      // Only its holder, A, may revoke hop1; B may not (RFC 7009 §2.1), and nothing changes.
      const foreign = await request(issuer).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', agentB.authorization).send(`token=${hop1}`).expect(400);
      expect(foreign.body.error).toBe('unauthorized_client');
      expect(await active(hop1)).toBe(true);
      await request(issuer).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', agentA.authorization).send(`token=${hop1}`).expect(200);
      expect(await active(hop1)).toBe(false);
      expect(await active(hop2)).toBe(false);
      expect(await active(subject.access_token)).toBe(true);
    });

    it('ending the user session (/oauth/logout with the ID token) ends every token delegated from it, and no other session\'s', async () => {
      const subject = await userToken();
      const { hop1, hop2 } = await chain(subject.access_token);
      const other = await userToken(); // another sign-in (another browser) of the same user
      const { hop2: otherHop } = await chain(other.access_token);
      const res = await request(issuer)
        .get(`/oauth/logout?${new URLSearchParams({ id_token_hint: subject.id_token as string })}`)
        .set('Cookie', subject.cookie);
      // The hint names this browser's session: signed out at once, no confirmation asked.
      expect(res.status).toBe(200);
      expect(res.text).not.toContain('name="decision"');
      for (const token of [subject.access_token, hop1, hop2]) expect(await active(token)).toBe(false);
      await atTool('/calendar', hop2).expect(401);
      expect(await active(otherHop)).toBe(true);
      await atTool('/calendar', otherHop).expect(200);
    });

    it('ending the user session at /auth/v1/logout with the application\'s access token ends every token delegated from it', async () => {
      const subject = await userToken();
      const { hop1, hop2 } = await chain(subject.access_token);
      expect(await active(hop2)).toBe(true);
      await request(issuer).post('/auth/v1/logout').set('Authorization', `Bearer ${subject.access_token}`).expect(204);
      for (const token of [subject.access_token, hop1, hop2]) expect(await active(token)).toBe(false);
      await atTool('/calendar', hop2).expect(401);
    });

    it('revoking the refresh token of the session (its client) ends the tokens delegated from the session', async () => {
      const subject = await userToken('openid offline_access calendar:read');
      const hop = (await exchange(issuer, agentA, subject.access_token, { scope: 'calendar:read', resource: TOOLS }).expect(200)).body.access_token as string;
      expect(await active(hop)).toBe(true);
      await request(issuer).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', agentA.authorization).send(`token=${subject.refresh_token}`).expect(200);
      expect(await active(hop)).toBe(false);
    });
  });
});
