import crypto from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, SignJWT } from 'jose';
import request from 'supertest';
import { runCli } from '../../src/cli/program';
import { deleteClient, disableClient } from '../../src/clients/service';
import type { DatabaseHandle } from '../../src/db';
import { createTenant, setTenantDisabled } from '../../src/tenants/repository';
import { FakeClock, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually, makeClient, type TestClient } from './helpers';

const FORM = 'application/x-www-form-urlencoded';

describe('introspection (RFC 7662) and revocation (RFC 7009) of client access tokens', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let app: TestServer;
  // Starts at the real time so stock verifiers agree; moved forward to expire tokens.
  const clock = new FakeClock(new Date());
  const mek = testMek('introspection-mek');
  let owner: TestClient;
  let other: TestClient;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    app = await startTestServer(testConfig(database, { IDP_MEK: mek }), handle, clock.now);
    owner = await makeClient(app.services, { name: 'owner' });
    other = await makeClient(app.services, { name: 'other' });
  });
  afterAll(async () => {
    await app.close();
    await database.drop();
  });

  const issue = async (client: TestClient = owner): Promise<string> =>
    (await request(app.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', client.authorization).send('grant_type=client_credentials').expect(200)).body.access_token;
  const introspect = (token: string, client: TestClient = owner) =>
    request(app.url).post('/oauth/introspect').set('Content-Type', FORM).set('Authorization', client.authorization).send(`token=${encodeURIComponent(token)}`);
  const revoke = (token: string, client: TestClient = owner) =>
    request(app.url).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', client.authorization).send(`token=${encodeURIComponent(token)}&token_type_hint=access_token`);
  const expectInactive = async (token: string, client: TestClient = owner) => {
    const res = await introspect(token, client).expect(200);
    expect(res.body).toEqual({ active: false });
    expect(res.headers['cache-control']).toBe('no-store');
  };
  const idp = async (args: string[]) => {
    let stdout = '';
    let stderr = '';
    const env = { IDP_LOG_LEVEL: 'silent', IDP_MEK: mek, IDP_ISSUER: 'http://idp.test', ...database.env };
    const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env }, { handle, now: clock.now });
    return { code, stdout, stderr };
  };

  it('answers the claims of an active token, to its own client and to any other authenticated client', async () => {
    const token = await issue();
    for (const asker of [owner, other]) {
      const res = await introspect(token, asker).expect(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toMatchObject({ active: true, client_id: owner.id, sub: owner.id, scope: 'read write', token_type: 'Bearer', aud: 'https://api.test', iss: 'http://idp.test' });
      expect(typeof res.body.exp).toBe('number');
      expect(typeof res.body.jti).toBe('string');
    }
  });

  it('revokes its own token: inactive afterwards, idempotent; another client’s revocation is refused', async () => {
    const token = await issue();
    const refused = await revoke(token, other).expect(400);
    expect(refused.body).toEqual({ error: 'unauthorized_client', error_description: expect.any(String) });
    expect((await introspect(token).expect(200)).body.active).toBe(true);

    const res = await revoke(token).expect(200);
    expect(res.text).toBe('');
    expect(res.headers['cache-control']).toBe('no-store');
    await expectInactive(token);
    await expectInactive(token, other);
    await revoke(token).expect(200);
    // Still verifiable offline: revocation only reaches verifiers that introspect.
    const jwks = createRemoteJWKSet(new URL(`${app.url}/.well-known/jwks.json`));
    await expect(jwtVerify(token, jwks, { issuer: 'http://idp.test', audience: 'https://api.test', typ: 'at+jwt', algorithms: ['RS256'], currentDate: clock.now() })).resolves.toBeDefined();
  });

  it('answers 200 to the revocation of anything invalid (RFC 7009 §2.2)', async () => {
    await revoke('not-a-token').expect(200);
    await revoke('a.b.c').expect(200);
  });

  it('treats forged, tampered, unsigned and foreign tokens as inactive', async () => {
    const token = await issue();
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());

    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, scope: 'read write admin' })).toString('base64url')}.${signature}`;
    await expectInactive(tampered);

    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${payload}.`;
    await expectInactive(unsigned);

    // Same claims and the real kid, signed by an attacker's key.
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: app.services.keys.current.kid }).sign(privateKey);
    await expectInactive(forged);

    // HS256 with the public key as the secret (algorithm confusion).
    const confused = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: app.services.keys.current.kid }).sign(new TextEncoder().encode(JSON.stringify(app.services.keys.jwks!.document.keys[0])));
    await expectInactive(confused);

    await expectInactive('garbage');
    await expectInactive(`${header}.${payload}`);
  });

  it('treats tokens of another kind, issued by this server, as inactive', async () => {
    const now = Math.floor(clock.now().getTime() / 1000);
    const base = { iss: 'http://idp.test', aud: 'https://api.test', iat: now, nbf: now, exp: now + 60, jti: crypto.randomUUID() };
    // Right claims, wrong typ; and a user-style token (sid, sub not the client).
    await expectInactive(await app.services.sign({ ...base, sub: owner.id, client_id: owner.id, scope: 'read' }, 'JWT'));
    await expectInactive(await app.services.sign({ ...base, sub: 'user-1', client_id: owner.id, sid: 's1', scope: 'read' }, 'at+jwt'));
  });

  it('treats expired tokens as inactive, and sweeps deny-list entries once they have expired', async () => {
    const token = await issue();
    await revoke(token).expect(200);
    clock.advance(3_600_000 + 1_000);
    await expectInactive(token);
    const before = await handle.db.selectFrom('revoked_access_tokens').select('jti').execute();
    expect(before.length).toBeGreaterThan(0);
    await app.services.oauth.sweep();
    expect(await handle.db.selectFrom('revoked_access_tokens').select('jti').execute()).toEqual([]);
  });

  it('treats tokens of a disabled or deleted client, or of a disabled tenant, as inactive', async () => {
    const disabled = await makeClient(app.services);
    const deleted = await makeClient(app.services);
    await createTenant(handle.db, { id: 'tenant-x', name: 'X', now: clock.now() });
    const tenant = await makeClient(app.services, { tenantId: 'tenant-x' });
    const tokens = { disabled: await issue(disabled), deleted: await issue(deleted), tenant: await issue(tenant) };
    expect((await introspect(tokens.tenant).expect(200)).body).toMatchObject({ active: true, tenant_id: 'tenant-x' });

    await disableClient(handle.db, disabled.id, { actor: 'test', now: clock.now() });
    await deleteClient(handle.db, deleted.id, { actor: 'test', now: clock.now() });
    await setTenantDisabled(handle.db, 'tenant-x', clock.now());
    await eventually(async () => {
      for (const token of Object.values(tokens)) await expectInactive(token);
    });
  });

  it('requires client authentication and a token parameter', async () => {
    const token = await issue();
    const anonymous = await request(app.url).post('/oauth/introspect').set('Content-Type', FORM).send(`token=${token}`).expect(401);
    expect(anonymous.body.error).toBe('invalid_client');
    expect(anonymous.headers['www-authenticate']).toMatch(/^Basic/);
    await request(app.url).post('/oauth/revoke').set('Content-Type', FORM).send(`token=${token}`).expect(401);
    expect((await request(app.url).post('/oauth/introspect').set('Content-Type', FORM).set('Authorization', owner.authorization).send('').expect(400)).body.error).toBe('invalid_request');
    expect((await request(app.url).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', owner.authorization).send('token_type_hint=x').expect(400)).body.error).toBe('invalid_request');
  });

  it('keeps tokens verifying across `keys rotate --force`; after `keys revoke` of their key they are inactive', async () => {
    const before = await issue();
    const oldKid = app.services.keys.current.kid;
    const rotated = await idp(['keys', 'rotate', '--force', '--json']);
    expect(rotated.code).toBe(0);
    await eventually(async () => expect(app.services.keys.current.kid).not.toBe(oldKid));

    const after = await issue();
    const verify = (token: string) =>
      jwtVerify(token, createRemoteJWKSet(new URL(`${app.url}/.well-known/jwks.json`)), { issuer: 'http://idp.test', audience: 'https://api.test', typ: 'at+jwt', algorithms: ['RS256'], currentDate: clock.now() });
    for (const token of [before, after]) {
      await expect(verify(token)).resolves.toBeDefined();
      expect((await introspect(token).expect(200)).body.active).toBe(true);
    }

    const revoked = await idp(['keys', 'revoke', oldKid, '--json']);
    expect(revoked.code).toBe(0);
    await eventually(() => expectInactive(before));
    await expect(verify(before)).rejects.toThrow();
    await expect(verify(after)).resolves.toBeDefined();
    expect((await introspect(after).expect(200)).body.active).toBe(true);
  });
});
