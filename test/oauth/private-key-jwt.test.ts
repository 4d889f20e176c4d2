import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { Issuer } from 'openid-client';
import request from 'supertest';
import { disableClient } from '../../src/clients/service';
import type { DatabaseHandle } from '../../src/db';
import { captureLogs, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic, makeClient } from './helpers';
import { assertion, assertionForm, FORM, freePort, hs256WithPublicKey, jwksOf, makeKeyClient, testKey, unsecured, type Alg, type TestKey } from './private-key-jwt-support';

/** oauth4webapi (ESM only) in a plain Node process: discovery, then token, introspection and revocation per client. */
function runOauth4webapi(issuer: string, clients: Array<{ client_id: string; jwk: object; alg: Alg }>): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, [path.join(__dirname, '../fixtures/oauth4webapi-client.mjs'), issuer], (error, stdout, stderr) => {
      if (error) reject(new Error(stderr || error.message));
      else resolve(JSON.parse(stdout) as Array<Record<string, unknown>>);
    });
    child.stdin?.end(JSON.stringify({ clients }));
  });
}

/**
 * docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`" over real HTTP: clients that hold no secret authenticate with JWTs signed by their own
 * keys, with openid-client (in Jest) and oauth4webapi (in a child process) as the clients. Two
 * instances share the database (on Postgres two pools of their own): a `jti` used at one is refused
 * at the other. IDP_ISSUER is instance a's real URL, so the clients discover it like any issuer.
 */
describe('private_key_jwt client authentication (RFC 7523)', () => {
  let database: TestDatabase;
  let handles: DatabaseHandle[];
  let a: TestServer;
  let b: TestServer;
  let issuer: string;
  const logs = captureLogs();
  const keys: Record<Alg, TestKey> = { RS256: testKey('RS256'), PS256: testKey('PS256'), ES256: testKey('ES256') };
  /** One client per algorithm, each with its own key. */
  const clientIds = {} as Record<Alg, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    handles = [await database.open(), await database.open()];
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    const config = testConfig(database, { IDP_ISSUER: issuer, IDP_MEK: testMek(), IDP_TRUST_PROXY: 'loopback', IDP_LOG_LEVEL: 'info' });
    a = await startTestServer(config, handles[0]!, undefined, { logs, port });
    b = await startTestServer(config, handles[1]!, undefined, { logs: captureLogs() });
    for (const alg of ['RS256', 'PS256', 'ES256'] as const) clientIds[alg] = await makeKeyClient(a.services, { jwks: jwksOf(keys[alg]) });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  const tokenUrl = () => `${issuer}/oauth/token`;
  /** A request from its own address (IDP_TRUST_PROXY=loopback), so that failures of one test never block another. */
  const post = (server: TestServer, path: string, body: string, from: string) =>
    request(server.url).post(path).set('Content-Type', FORM).set('X-Forwarded-For', from).send(body);
  let addresses = 0;
  const nextAddress = () => `198.51.100.${++addresses}`;

  /** invalid_client, 401, and nothing in the response that says why. */
  const expectRefused = (res: request.Response) => {
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
    expect(res.headers['cache-control']).toBe('no-store');
  };
  /** The precise cause is in the log, at the line of the refusal. */
  const logged = (fragment: string) => expect(logs.lines.some((line) => typeof line.detail === 'string' && line.detail.includes(fragment))).toBe(true);

  it('discovery lists private_key_jwt and its algorithms for the token, introspection and revocation endpoints', async () => {
    const { body } = await request(a.url).get('/.well-known/oauth-authorization-server').expect(200);
    for (const endpoint of ['token', 'introspection', 'revocation']) {
      // Public clients (none) may use the token endpoint and revocation, never introspection.
      const none = endpoint === 'introspection' ? [] : ['none'];
      expect(body[`${endpoint}_endpoint_auth_methods_supported`]).toEqual(['client_secret_basic', 'client_secret_post', 'private_key_jwt', ...none]);
      expect(body[`${endpoint}_endpoint_auth_signing_alg_values_supported`]).toEqual(['RS256', 'PS256', 'ES256']);
    }
  });

  it.each(['RS256', 'PS256', 'ES256'] as const)('openid-client (PrivateKeyJwt, %s): token, introspection, revocation', async (alg) => {
    const discovered = await Issuer.discover(issuer);
    const client = new discovered.Client(
      { client_id: clientIds[alg], token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: alg },
      { keys: [keys[alg].privateJwk as never] },
    );
    const tokenSet = await client.grant({ grant_type: 'client_credentials', scope: 'read' });
    const accessToken = tokenSet.access_token as string;
    const { payload, protectedHeader } = await jwtVerify(accessToken, createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`)), {
      issuer,
      audience: 'https://api.test',
      typ: 'at+jwt',
      algorithms: ['RS256'],
    });
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({ sub: clientIds[alg], client_id: clientIds[alg], scope: 'read' });

    const introspection = await client.introspect(accessToken);
    expect(introspection).toMatchObject({ active: true, client_id: clientIds[alg] });
    await client.revoke(accessToken);
    expect(await client.introspect(accessToken)).toEqual({ active: false });
  });

  it('oauth4webapi (PrivateKeyJwt) with RS256, PS256 and ES256: token, introspection, revocation', async () => {
    const results = await runOauth4webapi(
      issuer,
      (['RS256', 'PS256', 'ES256'] as const).map((alg) => ({ client_id: clientIds[alg], jwk: keys[alg].privateJwk, alg })),
    );
    expect(results).toHaveLength(3);
    for (const result of results) {
      expect(result.token).toMatchObject({ token_type: 'bearer', scope: 'read' });
      expect(result.introspection).toMatchObject({ active: true, client_id: result.client_id });
      expect(result.revoked).toBe(true);
    }
  });

  it('accepts aud = the issuer, the token endpoint, or the endpoint called (string or array)', async () => {
    const id = clientIds.RS256;
    const key = keys.RS256;
    const from = nextAddress();
    await post(a, '/oauth/token', assertionForm(await assertion(key, id, issuer)), from).expect(200);
    await post(a, '/oauth/token', assertionForm(await assertion(key, id, tokenUrl())), from).expect(200);
    await post(a, '/oauth/token', assertionForm(await assertion(key, id, ['https://elsewhere.test', issuer])), from).expect(200);
    const introspect = (aud: string) => assertion(key, id, aud).then((jwt) => assertionForm(jwt, { token: 'x' }));
    await post(a, '/oauth/introspect', await introspect(`${issuer}/oauth/introspect`), from).expect(200, { active: false });
    await post(a, '/oauth/introspect', await introspect(tokenUrl()), from).expect(200, { active: false });
    await post(a, '/oauth/revoke', assertionForm(await assertion(key, id, `${issuer}/oauth/revoke`), { token: 'x' }), from).expect(200);
    // Another endpoint's URL is not this one's.
    expectRefused(await post(a, '/oauth/token', await introspect(`${issuer}/oauth/introspect`).then((f) => f.replace('token=x', 'grant_type=client_credentials')), from));
    // The client_id parameter may accompany the assertion when it names the same client.
    await post(a, '/oauth/token', `client_id=${id}&${assertionForm(await assertion(key, id, issuer))}`, from).expect(200);
  });

  describe('refusals: invalid_client (401), the cause only in the log', () => {
    // A client of its own per test (with the same RS256 key): no test's failures reach the per-client limit of another.
    let current: string;
    beforeEach(async () => {
      current = await makeKeyClient(a.services, { jwks: jwksOf(keys.RS256) });
    });
    const id = () => current;
    const key = () => keys.RS256;
    /** Refused, for `cause`: looked for in the lines logged by this request only, not by an earlier refusal. */
    const refused = async (jwt: string, cause: string, extra?: Record<string, string>) => {
      const before = logs.lines.length;
      expectRefused(await post(a, '/oauth/token', assertionForm(jwt, extra), nextAddress()));
      const causes = logs.lines.slice(before).map((line) => line.detail);
      expect(causes).toContainEqual(expect.stringContaining(cause));
    };

    it('a key that is not the client’s', async () => {
      const stranger = testKey('RS256', keys.RS256.kid);
      await refused(await assertion(stranger, id(), issuer), 'does not verify');
      // Another registered client's key, named by its own kid: not this client's either.
      await refused(await assertion(keys.ES256, id(), issuer), 'no key for ES256');
    });

    it('a wrong aud', async () => {
      await refused(await assertion(key(), id(), 'https://other-issuer.test'), 'aud "https://other-issuer.test" names neither');
      await refused(await assertion(key(), id(), `${issuer}/`), 'names neither');
    });

    it('expired, or exp more than 5 minutes ahead, or missing', async () => {
      const now = Date.now();
      await refused(await assertion(key(), id(), issuer, { claims: { iat: Math.floor(now / 1000) - 120, exp: Math.floor(now / 1000) - 60 } }), 'expired at');
      await refused(await assertion(key(), id(), issuer, { claims: { exp: Math.floor(now / 1000) + 3600 } }), 'more than 300s ahead');
      await refused(await assertion(key(), id(), issuer, { omit: ['exp'] }), 'exp is missing');
    });

    it('iat or nbf in the future beyond the 30 s tolerance', async () => {
      const now = Math.floor(Date.now() / 1000);
      await refused(await assertion(key(), id(), issuer, { claims: { iat: now + 120, exp: now + 180 } }), 'is in the future');
      await refused(await assertion(key(), id(), issuer, { claims: { nbf: now + 120, exp: now + 180 } }), 'nbf');
    });

    it('no jti, or a jti over 256 characters', async () => {
      await refused(await assertion(key(), id(), issuer, { omit: ['jti'] }), 'jti is missing');
      await refused(await assertion(key(), id(), issuer, { claims: { jti: 'j'.repeat(257) } }), 'jti is over');
    });

    it('iss or sub other than the client, and a client_id parameter naming another client', async () => {
      await refused(await assertion(key(), id(), issuer, { claims: { iss: clientIds.PS256 } }), 'iss "');
      await refused(await assertion(key(), id(), issuer, { omit: ['iss'] }), 'iss undefined');
      await refused(await assertion(key(), id(), issuer), 'is not the assertion', { grant_type: 'client_credentials', client_id: clientIds.PS256 });
    });

    it('alg none, and HS256 keyed with the client’s public key', async () => {
      await refused(unsecured(id(), issuer), 'alg "none" is not accepted');
      await refused(hs256WithPublicKey(key(), id(), issuer, 'pem'), 'alg "HS256" is not accepted');
      await refused(hs256WithPublicKey(key(), id(), issuer, 'jwk'), 'alg "HS256" is not accepted');
      // Even with an alg the key allows, a header that names another alg than the signature was made with fails.
      const es = await assertion(keys.ES256, clientIds.ES256, issuer);
      const [, payload, signature] = es.split('.');
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: keys.ES256.kid })).toString('base64url');
      await refused(`${header}.${payload}.${signature}`, 'no key for RS256');
    });

    it('a signature changed by one bit, a header that names an extension (crit, b64), and parts that are not base64url', async () => {
      for (const alg of ['RS256', 'PS256', 'ES256'] as const) {
        const own = await makeKeyClient(a.services, { jwks: jwksOf(keys[alg]) });
        const jwt = await assertion(keys[alg], own, issuer);
        const [header, payload, signature] = jwt.split('.') as [string, string, string];
        const bytes = Buffer.from(signature, 'base64url');
        bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
        await refused(`${header}.${payload}.${bytes.toString('base64url')}`, `signature (${alg}) does not verify`);
        // The same signature with a claim changed, and with the signature cut short.
        const other = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), jti: 'another' })).toString('base64url');
        await refused(`${header}.${other}.${signature}`, `signature (${alg}) does not verify`);
        await refused(`${header}.${payload}.${signature.slice(0, 20)}`, `signature (${alg}) does not verify`);
      }
      // Properly signed, but asking for an extension this verifier does not implement.
      const signed = (header: Record<string, unknown>) => {
        const now = Math.floor(Date.now() / 1000);
        const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
        const input = `${part({ alg: 'RS256', kid: key().kid, ...header })}.${part({ iss: id(), sub: id(), aud: issuer, iat: now, exp: now + 60, jti: crypto.randomUUID() })}`;
        return `${input}.${crypto.sign('sha256', Buffer.from(input), key().privateKey).toString('base64url')}`;
      };
      await post(a, '/oauth/token', assertionForm(signed({})), nextAddress()).expect(200);
      await refused(signed({ crit: ['exp'], exp: 1 }), 'names an extension');
      await refused(signed({ b64: false, crit: ['b64'] }), 'names an extension');
      const valid = await assertion(key(), id(), issuer);
      await refused(`${valid}=`, 'not a compact JWS of three base64url parts');
      // Claims that cannot be read name no client: refused before any client is looked up.
      await refused(valid.replace('.', '.+'), 'client_assertion is not a JWT naming a client in sub');
      await refused(`${valid}.x`, 'client_assertion is not a JWT naming a client in sub');
    });

    it('a header nested thousands of levels deep (in alg, in kid, elsewhere) is refused, not a 500', async () => {
      const [, payload] = (await assertion(key(), id(), issuer)).split('.') as [string, string];
      const deep = `${'['.repeat(5_000)}${']'.repeat(5_000)}`;
      for (const header of [`{"alg":${deep}}`, `{"alg":"RS256","kid":${deep}}`, `{"alg":"RS256","x":${deep}}`]) {
        await refused(`${Buffer.from(header).toString('base64url')}.${payload}.AAAA`, 'the header is nested more than');
      }
      await refused(`${Buffer.from('{"alg":').toString('base64url')}.${payload}.AAAA`, 'the header is not JSON');
      await refused(`${Buffer.from('["RS256"]').toString('base64url')}.${payload}.AAAA`, 'the header is not a JSON object');
      // The same client, its assertion shaped as usual, is served.
      await post(a, '/oauth/token', assertionForm(await assertion(key(), id(), issuer)), nextAddress()).expect(200);
    });

    it('claims nested thousands of levels deep, signed by the client’s key, are refused, not a 500; claims that are not a JSON object name no client', async () => {
      const now = Math.floor(Date.now() / 1000);
      const part = (text: string) => Buffer.from(text).toString('base64url');
      const header = part(JSON.stringify({ alg: 'RS256', kid: key().kid }));
      const claims = `{"iss":"${id()}","sub":"${id()}","aud":"${issuer}","exp":${now + 60},"jti":"${crypto.randomUUID()}","x":${'['.repeat(5_000)}${']'.repeat(5_000)}}`;
      const input = `${header}.${part(claims)}`;
      await refused(`${input}.${crypto.sign('sha256', Buffer.from(input), key().privateKey).toString('base64url')}`, 'the claims are nested more than');
      for (const notAnObject of [`["${id()}"]`, `{"sub":"${id()}"`, '"x"']) {
        await refused(`${header}.${part(notAnObject)}.AAAA`, 'client_assertion is not a JWT naming a client in sub');
      }
      // The same client, its claims shaped as usual, is served.
      await post(a, '/oauth/token', assertionForm(await assertion(key(), id(), issuer)), nextAddress()).expect(200);
    });

    it('a replayed assertion, at the same instance and at another one on the same database', async () => {
      const jwt = await assertion(key(), id(), issuer);
      await post(a, '/oauth/token', assertionForm(jwt), nextAddress()).expect(200);
      expectRefused(await post(b, '/oauth/token', assertionForm(jwt), nextAddress()));
      expectRefused(await post(a, '/oauth/token', assertionForm(jwt), nextAddress()));
      logged('replayed (jti already used)');
      // The same jti is used up at the introspection endpoint too.
      expectRefused(await post(b, '/oauth/introspect', assertionForm(jwt, { token: 'x' }), nextAddress()));
      // Concurrent presentations of one fresh assertion at both instances: exactly one succeeds.
      const fresh = await assertion(key(), id(), issuer);
      const statuses = await Promise.all([a, b, a, b].map((server) => post(server, '/oauth/token', assertionForm(fresh), nextAddress()).then((r) => r.status)));
      expect(statuses.sort()).toEqual([200, 401, 401, 401]);
    });

    it('a secret for a client that has none, and an assertion for a client with a secret', async () => {
      expectRefused(await request(a.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', basic(id(), 'guess')).send('grant_type=client_credentials'));
      logged('has no secret: it authenticates with private_key_jwt');
      expectRefused(await post(a, '/oauth/token', `grant_type=client_credentials&client_id=${id()}&client_secret=guess`, nextAddress()));
      const secretClient = await makeClient(a.services);
      await refused(await assertion(key(), secretClient.id, issuer), 'authenticates with a secret, not private_key_jwt');
    });

    it('two methods at once is invalid_request; a foreign assertion type or a non-JWT is invalid_client', async () => {
      const jwt = await assertion(key(), id(), issuer);
      const both = await request(a.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', basic(id(), 'x')).send(assertionForm(jwt));
      expect(both.status).toBe(400);
      expect(both.body.error).toBe('invalid_request');
      const withSecret = await post(a, '/oauth/token', `${assertionForm(jwt)}&client_secret=x`, nextAddress());
      expect(withSecret.body.error).toBe('invalid_request');
      const alone = await post(a, '/oauth/token', `grant_type=client_credentials&client_assertion=${jwt}`, nextAddress());
      expect(alone.body.error).toBe('invalid_request');
      const saml = await post(a, '/oauth/token', `grant_type=client_credentials&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:saml2-bearer&client_assertion=${jwt}`, nextAddress());
      expect(saml.status).toBe(401);
      expect(saml.body.error).toBe('invalid_client');
      expectRefused(await post(a, '/oauth/token', assertionForm('not-a-jwt'), nextAddress()));
      // A grant that takes no client authentication refuses an assertion as it refuses a secret.
      const exchange = await post(a, '/oauth/token', assertionForm(jwt, { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: 'x' }), nextAddress());
      expect(exchange.body.error).toBe('invalid_client');
      // The refresh grant takes an application's client (docs/sign-in.md "Sign-in for applications": this one was not given it.
      const refresh = await post(a, '/oauth/token', assertionForm(await assertion(key(), id(), issuer), { grant_type: 'refresh_token', refresh_token: 'x' }), nextAddress());
      expect(refresh.body.error).toBe('unauthorized_client');
    });

    it('a disabled client', async () => {
      const disabledKey = testKey('ES256');
      const disabled = await makeKeyClient(a.services, { jwks: jwksOf(disabledKey) });
      await disableClient(a.services.handle.db, disabled, { actor: 'test', now: new Date() });
      const res = await post(b, '/oauth/token', assertionForm(await assertion(disabledKey, disabled, issuer)), nextAddress());
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
    });
  });

  it('limits never refuse a valid assertion: after 25 failures from one address for one client, its valid assertion still gets a token', async () => {
    const key = testKey('RS256');
    const id = await makeKeyClient(a.services, { jwks: jwksOf(key) });
    const attacker = testKey('RS256', key.kid);
    const from = '203.0.113.77';
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push((await post(i % 2 === 0 ? a : b, '/oauth/token', assertionForm(await assertion(attacker, id, issuer)), from)).status);
    expect(statuses.slice(0, 20).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(20)).toContain(429);
    // Its blocked failures are refused with 429 on both instances...
    const blocked = await post(a, '/oauth/token', assertionForm(await assertion(attacker, id, issuer)), from);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    // ...while the client, from that very address and from another, at either instance, is served.
    for (const server of [a, b]) {
      await post(server, '/oauth/token', assertionForm(await assertion(key, id, issuer)), from).expect(200);
      await post(server, '/oauth/token', assertionForm(await assertion(key, id, issuer)), '192.0.2.10').expect(200);
      await post(server, '/oauth/introspect', assertionForm(await assertion(key, id, issuer), { token: 'x' }), from).expect(200, { active: false });
    }
    // A replay is a failure like any other: counted, and refused with 429 now.
    const used = await assertion(key, id, issuer);
    await post(a, '/oauth/token', assertionForm(used), '192.0.2.11').expect(200);
    expect((await post(a, '/oauth/token', assertionForm(used), from)).status).toBe(429);
  });

  it('the access token of a private_key_jwt client is what the grant says, with no secret anywhere in the client row', async () => {
    const rows = await a.services.handle.db.selectFrom('oauth_clients').select(['id', 'secret_hash', 'jwks', 'jwks_uri']).where('id', '=', clientIds.ES256).execute();
    expect(rows).toEqual([{ id: clientIds.ES256, secret_hash: null, jwks: jwksOf(keys.ES256), jwks_uri: null }]);
    const jti = crypto.randomUUID();
    const res = await post(a, '/oauth/token', assertionForm(await assertion(keys.ES256, clientIds.ES256, issuer, { claims: { jti } }), { grant_type: 'client_credentials', scope: 'write' }), nextAddress()).expect(200);
    expect(res.body).toMatchObject({ token_type: 'Bearer', scope: 'write' });
    const stored = await a.services.handle.db.selectFrom('client_assertion_jtis').selectAll().where('jti', '=', jti).execute();
    expect(stored).toHaveLength(1);
    expect(stored[0]!.client_id).toBe(clientIds.ES256);
  });
});
