import crypto from 'node:crypto';
import { SignJWT, generateKeyPair } from 'jose';
import request from 'supertest';
import { makeClient, type TestClient } from '../oauth/helpers';
import { signIn, signUp } from '../users/support';
import { createVerifier, requireAuth, InsufficientScope, InvalidRequest, InvalidToken, MissingCredentials, type AuthInfo, type Verifier } from '../../src/verifier';
import { API, USERS, claims, clientToken, resourceServer, startIdp, type Idp } from './support';

/**
 * The verifier kit against a real identity provider: every token kind accepted with the right
 * `req.auth`, every refusal with its exact status, `WWW-Authenticate` and JSON body.
 */
describe('verifier kit: tokens and refusals', () => {
  let idp: Idp;
  let verifier: Verifier;
  let app: ReturnType<typeof resourceServer>;
  let service: TestClient;
  let adminAudience: string;

  beforeAll(async () => {
    idp = await startIdp();
    adminAudience = `${idp.issuer}/admin`;
    await idp.services.handle.db.insertInto('tenants').values({ id: 'acme', name: 'Acme', disabled_at: null, created_at: new Date() }).execute();
    service = await makeClient(idp.services, { name: 'billing', scopes: ['read', 'write'], audiences: [API, 'https://other.test'], tenantId: 'acme' });
    verifier = createVerifier({
      issuer: idp.issuer,
      audience: [API, USERS, adminAudience],
      roles: {
        reader: { scope: 'read' },
        'acme-service': { tokenType: 'client', tenant: 'acme' },
        operator: [{ tokenType: 'admin', permission: 'keys:read' }, { role: 'admin' }],
        member: { tokenType: ['user', 'exchanged'] },
      },
    });
    app = resourceServer(verifier, {
      '/write': { scopes: ['write'] },
      '/admin-write': { scopes: ['read', 'admin:write'] },
      '/keys': { permissions: ['keys:read'] },
      '/rotate': { permissions: ['keys:rotate'] },
      '/operators': { roles: ['operator'] },
      '/users-only': { tokenTypes: ['user'] },
    });
  });
  afterAll(async () => {
    await idp?.close();
  });

  const get = (path: string, token?: string) => {
    const req = request(app).get(path);
    return token === undefined ? req : req.set('Authorization', `Bearer ${token}`);
  };

  /** A 401 invalid_token with exactly this description, in the header and the body. */
  async function refused(token: string, description: string): Promise<void> {
    const res = await get('/any', token);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid_token', error_description: description });
    expect(res.headers['www-authenticate']).toBe(`Bearer realm="${API}", error="invalid_token", error_description="${description.replace(/"/g, "'")}"`);
    expect(res.headers['cache-control']).toBe('no-store');
  }

  describe('accepted', () => {
    it('a user access token: subject, kind, scopes, role claim, no tenant', async () => {
      const session = await signUp(idp.issuer);
      const res = await get('/any', session.access_token);
      expect(res.status).toBe(200);
      const auth = res.body as AuthInfo;
      expect(auth).toMatchObject({ subject: session.user.id, tokenType: 'user', scopes: ['user'], tenantId: null, roles: ['member'] });
      expect(auth.clientId).toBeUndefined();
      expect(auth.claims).toMatchObject({ email: session.user.email, role: 'user', sid: expect.any(String), iss: idp.issuer, aud: USERS });
    });

    it('a user whose role is admin gets the mapped role; users-only routes accept users', async () => {
      const session = await signUp(idp.issuer);
      await idp.services.handle.db.updateTable('users').set({ role: 'admin' }).where('id', '=', session.user.id).execute();
      const again = await signIn(idp.issuer, session.user.email);
      const res = await get('/operators', again.access_token);
      expect(res.status).toBe(200);
      expect((res.body as AuthInfo).roles).toEqual(['operator', 'member']);
      expect((await get('/users-only', again.access_token)).status).toBe(200);
    });

    it('a client credentials token: client id, scopes, tenant and the roles they map to', async () => {
      const token = await clientToken(idp, service);
      const res = await get('/write', token);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        subject: service.id,
        tokenType: 'client',
        clientId: service.id,
        scopes: ['read', 'write'],
        tenantId: 'acme',
        roles: ['reader', 'acme-service'],
      });
    });

    it('an admin token (audience $issuer/admin): permissions decide permission routes and roles', async () => {
      const issued = await idp.services.adminTokens.issue({ permissions: ['keys:read'], superAdmin: false, actor: 'test' });
      const res = await get('/keys', issued.token);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ subject: `admin-token:${issued.id}`, tokenType: 'admin', scopes: [], tenantId: null, roles: ['operator'] });
      expect((res.body as AuthInfo).claims).toMatchObject({ permissions: ['keys:read'], token_type: 'admin', aud: adminAudience });
    });

    it('an exchanged token (api_key_id claim) signed by the provider is kind "exchanged"', async () => {
      const user = crypto.randomUUID();
      const token = await idp.services.sign(claims(idp, { sub: user, client_id: undefined, api_key_id: 'AbCdEfGhIjKlMnOp', scope: 'read' }), 'at+jwt');
      const res = await get('/any', token);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ subject: user, tokenType: 'exchanged', scopes: ['read'], tenantId: null, roles: ['reader', 'member'] });
      expect((res.body as AuthInfo).clientId).toBeUndefined();
    });

    it('authenticate() without Express, from a Fetch Headers object or a plain object', async () => {
      const token = await clientToken(idp, service);
      const fromHeaders = await verifier.authenticate(new Headers({ Authorization: `Bearer ${token}` }));
      expect(fromHeaders).toMatchObject({ subject: service.id, tokenType: 'client' });
      expect(Object.isFrozen(fromHeaders) && Object.isFrozen(fromHeaders.scopes) && Object.isFrozen(fromHeaders.claims)).toBe(true);
      await expect(verifier.authenticate({ authorization: `Bearer ${token}` }, { scopes: ['admin'] })).rejects.toMatchObject({
        code: 'insufficient_scope',
        status: 403,
        error_description: 'missing scope "admin"',
      });
      await expect(verifier.verifyCredential(token)).resolves.toMatchObject({ subject: service.id });
    });
  });

  describe('maxTokenAge (issue 15)', () => {
    const iso = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    let bounded: Verifier;
    beforeAll(() => {
      bounded = createVerifier({ issuer: idp.issuer, audience: API, maxTokenAge: '1h' });
    });

    it('accepts a token from the token endpoint and one within the bound', async () => {
      await expect(bounded.verifyCredential(await clientToken(idp, service))).resolves.toMatchObject({ subject: service.id, tokenType: 'client' });
      const now = Math.floor(Date.now() / 1000);
      await expect(bounded.verifyCredential(await idp.services.sign(claims(idp, { iat: now - 1800, nbf: now - 1800, exp: now + 1800 }), 'at+jwt'))).resolves.toMatchObject({ tokenType: 'client' });
    });

    it('refuses a token whose exp is 100 years ahead, at once', async () => {
      const now = Math.floor(Date.now() / 1000);
      const exp = now + 100 * 365 * 86_400;
      const token = await idp.services.sign(claims(idp, { exp }), 'at+jwt');
      // Without the option, only exp bounds it.
      await expect(verifier.verifyCredential(token)).resolves.toMatchObject({ tokenType: 'client' });
      await expect(bounded.verifyCredential(token)).rejects.toMatchObject({
        code: 'invalid_token',
        reason: 'lifetime',
        status: 401,
        error_description: `token lifetime over maxTokenAge 3600s (issued at ${iso(now)}, expires at ${iso(exp)})`,
      });
    });

    it('refuses a token issued too long ago, and one issued in the future', async () => {
      const now = Math.floor(Date.now() / 1000);
      const old = await idp.services.sign(claims(idp, { iat: now - 7200, nbf: now - 7200, exp: now + 60 }), 'at+jwt');
      await expect(bounded.verifyCredential(old)).rejects.toMatchObject({ reason: 'expired', error_description: `token too old: issued at ${iso(now - 7200)}, over maxTokenAge 3600s ago` });
      const ahead = await idp.services.sign(claims(idp, { iat: now + 86_400, nbf: now, exp: now + 86_400 + 60 }), 'at+jwt');
      await expect(bounded.verifyCredential(ahead)).rejects.toMatchObject({ reason: 'not_yet_valid', error_description: `token issued in the future (iat ${iso(now + 86_400)})` });
    });

    it('takes seconds or a duration, and refuses anything else when created', () => {
      expect(() => createVerifier({ issuer: idp.issuer, audience: API, maxTokenAge: 3600 })).not.toThrow();
      expect(() => createVerifier({ issuer: idp.issuer, audience: API, maxTokenAge: '30m' })).not.toThrow();
      for (const bad of [0, -1, 1.5, Number.NaN, 400 * 86_400, '', '1 hour', '1y', '1e3s', '-1h']) {
        expect(() => createVerifier({ issuer: idp.issuer, audience: API, maxTokenAge: bad })).toThrow(/maxTokenAge/);
      }
    });
  });

  describe('refused with a precise description', () => {
    it('expired: the expiry instant, to the second', async () => {
      const exp = Math.floor(Date.now() / 1000) - 60;
      const token = await idp.services.sign(claims(idp, { iat: exp - 300, nbf: exp - 300, exp }), 'at+jwt');
      await refused(token, `token expired at ${new Date(exp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')}`);
      await expect(verifier.verifyCredential(token)).rejects.toMatchObject({ code: 'invalid_token', reason: 'expired', status: 401 });
    });

    it('within the clock tolerance (5 s by default) an expired token still passes', async () => {
      const exp = Math.floor(Date.now() / 1000) - 1;
      const token = await idp.services.sign(claims(idp, { iat: exp - 300, nbf: exp - 300, exp }), 'at+jwt');
      expect((await get('/any', token)).status).toBe(200);
    });

    it('not yet valid', async () => {
      const nbf = Math.floor(Date.now() / 1000) + 600;
      const token = await idp.services.sign(claims(idp, { nbf }), 'at+jwt');
      await refused(token, `token not valid before ${new Date(nbf * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')}`);
    });

    it('issued in the future: iat beyond the clock tolerance, whatever exp says (issue 15)', async () => {
      const now = Math.floor(Date.now() / 1000);
      const iat = now + 86_400;
      const token = await idp.services.sign(claims(idp, { iat, nbf: now, exp: iat + 300 }), 'at+jwt');
      await refused(token, `token issued in the future (iat ${new Date(iat * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')})`);
      await expect(verifier.verifyCredential(token)).rejects.toMatchObject({ reason: 'not_yet_valid', status: 401 });
      // Within the tolerance (5 s) it passes.
      expect((await get('/any', await idp.services.sign(claims(idp, { iat: now + 2 }), 'at+jwt'))).status).toBe(200);
      // An iat no Date can hold is still a 401, named.
      await refused(await idp.services.sign(claims(idp, { iat: 1e300 }), 'at+jwt'), 'token issued in the future (iat 1e+300)');
    });

    it('another audience: a real token for another resource', async () => {
      const token = await clientToken(idp, service, { resource: 'https://other.test' });
      await refused(token, 'audience "https://other.test" not accepted');
    });

    it('another issuer, signed with the provider\'s own key', async () => {
      const token = await idp.services.sign(claims(idp, { iss: 'https://evil.example' }), 'at+jwt');
      await refused(token, 'issuer "https://evil.example" not accepted');
    });

    it('a tampered signature, and a tampered payload under the original signature', async () => {
      const token = await clientToken(idp, service);
      const [header, payload, signature] = token.split('.') as [string, string, string];
      const middle = Math.floor(signature.length / 2);
      const flipped = signature.slice(0, middle) + (signature[middle] === 'A' ? 'B' : 'A') + signature.slice(middle + 1);
      await refused(`${header}.${payload}.${flipped}`, 'signature does not verify');
      const altered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), scope: 'read write admin' })).toString('base64url');
      await refused(`${header}.${altered}.${signature}`, 'signature does not verify');
    });

    it('a foreign key: under an unknown kid, and under the current kid', async () => {
      const { privateKey } = await generateKeyPair('RS256');
      const body = claims(idp);
      const unknown = await new SignJWT(body).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'not-a-key-of-this-provider' }).sign(privateKey);
      await refused(unknown, 'unknown signing key');
      const kid = idp.services.keys.current.kid;
      const impostor = await new SignJWT(body).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid }).sign(privateKey);
      await refused(impostor, 'signature does not verify');
      const noKid = await new SignJWT(body).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' }).sign(privateKey);
      await refused(noKid, 'unknown signing key (the token names no kid)');
    });

    it('not an access token: typ JWT, or no typ', async () => {
      await refused(await idp.services.sign(claims(idp), 'JWT'), 'not an access token (typ "JWT", expected "at+jwt")');
      await refused(await idp.services.sign(claims(idp), undefined as never), 'not an access token (typ missing, expected "at+jwt")');
    });

    it('alg none and HS256 (keyed with the public key) are refused by algorithm', async () => {
      const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const kid = idp.services.keys.current.kid;
      await refused(`${encode({ alg: 'none', typ: 'at+jwt', kid })}.${encode(claims(idp))}.`, 'algorithm "none" not accepted (RS256 only)');
      const jwk = (idp.services.keys.jwks?.document as { keys: Array<{ kid: string }> }).keys.find((k) => k.kid === kid);
      const secret = new TextEncoder().encode(JSON.stringify(jwk));
      const hs256 = await new SignJWT(claims(idp)).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid }).sign(secret);
      await refused(hs256, 'algorithm "HS256" not accepted (RS256 only)');
    });

    it('malformed tokens', async () => {
      for (const token of ['not-a-jwt', 'abc.def', 'e30.e30.e30', '!!!.???.***', `${'a'.repeat(10_000)}.b.c`]) await refused(token, 'malformed token');
      // Longer than any header a Node server accepts by default: refused before any parsing.
      await expect(verifier.verifyCredential(`${'a'.repeat(20_000)}.b.c`)).rejects.toMatchObject({ reason: 'malformed', error_description: 'malformed token' });
    });

    it('a provider-signed token of no known kind, and one without sub', async () => {
      await refused(await idp.services.sign(claims(idp, { client_id: undefined }), 'at+jwt'), 'not an access token of a known kind (user, client, admin or exchanged)');
      await refused(await idp.services.sign(claims(idp, { sub: undefined }), 'at+jwt'), 'missing claim "sub"');
    });

    it('missing credentials: 401 with no error code in WWW-Authenticate (RFC 6750 §3.1)', async () => {
      const res = await get('/any');
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(`Bearer realm="${API}"`);
      expect(res.body).toEqual({ error: 'missing_credentials', error_description: 'missing credentials' });
      await expect(verifier.authenticate({})).rejects.toBeInstanceOf(MissingCredentials);
    });

    it('invalid requests: another scheme, an empty bearer, two credentials', async () => {
      const basic = await request(app).get('/any').set('Authorization', 'Basic dXNlcjpwYXNz');
      expect(basic.status).toBe(400);
      expect(basic.body).toEqual({ error: 'invalid_request', error_description: 'unsupported authorization scheme "Basic" (use Bearer)' });
      expect(basic.headers['www-authenticate']).toBe(`Bearer realm="${API}", error="invalid_request", error_description="unsupported authorization scheme 'Basic' (use Bearer)"`);
      expect((await request(app).get('/any').set('Authorization', 'Bearer ')).body).toEqual({ error: 'invalid_request', error_description: 'empty bearer token' });
      const token = await clientToken(idp, service);
      const both = await request(app).get('/any').set('Authorization', `Bearer ${token}`).set('X-API-Key', 'idpk_0123456789abcdef_0123456789abcdef0123456789');
      expect(both.status).toBe(400);
      expect(both.body.error_description).toBe('send one credential: Authorization or X-API-Key, not both');
      await expect(verifier.authenticate({ 'x-api-key': ['a', 'b'] })).rejects.toBeInstanceOf(InvalidRequest);
    });

    it('API keys without client credentials configured, and malformed API keys', async () => {
      const key = `idpk_${'A'.repeat(16)}_${'b'.repeat(43)}`;
      const res = await request(app).get('/any').set('X-API-Key', key);
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'invalid_token', error_description: 'API keys are not accepted here (this resource server has no client credentials to check them)' });
      await refused('idpk_short_secret', 'malformed API key');
      await expect(verifier.authenticate({ 'x-api-key': 'idpk_bad' })).rejects.toBeInstanceOf(InvalidToken);
    });
  });

  describe('requirements', () => {
    it('a missing scope: 403 insufficient_scope naming it, scope= in WWW-Authenticate', async () => {
      const token = await clientToken(idp, service);
      const res = await get('/admin-write', token);
      expect(res.status).toBe(403);
      expect(res.body).toEqual({ error: 'insufficient_scope', error_description: 'missing scope "admin:write"' });
      expect(res.headers['www-authenticate']).toBe(`Bearer realm="${API}", error="insufficient_scope", error_description="missing scope 'admin:write'", scope="read admin:write"`);
      const readOnly = await clientToken(idp, service, { scope: 'read' });
      expect((await get('/write', readOnly)).body).toEqual({ error: 'insufficient_scope', error_description: 'missing scope "write"' });
    });

    it('a missing permission, role or token type: 403 naming it', async () => {
      const issued = await idp.services.adminTokens.issue({ permissions: ['keys:read'], superAdmin: false, actor: 'test' });
      expect((await get('/rotate', issued.token)).body).toEqual({ error: 'insufficient_scope', error_description: 'missing permission "keys:rotate"' });
      const token = await clientToken(idp, service);
      const role = await get('/operators', token);
      expect(role.status).toBe(403);
      expect(role.body.error_description).toBe('missing role "operator"');
      expect((await get('/users-only', token)).body.error_description).toBe('token type "client" not accepted here (accepted: user)');
      const superAdmin = await idp.services.adminTokens.issue({ permissions: [], superAdmin: true, actor: 'test' });
      expect((await get('/rotate', superAdmin.token)).status).toBe(200);
    });

    it('misuse throws at once: options, role map, requirements', () => {
      expect(() => createVerifier({ issuer: 'idp.test', audience: API })).toThrow(TypeError);
      expect(() => createVerifier({ issuer: `${idp.issuer}/`, audience: API })).toThrow(/must not end with/);
      expect(() => createVerifier({ issuer: idp.issuer, audience: [] })).toThrow(/audience/);
      expect(() => createVerifier({ issuer: idp.issuer, audience: API, checkRevocation: true })).toThrow(/checkRevocation needs clientId/);
      expect(() => createVerifier({ issuer: idp.issuer, audience: API, clientId: 'x' })).toThrow(/both/);
      expect(() => createVerifier({ issuer: idp.issuer, audience: API, cache: { activeTtl: 60_000 } })).toThrow(/activeTtl/);
      expect(() => createVerifier({ issuer: idp.issuer, audience: API, roles: { everyone: {} } })).toThrow(/without conditions/);
      expect(() => createVerifier({ issuer: idp.issuer, audience: API, roles: { x: { scopes: 'read' } as never } })).toThrow(/unknown condition scopes/);
      expect(() => resourceServer(verifier, { '/x': { tokenTypes: ['robot' as never] } })).toThrow(/unknown token type robot/);
      expect(() => requireAuth({} as never)).toThrow(/options.verifier is required/);
      expect(new InsufficientScope('missing scope "x"', 'x')).toMatchObject({ code: 'insufficient_scope', status: 403 });
    });
  });

  it('discovery insists on the exact issuer: a different spelling of the same server fails closed', async () => {
    const other = createVerifier({ issuer: `http://localhost:${idp.port}`, audience: API });
    const token = await clientToken(idp, service);
    await expect(other.verifyCredential(token)).rejects.toMatchObject({
      code: 'temporarily_unavailable',
      status: 503,
      error_description: 'the identity provider cannot be used by this resource server (see its log)',
      cause: expect.objectContaining({ message: `the identity provider's metadata names issuer "${idp.issuer}", not "http://localhost:${idp.port}"` }),
    });
  });
});
