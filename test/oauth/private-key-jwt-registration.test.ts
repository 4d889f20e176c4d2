import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { loadConfig } from '../../src/config';
import { everyClient } from '../helpers/clients';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { adminToken, cli, testEnv } from '../users/support';
import { basic, eventually } from './helpers';
import { assertion, assertionForm, FORM, jwksOf, testKey } from './private-key-jwt-support';

const ISSUER = 'http://idp.test';

/**
 * Registering and re-keying private_key_jwt clients (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`": `idp clients create --auth-method
 * private_key_jwt`, `idp clients set-keys`, POST/PATCH /admin/v1/clients; what a JWKS and a jwks_uri
 * may be; no secret, and no secret method, for such a client; every change audited; a new key works
 * at once and the replaced one stops.
 */
describe('registering private_key_jwt clients (CLI and admin API)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let token: string;
  let dir: string;
  const rs = testKey('RS256', 'rs-1');
  const es = testKey('ES256', 'es-1');

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), handle);
    token = (await adminToken(env, handle, '--permission', 'clients:read', '--permission', 'clients:write', '--permission', 'audit:read')).token;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-jwks-'));
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const file = (name: string, content: unknown) => {
    const target = path.join(dir, name);
    fs.writeFileSync(target, typeof content === 'string' ? content : JSON.stringify(content));
    return target;
  };
  const idp = (...argv: string[]) => cli(env, handle, ...argv);
  /** Refused: exit 1, one line on stderr, nothing on stdout, no client changed. */
  const refusedCli = async (argv: string[], message: RegExp) => {
    const before = await everyClient(handle.db);
    const result = await idp(...argv);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.code).toBe(1);
    expect(await everyClient(handle.db)).toEqual(before);
  };
  const admin = () => ({
    post: (p: string) => request(server.url).post(`/admin/v1${p}`).set('Authorization', `Bearer ${token}`),
    patch: (p: string) => request(server.url).patch(`/admin/v1${p}`).set('Authorization', `Bearer ${token}`),
    get: (p: string) => request(server.url).get(`/admin/v1${p}`).set('Authorization', `Bearer ${token}`),
  });
  const tokenStatus = async (jwt: string) => (await request(server.url).post('/oauth/token').set('Content-Type', FORM).send(assertionForm(jwt))).status;
  /** A client's audit events, oldest first (events of one request share a timestamp: then by action). */
  const audit = async (id: string) =>
    (await handle.db.selectFrom('audit_events').selectAll().where('target', '=', id).orderBy('occurred_at').orderBy('action').execute()).map((e) => ({ action: e.action, details: e.details }));
  /** An RSA public key of any size without generating one (a random odd modulus with its top bit set): only its size is judged. */
  const rsaOfBits = (bits: number, kid: string) => {
    const n = crypto.randomBytes(bits / 8);
    n[0]! |= 0x80;
    n[n.length - 1]! |= 1;
    return { kty: 'RSA', kid, n: n.toString('base64url'), e: 'AQAB' };
  };

  it('idp clients create --auth-method private_key_jwt --jwks-file: no secret, public members only, audited; the client gets tokens', async () => {
    const extra = { ...rs.publicJwk, use: 'sig', alg: 'RS256', x5c: ['MIIB...'], ext: true };
    const result = await idp('clients', 'create', '--name', 'signer', '--scope', 'read', '--auth-method', 'private_key_jwt', '--jwks-file', file('keys.json', { keys: [extra, es.publicJwk] }), '--json');
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const created = JSON.parse(result.stdout);
    expect(created).toMatchObject({ client_secret: null, token_endpoint_auth_method: 'private_key_jwt', name: 'signer', scopes: ['read'] });
    expect(created.jwks.keys).toEqual([
      { kty: 'RSA', kid: 'rs-1', use: 'sig', alg: 'RS256', n: rs.publicJwk.n, e: rs.publicJwk.e },
      { kty: 'EC', kid: 'es-1', crv: 'P-256', x: es.publicJwk.x, y: es.publicJwk.y },
    ]);
    const row = await handle.db.selectFrom('oauth_clients').selectAll().where('id', '=', created.client_id).executeTakeFirstOrThrow();
    expect(row.secret_hash).toBeNull();
    expect(row.jwks_uri).toBeNull();
    expect(await audit(created.client_id)).toEqual([{ action: 'client.created', details: expect.objectContaining({ auth_method: 'private_key_jwt', kids: ['rs-1', 'es-1'], key_types: ['RSA', 'EC'] }) }]);

    expect(await tokenStatus(await assertion(rs, created.client_id, ISSUER))).toBe(200);
    expect(await tokenStatus(await assertion(es, created.client_id, ISSUER))).toBe(200);
    // The registered alg is binding: this RSA key may not verify PS256.
    expect(await tokenStatus(await assertion({ ...rs, alg: 'PS256' }, created.client_id, ISSUER))).toBe(401);

    const show = await idp('clients', 'show', created.client_id);
    expect(show.stdout).toMatch(/token_endpoint_auth_method\s+private_key_jwt/);
    expect(show.stdout).toMatch(/jwks\s+rs-1 es-1/);
    // rotate-secret makes no sense for it, and says so.
    await refusedCli(['clients', 'rotate-secret', created.client_id], /has no secret: it authenticates with private_key_jwt/);
  });

  it('idp clients create --jwks-uri (http allowed outside production) and the refusals of create', async () => {
    const created = JSON.parse((await idp('clients', 'create', '--name', 'remote', '--scope', 'read', '--auth-method', 'private_key_jwt', '--jwks-uri', 'http://127.0.0.1:9/jwks.json', '--json')).stdout);
    expect(created).toMatchObject({ client_secret: null, token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://127.0.0.1:9/jwks.json' });

    const base = ['clients', 'create', '--name', 'bad', '--scope', 'read', '--auth-method', 'private_key_jwt'];
    await refusedCli([...base], /exactly one of --jwks-file and --jwks-uri/);
    await refusedCli([...base, '--jwks-file', file('a.json', jwksOf(rs)), '--jwks-uri', 'https://keys.example/jwks'], /exactly one of --jwks-file and --jwks-uri/);
    await refusedCli(['clients', 'create', '--name', 'bad', '--scope', 'read', '--jwks-uri', 'https://keys.example/jwks'], /go with --auth-method private_key_jwt/);
    await refusedCli(['clients', 'create', '--name', 'bad', '--scope', 'read', '--auth-method', 'client_secret_jwt'], /--auth-method "client_secret_jwt" is not one of/);
    await refusedCli([...base, '--jwks-file', path.join(dir, 'missing.json')], /--jwks-file .*missing\.json: ENOENT/);
    await refusedCli([...base, '--jwks-file', file('text.json', 'not json')], /is not JSON/);
    await refusedCli([...base, '--jwks-file', file('big.json', ' '.repeat(17 * 1024))], /over 16384 bytes/);
    // Issue 15: as deep as fits in 16 KiB (JSON.stringify would run out of stack on it), and one level past the bound.
    await refusedCli([...base, '--jwks-file', file('deep.json', `{"keys":${'['.repeat(8_000)}${']'.repeat(8_000)}}`)], /deep\.json is nested more than 32 levels deep/);
    await refusedCli([...base, '--jwks-file', file('deep-33.json', `{"keys":[${'{"a":'.repeat(31)}1${'}'.repeat(31)}]}`)], /nested more than 32 levels deep/);
    await refusedCli([...base, '--jwks-file', file('private.json', { keys: [rs.privateJwk] })], /holds private key material \(d, p, q, dp, dq, qi\)/);
    await refusedCli([...base, '--jwks-file', file('ec-private.json', { keys: [es.privateJwk] })], /holds private key material \(d\)/);
    await refusedCli([...base, '--jwks-file', file('oct.json', { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] })], /private key material \(k\)/);
    await refusedCli([...base, '--jwks-file', file('small.json', { keys: [rsaOfBits(1024, 'small')] })], /RSA key of 1024 bits \(2048 to 4096 allowed\)/);
    await refusedCli([...base, '--jwks-file', file('big-rsa.json', { keys: [rsaOfBits(8192, 'huge')] })], /RSA key of 8192 bits/);
    const p384 = { kty: 'EC', crv: 'P-384', x: 'AAAA', y: 'AAAA' };
    await refusedCli([...base, '--jwks-file', file('p384.json', { keys: [p384] })], /EC curve "P-384" is not supported/);
    await refusedCli([...base, '--jwks-file', file('okp.json', { keys: [{ kty: 'OKP', crv: 'Ed25519', x: 'AAAA' }] })], /kty "OKP" is not supported/);
    await refusedCli([...base, '--jwks-file', file('enc.json', { keys: [{ ...rs.publicJwk, use: 'enc' }] })], /use "enc" is not "sig"/);
    await refusedCli([...base, '--jwks-file', file('hs.json', { keys: [{ ...rs.publicJwk, alg: 'HS256' }] })], /alg "HS256" is not allowed for a RSA key/);
    await refusedCli([...base, '--jwks-file', file('es-rs.json', { keys: [{ ...es.publicJwk, alg: 'RS256' }] })], /alg "RS256" is not allowed for a EC key/);
    await refusedCli([...base, '--jwks-file', file('dup.json', { keys: [rs.publicJwk, { ...es.publicJwk, kid: 'rs-1' }] })], /kid "rs-1" appears more than once/);
    await refusedCli([...base, '--jwks-file', file('empty.json', { keys: [] })], /holds no key/);
    await refusedCli([...base, '--jwks-file', file('bare.json', rs.publicJwk)], /not a JSON Web Key Set/);
    const eleven = Array.from({ length: 11 }, (_, i) => ({ ...es.publicJwk, kid: `k${i}` }));
    await refusedCli([...base, '--jwks-file', file('eleven.json', { keys: eleven })], /holds 11 keys; at most 10/);
    await refusedCli([...base, '--jwks-file', file('garbage.json', { keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB' }] })], /keys\[0\]: (not a valid RSA public key|RSA key of)/);
    await refusedCli([...base, '--jwks-uri', 'ftp://keys.example/jwks'], /jwks_uri must be an https URL/);
    await refusedCli([...base, '--jwks-uri', 'https://user:pw@keys.example/jwks'], /may not hold user information/);
    await refusedCli([...base, '--jwks-uri', 'https://keys.example/jwks#k'], /may not hold a fragment/);
    await refusedCli([...base, '--jwks-uri', 'keys.example/jwks'], /not an absolute URL/);
  });

  it('in production a jwks_uri must be https and must not name a private, loopback or link-local address', async () => {
    const production = { ...env, NODE_ENV: 'production', DATABASE_URL: env.DATABASE_URL ?? 'postgres://unused' };
    const prod = (...argv: string[]) => cli(production, handle, ...argv);
    const base = ['clients', 'create', '--name', 'prod', '--scope', 'read', '--auth-method', 'private_key_jwt', '--jwks-uri'];
    for (const [uri, message] of [
      ['http://keys.example/jwks', /https URL in production/],
      ['https://127.0.0.1/jwks', /may not point at 127\.0\.0\.1/],
      ['https://10.1.2.3/jwks', /may not point at 10\.1\.2\.3/],
      ['https://169.254.169.254/latest', /may not point at 169\.254\.169\.254/],
      ['https://[::1]/jwks', /may not point at ::1/],
      ['https://[fd00::1]/jwks', /may not point at fd00::1/],
      ['https://[::ffff:127.0.0.1]/jwks', /may not point at ::ffff:7f00:1/],
      ['https://localhost/jwks', /localhost in production/],
    ] as const) {
      const result = await prod(...base, uri);
      expect(result.stderr).toMatch(message);
      expect(result.code).toBe(1);
    }
    const ok = await prod(...base, 'https://keys.example/.well-known/jwks.json', '--json');
    expect(ok.stderr).toBe('');
    expect(JSON.parse(ok.stdout).jwks_uri).toBe('https://keys.example/.well-known/jwks.json');
  });

  it('idp clients set-keys: the new key works at once, the replaced one stops; audited; a secret client converted loses its secret', async () => {
    const created = JSON.parse((await idp('clients', 'create', '--name', 'rotating', '--scope', 'read', '--auth-method', 'private_key_jwt', '--jwks-file', file('one.json', jwksOf(rs)), '--json')).stdout);
    const id = created.client_id as string;
    expect(await tokenStatus(await assertion(rs, id, ISSUER))).toBe(200);

    const next = testKey('ES256', 'es-next');
    const changed = await idp('clients', 'set-keys', id, '--jwks-file', file('next.json', jwksOf(next)), '--json');
    expect(changed).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(changed.stdout)).toMatchObject({ client_id: id, token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [expect.objectContaining({ kid: 'es-next' })] } });
    // The CLI wrote through its own connection; the server hears of it by NOTIFY.
    await eventually(async () => expect(await tokenStatus(await assertion(next, id, ISSUER))).toBe(200));
    expect(await tokenStatus(await assertion(rs, id, ISSUER))).toBe(401);
    expect((await audit(id)).map((e) => e.action)).toEqual(['client.created', 'client.keys-replaced']);
    expect((await audit(id))[1]!.details).toMatchObject({ previous_auth_method: 'private_key_jwt', kids: ['es-next'] });

    // Text output names the keys; --jwks-uri replaces an inline set.
    const toUri = await idp('clients', 'set-keys', id, '--jwks-uri', 'http://127.0.0.1:9/keys');
    expect(toUri.stdout).toMatch(/replaced the keys of client .*: jwks_uri http:\/\/127\.0\.0\.1:9\/keys/);
    await refusedCli(['clients', 'set-keys', id], /exactly one of --jwks-file and --jwks-uri/);
    await refusedCli(['clients', 'set-keys', id, '--jwks-file', file('deep-set.json', `{"keys":${'['.repeat(8_000)}${']'.repeat(8_000)}}`)], /nested more than 32 levels deep/);
    await refusedCli(['clients', 'set-keys', 'NoSuchClient0000000000', '--jwks-file', file('x.json', jwksOf(rs))], /no client "NoSuchClient0000000000"/);

    // A client with a secret moves to private_key_jwt: its secret stops working at once.
    const secretClient = JSON.parse((await idp('clients', 'create', '--name', 'legacy', '--scope', 'read', '--json')).stdout);
    const viaSecret = () => request(server.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', basic(secretClient.client_id, secretClient.client_secret)).send('grant_type=client_credentials');
    expect((await viaSecret()).status).toBe(200);
    expect((await idp('clients', 'set-keys', secretClient.client_id, '--jwks-file', file('legacy.json', jwksOf(rs)))).code).toBe(0);
    await eventually(async () => expect((await viaSecret()).status).toBe(401));
    expect(await tokenStatus(await assertion(rs, secretClient.client_id, ISSUER))).toBe(200);
    expect((await audit(secretClient.client_id))[1]!.details).toMatchObject({ previous_auth_method: 'client_secret' });
    const row = await handle.db.selectFrom('oauth_clients').select(['secret_hash', 'previous_secret_hash']).where('id', '=', secretClient.client_id).executeTakeFirstOrThrow();
    expect(row).toEqual({ secret_hash: null, previous_secret_hash: null });
  });

  it('POST /admin/v1/clients with private_key_jwt and jwks or jwks_uri; PATCH replaces keys; bad keys change nothing', async () => {
    const created = await admin().post('/clients').send({ name: 'api signer', scopes: 'read', token_endpoint_auth_method: 'private_key_jwt', jwks: jwksOf(es) });
    expect(created.status).toBe(201);
    expect(created.body).not.toHaveProperty('client_secret');
    expect(created.body).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [expect.objectContaining({ kid: 'es-1', kty: 'EC' })] } });
    const id = created.body.client_id as string;
    expect(await tokenStatus(await assertion(es, id, ISSUER))).toBe(200);

    const viaUri = await admin().post('/clients').send({ name: 'api remote', scopes: ['read'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://127.0.0.1:9/jwks' });
    expect(viaUri.status).toBe(201);
    expect(viaUri.body).toMatchObject({ jwks_uri: 'http://127.0.0.1:9/jwks', token_endpoint_auth_method: 'private_key_jwt' });
    expect(viaUri.body).not.toHaveProperty('jwks');

    const secretClient = await admin().post('/clients').send({ name: 'api legacy', scopes: ['read'] });
    expect(secretClient.body).toMatchObject({ token_endpoint_auth_method: 'client_secret_basic', client_secret: expect.any(String) });

    const bad = async (body: object, message: RegExp, method: 'post' | 'patch' = 'post', target = '/clients') => {
      const before = await everyClient(handle.db);
      const res = await admin()[method](target).send(body);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
      expect(res.body.message).toMatch(message);
      expect(await everyClient(handle.db)).toEqual(before);
    };
    await bad({ name: 'x', scopes: 'read', token_endpoint_auth_method: 'private_key_jwt' }, /needs jwks or jwks_uri/);
    await bad({ name: 'x', scopes: 'read', token_endpoint_auth_method: 'private_key_jwt', jwks: jwksOf(es), jwks_uri: 'https://k.example/j' }, /not both/);
    await bad({ name: 'x', scopes: 'read', jwks: jwksOf(es) }, /go with token_endpoint_auth_method "private_key_jwt"/);
    await bad({ name: 'x', scopes: 'read', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [rs.privateJwk] } }, /private key material/);
    await bad({ name: 'x', scopes: 'read', token_endpoint_auth_method: 'client_secret_jwt' }, /token_endpoint_auth_method/);
    // A PATCH whose keys are refused changes nothing else either.
    await bad({ name: 'renamed', jwks: { keys: [{ ...es.publicJwk, crv: 'P-521' }] } }, /EC curve "P-521"/, 'patch', `/clients/${id}`);

    const next = testKey('PS256', 'ps-next');
    const patched = await admin().patch(`/clients/${id}`).send({ name: 'api signer 2', jwks: jwksOf(next) });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ name: 'api signer 2', jwks: { keys: [expect.objectContaining({ kid: 'ps-next' })] } });
    expect(await tokenStatus(await assertion(next, id, ISSUER))).toBe(200);
    expect(await tokenStatus(await assertion(es, id, ISSUER))).toBe(401);
    const events = await admin().get(`/audit?target=${id}`);
    expect(events.body.events.map((e: { action: string }) => e.action).sort()).toEqual(['client.created', 'client.keys-replaced', 'client.updated']);

    // A secret client converted through the API: no secret any more.
    const converted = await admin().patch(`/clients/${secretClient.body.client_id}`).send({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://127.0.0.1:9/k' });
    expect(converted.status).toBe(200);
    expect(converted.body).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://127.0.0.1:9/k' });
    const viaSecret = await request(server.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', basic(secretClient.body.client_id, secretClient.body.client_secret)).send('grant_type=client_credentials');
    expect(viaSecret.status).toBe(401);
    // And its secret cannot be rotated back into existence.
    const rotate = await admin().post(`/clients/${secretClient.body.client_id}/secret`).send({});
    expect(rotate.status).toBe(400);
    expect(rotate.body.message).toMatch(/has no secret/);
  });
});
