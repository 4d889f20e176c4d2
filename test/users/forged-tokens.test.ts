import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK, type KeyLike } from 'jose';
import request from 'supertest';
import { loadConfig } from '../../src/config';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { adminToken, signUp, testEnv, type SignedIn } from './support';

/**
 * Forged and misused tokens at the user API and the admin API: every one is a 401 (or a 403 for
 * a valid admin token without the permission), never a 5xx, and the body never says which check failed.
 */
describe('forged tokens and token-kind confusion', () => {
  let database: TestDatabase;
  let server: TestServer;
  let env: Record<string, string>;
  let session: SignedIn;
  let claims: Record<string, unknown>;
  let kid: string;
  let attacker: { privateKey: KeyLike; publicJwk: JWK };
  let jkuHits = 0;
  let jkuServer: http.Server;
  let jkuUrl: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), await database.open());
    session = await signUp(server.url);
    claims = JSON.parse(Buffer.from(session.access_token.split('.')[1] as string, 'base64url').toString()) as Record<string, unknown>;
    kid = server.services.keys.current.kid;
    const pair = await generateKeyPair('RS256', { extractable: true });
    attacker = { privateKey: pair.privateKey, publicJwk: await exportJWK(pair.publicKey) };
    jkuServer = http.createServer((_req, res) => {
      jkuHits += 1;
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ keys: [{ ...attacker.publicJwk, kid, alg: 'RS256', use: 'sig' }] }));
    });
    await new Promise<void>((resolve) => jkuServer.listen(0, '127.0.0.1', resolve));
    jkuUrl = `http://127.0.0.1:${(jkuServer.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => jkuServer?.close(() => resolve()));
    await server?.close();
    await database?.drop();
  });

  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const atUser = (token: string) => request(server.url).get('/auth/v1/user').set('Authorization', `Bearer ${token}`);
  const atAdmin = (token: string) => request(server.url).get('/admin/v1/keys').set('Authorization', `Bearer ${token}`);
  const signAsAttacker = (header: Record<string, unknown>, payload = claims) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...header }).sign(attacker.privateKey);

  async function expectRefused(token: string): Promise<void> {
    const res = await atUser(token);
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: 'invalid_token', message: 'the access token is not valid; sign in again to get a new one' });
  }

  it('accepts the genuine token (the control)', async () => {
    expect((await atUser(session.access_token)).status).toBe(200);
  });

  it('refuses alg "none"', async () => {
    await expectRefused(`${b64({ alg: 'none', typ: 'at+jwt', kid })}.${b64(claims)}.`);
  });

  it('refuses HS256 keyed with the public key PEM', async () => {
    const jwk = server.services.keys.jwks!.document.keys.find((k) => k.kid === kid)!;
    const pem = crypto.createPublicKey({ key: jwk as unknown as crypto.JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid }).sign(Buffer.from(pem));
    await expectRefused(token);
  });

  it('refuses a valid signature by a key not in the JWKS under a real kid', async () => {
    await expectRefused(await signAsAttacker({ kid }));
  });

  it('refuses kid path traversal and SQL text', async () => {
    await expectRefused(await signAsAttacker({ kid: '../../../../etc/passwd' }));
    await expectRefused(await signAsAttacker({ kid: "x' or '1'='1'; drop table users; --" }));
    expect((await atUser(session.access_token)).status).toBe(200);
  });

  it('refuses an embedded jwk header', async () => {
    await expectRefused(await signAsAttacker({ kid, jwk: attacker.publicJwk }));
  });

  it('refuses a jku header and never fetches it', async () => {
    await expectRefused(await signAsAttacker({ kid, jku: jkuUrl }));
    await expectRefused(await signAsAttacker({ jku: jkuUrl }));
    expect(jkuHits).toBe(0);
  });

  it('refuses a tampered payload and a stripped signature', async () => {
    const [header, , signature] = session.access_token.split('.');
    await expectRefused(`${header}.${b64({ ...claims, role: 'admin' })}.${signature}`);
    await expectRefused(`${header}.${b64(claims)}.`);
    await expectRefused(`${header}.${b64(claims)}`);
    await expectRefused('not.a.jwt');
  });

  it('refuses a refresh token as a bearer token', async () => {
    await expectRefused(session.refresh_token);
    expect((await atAdmin(session.refresh_token)).status).toBe(401);
  });

  it('refuses a user token at the admin API and an admin token at the user API', async () => {
    const asAdmin = await atAdmin(session.access_token);
    expect(asAdmin.status).toBe(401);
    expect(asAdmin.body.error).toBe('invalid_token');
    const { token } = await adminToken(env, await database.open(), '--super');
    expect((await atAdmin(token)).status).toBe(200);
    const asUser = await atUser(token);
    expect(asUser.status).toBe(401);
    expect(asUser.body.error).toBe('invalid_token');
    expect((await request(server.url).post('/auth/v1/logout').set('Authorization', `Bearer ${token}`)).status).toBe(401);
  });

  it('refuses a client-credentials token at both APIs, even one whose audience is the user audience', async () => {
    const now = Math.floor(Date.now() / 1000);
    for (const aud of ['http://idp.test', 'http://idp.test/admin', 'http://idp.test/api']) {
      const clientToken = await server.services.sign(
        { iss: 'http://idp.test', sub: 'client-1', client_id: 'client-1', aud, scope: 'read', exp: now + 600, iat: now, nbf: now, jti: crypto.randomUUID() },
        'at+jwt',
      );
      expect((await atUser(clientToken)).status).toBe(401);
      expect((await atAdmin(clientToken)).status).toBe(401);
    }
  });

  it('answers 403 to an admin token without the permission, and 401 once it is revoked', async () => {
    const handle = await database.open();
    const reader = await adminToken(env, handle, '--permission', 'audit:read');
    const denied = await atAdmin(reader.token);
    expect(denied.status).toBe(403);
    expect(denied.body).toEqual({ error: 'forbidden', message: `admin token ${reader.id} lacks the permission "keys:read"` });
    const audit = await request(server.url).get('/admin/v1/audit').set('Authorization', `Bearer ${reader.token}`);
    expect(audit.status).toBe(200);
    const keysReader = await adminToken(env, handle, '--permission', 'keys:read');
    expect((await atAdmin(keysReader.token)).status).toBe(200);
    await server.services.adminTokens.revoke(keysReader.id, 'test');
    const revoked = await atAdmin(keysReader.token);
    expect(revoked.status).toBe(401);
    expect(revoked.body.message).toMatch(/was revoked at/);
    const missing = await request(server.url).get('/admin/v1/keys');
    expect(missing.status).toBe(401);
    expect(missing.body.error).toBe('unauthorized');
  });

  it('answers forged admin tokens with 401 and no 5xx', async () => {
    const adminClaims = { ...claims, aud: 'http://idp.test/admin', token_type: 'admin', permissions: ['keys:read'], is_super_admin: true, jti: crypto.randomUUID() };
    for (const token of [
      `${b64({ alg: 'none', typ: 'at+jwt', kid })}.${b64(adminClaims)}.`,
      await signAsAttacker({ kid }, adminClaims),
      await signAsAttacker({ kid, jwk: attacker.publicJwk }, adminClaims),
      await signAsAttacker({ kid: "1' or 1=1 --" }, adminClaims),
    ]) {
      const res = await atAdmin(token);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_token');
    }
    // Signed by our own key but never registered: refused too.
    const unregistered = await server.services.sign({ ...adminClaims, exp: Math.floor(Date.now() / 1000) + 600 }, 'at+jwt');
    expect((await atAdmin(unregistered)).status).toBe(401);
  });
});
