import dns from 'node:dns/promises';
import os from 'node:os';
import request from 'supertest';
import { fetchJwks, JWKS_URI_MAX_BYTES } from '../../src/clients/jwks-uri';
import { isPublicAddress } from '../../src/clients/special-purpose-addresses';
import { setClientKeys, clientPolicy } from '../../src/clients/service';
import type { Client } from '../../src/clients/repository';
import { AssertionJtiStore } from '../../src/oauth/assertion-jtis';
import { ClientKeys } from '../../src/oauth/client-keys';
import { createLogger } from '../../src/observability/logger';
import { captureLogs, FakeClock, startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually } from './helpers';
import { assertion, assertionForm, FORM, jwksHost, jwksOf, makeKeyClient, serveJwks, testKey, type JwksHost } from './private-key-jwt-support';

const ISSUER = 'http://idp.test';

/**
 * Keys published at a client's jwks_uri (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`", fetched from real HTTP servers on loopback (the
 * client's web server, played by the test): cached by Cache-Control within [1 min, 1 day], refetched
 * on an unknown kid at most every 30 s, and every way a jwks_uri can be turned against us refused:
 * unreachable, slow, oversized, redirecting, private key material. The server's clock is a fake one
 * (assertions are signed on it), so cooldowns and max-age pass without waiting.
 */
describe('private_key_jwt with a jwks_uri', () => {
  let database: TestDatabase;
  let server: TestServer;
  let host: JwksHost;
  const clock = new FakeClock(new Date());
  const logs = captureLogs();

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startTestServer(testConfig(database, { IDP_LOG_LEVEL: 'info' }), await database.open(), clock.now, { logs });
    host = await jwksHost(serveJwks({ keys: [] }));
  });
  afterAll(async () => {
    await server.close();
    await host.close();
    await database.drop();
  });

  let addresses = 0;
  const token = async (jwt: string) =>
    request(server.url).post('/oauth/token').set('Content-Type', FORM).set('X-Forwarded-For', `198.51.100.${++addresses % 250}`).send(assertionForm(jwt));
  const sign = (key: ReturnType<typeof testKey>, id: string, header?: Record<string, unknown>) => assertion(key, id, ISSUER, { nowMs: clock.now().getTime(), header });
  const logged = (fragment: string) => expect(logs.lines.some((line) => `${String(line.detail)} ${String(line.err)}`.includes(fragment))).toBe(true);

  it('fetches once, serves from memory for max-age, refetches on an unknown kid at most once per 30 s, and after max-age', async () => {
    const first = testKey('RS256', 'first');
    const second = testKey('ES256', 'second');
    host.handle = serveJwks(jwksOf(first), 'public, max-age=600');
    const id = await makeKeyClient(server.services, { jwksUri: `${host.url}/jwks.json` });
    host.requests = 0;
    for (let i = 0; i < 3; i++) expect((await token(await sign(first, id))).status).toBe(200);
    expect(host.requests).toBe(1);

    // The client rotates: its server publishes the new key. Within 30 s of the last fetch an unknown kid does not refetch.
    host.handle = serveJwks(jwksOf(first, second), 'public, max-age=600');
    clock.advance(10_000);
    expect((await token(await sign(second, id))).status).toBe(401);
    expect(host.requests).toBe(1);
    logged('no key for ES256 with kid "second"');
    // Past the cooldown it does, once, and the new key works.
    clock.advance(21_000);
    expect((await token(await sign(second, id))).status).toBe(200);
    expect(host.requests).toBe(2);
    // Forged kids cannot make us hammer the client's server: one fetch per cooldown, however many.
    for (let i = 0; i < 5; i++) expect((await token(await sign(first, id, { kid: `forged-${i}` }))).status).toBe(401);
    expect(host.requests).toBe(2);
    clock.advance(30_000);
    expect((await token(await sign(first, id, { kid: 'forged-late' }))).status).toBe(401);
    expect(host.requests).toBe(3);

    // max-age (600 s) passed: the next use refetches; the client removed `first`, so it stops working.
    host.handle = serveJwks(jwksOf(second), 'public, max-age=600');
    clock.advance(600_000);
    expect((await token(await sign(first, id))).status).toBe(401);
    expect(host.requests).toBe(4);
    expect((await token(await sign(second, id))).status).toBe(200);
    expect(host.requests).toBe(4);
  });

  it('requests that arrive while the first fetch is in flight wait for it: one fetch, all served', async () => {
    const key = testKey('ES256', 'together');
    host.handle = (req, res) => setTimeout(() => serveJwks(jwksOf(key))(req, res), 100);
    const id = await makeKeyClient(server.services, { jwksUri: `${host.url}/together.json` });
    host.requests = 0;
    const statuses = await Promise.all(Array.from({ length: 5 }, async () => (await token(await sign(key, id))).status));
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect(host.requests).toBe(1);
  });

  it('max-age is held within [1 min, 1 day]; no-store counts as the 1 min floor', async () => {
    const key = testKey('ES256', 'floor');
    host.handle = serveJwks(jwksOf(key), 'no-store');
    const id = await makeKeyClient(server.services, { jwksUri: `${host.url}/floor.json` });
    host.requests = 0;
    expect((await token(await sign(key, id))).status).toBe(200);
    clock.advance(59_000);
    expect((await token(await sign(key, id))).status).toBe(200);
    expect(host.requests).toBe(1);
    clock.advance(2_000);
    expect((await token(await sign(key, id))).status).toBe(200);
    expect(host.requests).toBe(2);

    host.handle = serveJwks(jwksOf(key), 'max-age=31536000');
    clock.advance(61_000);
    expect((await token(await sign(key, id))).status).toBe(200);
    expect(host.requests).toBe(3);
    clock.advance(86_400_000 - 1_000);
    expect((await token(await sign(key, id))).status).toBe(200);
    expect(host.requests).toBe(3);
    clock.advance(2_000);
    expect((await token(await sign(key, id))).status).toBe(200);
    expect(host.requests).toBe(4);
  });

  it('set-keys to another jwks_uri takes effect at once', async () => {
    const old = testKey('ES256', 'old');
    const fresh = testKey('ES256', 'fresh');
    const other = await jwksHost(serveJwks(jwksOf(fresh)));
    try {
      host.handle = serveJwks(jwksOf(old));
      const id = await makeKeyClient(server.services, { jwksUri: `${host.url}/old.json` });
      expect((await token(await sign(old, id))).status).toBe(200);
      await setClientKeys(server.services.handle.db, id, { jwksUri: `${other.url}/fresh.json` }, clientPolicy(server.services.config), { actor: 'test', now: clock.now() });
      // This instance's own write: its cache hears the notification within the notification latency.
      await eventually(async () => expect((await token(await sign(fresh, id))).status).toBe(200), 2_000);
      expect((await token(await sign(old, id))).status).toBe(401);
    } finally {
      await other.close();
    }
  });

  describe('a jwks_uri that cannot be turned against us', () => {
    const key = testKey('ES256', 'k');
    const refusedWith = async (handler: Parameters<typeof jwksHost>[0], cause: string) => {
      host.handle = handler;
      const id = await makeKeyClient(server.services, { jwksUri: `${host.url}/${Math.random().toString(36).slice(2)}` });
      const res = await token(await sign(key, id));
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'invalid_client', error_description: 'client authentication failed' });
      logged(cause);
      return id;
    };

    it('unreachable: refused, and not tried again within the cooldown', async () => {
      const closed = await jwksHost(serveJwks(jwksOf(key)));
      const url = closed.url;
      await closed.close();
      const id = await makeKeyClient(server.services, { jwksUri: `${url}/jwks.json` });
      const attempts = () => logs.lines.filter((line) => line.msg === 'fetching a client jwks_uri failed' && line.client_id === id).length;
      expect((await token(await sign(key, id))).status).toBe(401);
      logged('ECONNREFUSED');
      expect(attempts()).toBe(1);
      expect((await token(await sign(key, id))).status).toBe(401);
      expect(attempts()).toBe(1);
      clock.advance(30_000);
      expect((await token(await sign(key, id))).status).toBe(401);
      expect(attempts()).toBe(2);
    });

    it('oversized: over 64 KiB, declared or streamed, is cut and refused', async () => {
      const padded = JSON.stringify({ keys: [key.publicJwk], padding: 'x'.repeat(JWKS_URI_MAX_BYTES) });
      await refusedWith((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(padded) });
        res.end(padded);
      }, `answered ${Buffer.byteLength(padded)} bytes; at most 65536 are read`);
      await refusedWith((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        // Chunked, no length: counted as it streams.
        for (let i = 0; i < 70; i++) res.write(' '.repeat(1024));
        res.end(padded);
      }, 'over 65536 bytes; the body was cut');
    });

    it('a redirect is not followed', async () => {
      host.requests = 0;
      await refusedWith((req, res) => {
        if (req.url === '/target') return serveJwks(jwksOf(key))(req, res);
        res.writeHead(302, { Location: '/target' });
        res.end();
      }, 'answered a redirect (302); redirects are not followed');
      expect(host.requests).toBe(1);
    });

    it('slow: no complete answer within 2 s', async () => {
      await refusedWith((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.write('{"keys": [');
        // ...and nothing more: the deadline covers the body too.
      }, 'no complete answer within 2000 ms');
    });

    it('not a JWKS, an error status, private key material, more than 10 keys', async () => {
      await refusedWith((_req, res) => res.end('<html>'), 'not JSON');
      await refusedWith((_req, res) => {
        res.writeHead(500);
        res.end();
      }, 'answered 500');
      await refusedWith(serveJwks({ keys: [key.privateJwk] }), 'private key material (d)');
      await refusedWith(serveJwks({ keys: Array.from({ length: 11 }, (_, i) => ({ ...key.publicJwk, kid: `k${i}` })) }), 'more than 10 signing keys');
      await refusedWith(serveJwks({ keys: [{ ...key.publicJwk, use: 'enc' }] }), 'no RSA or EC P-256 signing key');
    });
  });
});

describe('jwks_uri rules in production', () => {
  it('isPublicAddress: private, loopback, link-local, reserved and mapped addresses are not public', () => {
    for (const address of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fd12:3456::1', '::ffff:127.0.0.1', '::ffff:a00:1', '64:ff9b::a00:1', '2002:a00:1::1', 'ff02::1', 'not an address']) {
      expect([address, isPublicAddress(address)]).toEqual([address, false]);
    }
    for (const address of ['93.184.215.14', '8.8.8.8', '2606:4700::1111', '2a00:1450:4001::200e']) {
      expect([address, isPublicAddress(address)]).toEqual([address, true]);
    }
  });

  it('refuses http, literal private addresses and names that resolve to one, before any connection', async () => {
    const production = { production: true };
    await expect(fetchJwks('http://keys.example/jwks', production)).rejects.toThrow('https URL in production');
    await expect(fetchJwks('https://127.0.0.1:1/jwks', production)).rejects.toThrow('may not point at 127.0.0.1');
    await expect(fetchJwks('https://[::1]:1/jwks', production)).rejects.toThrow('may not point at ::1');
    // A name, checked on every address it resolves to, inside the connection's own lookup. This
    // machine's name resolves to a loopback or private address; were it public, nothing is asserted
    // (and no request is made to it).
    const name = os.hostname();
    const resolved = await dns.lookup(name, { all: true }).catch(() => []);
    if (resolved.length > 0 && resolved.some((a) => !isPublicAddress(a.address))) {
      await expect(fetchJwks(`https://${name}:1/jwks`, production)).rejects.toThrow(/resolves to .*a private, loopback or reserved address/);
    }
  });
});

describe('the jti store and the key cache', () => {
  let database: TestDatabase;
  let server: TestServer;
  const clock = new FakeClock(new Date('2026-11-28T12:00:00Z'));

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startTestServer(testConfig(database), await database.open(), clock.now);
  });
  afterAll(async () => {
    await server.close();
    await database.drop();
  });

  it('a jti is refused until it expires, accepted again after, and swept in batches after exp', async () => {
    const db = server.services.handle.db;
    const now = clock.now();
    let at = now;
    // The store the token endpoint uses, on a clock of this test's own.
    const store = new AssertionJtiStore(server.services.handle, () => at);
    const until = new Date(now.getTime() + 60_000);
    expect(await store.record('c1', 'j1', until)).toBe(true);
    expect(await store.record('c1', 'j1', until)).toBe(false);
    // Per client: another client's jti of the same value is its own.
    expect(await store.record('c2', 'j1', until)).toBe(true);
    // Once expired (not yet swept), the same jti may be used again (RFC 7523 §3: unique until exp).
    at = new Date(until.getTime() + 1);
    expect(await store.record('c1', 'j1', new Date(at.getTime() + 60_000))).toBe(true);

    const rows = Array.from({ length: 2345 }, (_, i) => ({ client_id: 'bulk', jti: `old-${i}`, expires_at: new Date(now.getTime() - 1_000) }));
    for (let i = 0; i < rows.length; i += 500) await db.insertInto('client_assertion_jtis').values(rows.slice(i, i + 500)).execute();
    await server.services.oauth.sweep();
    const left = await db.selectFrom('client_assertion_jtis').select(['client_id', 'jti']).orderBy('client_id').orderBy('jti').execute();
    expect(left).toEqual([
      { client_id: 'c1', jti: 'j1' },
      { client_id: 'c2', jti: 'j1' },
    ]);
  });

  it('the store commits concurrent jtis together; of two presentations of one jti at once, one is accepted', async () => {
    const db = server.services.handle.db;
    const store = new AssertionJtiStore(server.services.handle, clock.now);
    const until = new Date(clock.now().getTime() + 60_000);
    const results = await Promise.all(Array.from({ length: 300 }, (_, i) => store.record('group', `j${i % 150}`, until).then((fresh) => ({ jti: `j${i % 150}`, fresh }))));
    const accepted = results.filter((r) => r.fresh).map((r) => r.jti);
    expect(accepted.sort()).toEqual(Array.from({ length: 150 }, (_, i) => `j${i}`).sort());
    const stored = await db.selectFrom('client_assertion_jtis').select('jti').where('client_id', '=', 'group').execute();
    expect(stored).toHaveLength(150);
    expect(await store.record('group', 'j7', until)).toBe(false);
  });

  it('keeps at most maxEntries clients’ parsed keys, and re-parses a client only when what its keys depend on changed', async () => {
    const cache = new ClientKeys({ maxEntries: 3, production: false, logger: createLogger('silent'), now: clock.now });
    const key = testKey('ES256', 'only');
    const client = (id: string, updatedAt = new Date(0)): Client => ({
      id,
      name: id,
      scopes: ['read'],
      audiences: ['https://api.test'],
      tenantId: null,
      tenantDisabled: false,
      tokenTtlSeconds: null,
      disabledAt: null,
      createdAt: new Date(0),
      updatedAt,
      authMethod: 'private_key_jwt',
      tokenEndpointAuthMethod: 'private_key_jwt',
      secretHash: null,
      previousSecretHash: null,
      previousSecretExpiresAt: null,
      jwks: { keys: [key.publicJwk as unknown as Record<string, string>] },
      jwksUri: null,
      redirectUris: [],
      postLogoutRedirectUris: [],
      grantTypes: ['client_credentials'],
      firstParty: false,
      registeredBy: 'operator',
    });
    const clients = Array.from({ length: 10 }, (_, i) => client(`c${i}`));
    for (const c of clients) expect(await cache.candidates(c, { alg: 'ES256', kid: 'only' })).toHaveLength(1);
    expect(cache.size).toBe(3);
    // The same client object again: the parsed KeyObject is reused.
    const [found] = await cache.candidates(clients[9]!, { alg: 'ES256', kid: 'only' });
    const [again] = await cache.candidates(clients[9]!, { alg: 'ES256', kid: 'only' });
    expect(again!.key).toBe(found!.key);
    // A re-read of the unchanged client (another object, same row): still the same KeyObject.
    const [reread] = await cache.candidates(client('c9'), { alg: 'ES256', kid: 'only' });
    expect(reread!.key).toBe(found!.key);
    // A changed client (set-keys bumps updated_at): parsed again.
    const [changed] = await cache.candidates(client('c9', new Date(1)), { alg: 'ES256', kid: 'only' });
    expect(changed!.key).not.toBe(found!.key);
    await expect(cache.candidates(clients[9]!, { alg: 'RS256', kid: 'only' })).rejects.toThrow('no key for RS256');
  });
});
