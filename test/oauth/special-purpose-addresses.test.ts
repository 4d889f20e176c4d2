import dns from 'node:dns/promises';
import os from 'node:os';
import request from 'supertest';
import { loadConfig } from '../../src/config';
import { fetchJwks } from '../../src/clients/jwks-uri';
import { embeddedIPv4, isPublicAddress, SPECIAL_PURPOSE_IPV4, SPECIAL_PURPOSE_IPV6, specialPurposeRange } from '../../src/clients/special-purpose-addresses';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { adminToken, testEnv } from '../users/support';

/**
 * Issue 15: a jwks_uri may reach no address of the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries in production (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`", whichever way an IPv6 literal spells it.
 * One address inside every entry, and the entry expected to name it (the most specific one).
 */
const INSIDE: ReadonlyArray<readonly [address: string, range: string]> = [
  ['0.1.2.3', '0.0.0.0/8'],
  ['0.0.0.0', '0.0.0.0/32'],
  ['10.20.30.40', '10.0.0.0/8'],
  ['100.127.255.254', '100.64.0.0/10'],
  ['127.0.0.1', '127.0.0.0/8'],
  ['127.255.255.255', '127.0.0.0/8'],
  ['169.254.169.254', '169.254.0.0/16'],
  ['172.31.255.1', '172.16.0.0/12'],
  ['192.0.0.200', '192.0.0.0/24'],
  ['192.0.0.7', '192.0.0.0/29'],
  ['192.0.0.8', '192.0.0.8/32'],
  ['192.0.0.9', '192.0.0.9/32'],
  ['192.0.0.10', '192.0.0.10/32'],
  ['192.0.0.170', '192.0.0.170/32'],
  ['192.0.0.171', '192.0.0.171/32'],
  ['192.0.2.1', '192.0.2.0/24'],
  ['192.31.196.1', '192.31.196.0/24'],
  ['192.52.193.1', '192.52.193.0/24'],
  ['192.88.99.1', '192.88.99.0/24'],
  ['192.168.1.1', '192.168.0.0/16'],
  ['192.175.48.1', '192.175.48.0/24'],
  ['198.19.255.255', '198.18.0.0/15'],
  ['198.51.100.7', '198.51.100.0/24'],
  ['203.0.113.9', '203.0.113.0/24'],
  ['224.0.0.251', '224.0.0.0/4'],
  ['239.255.255.250', '224.0.0.0/4'],
  ['240.0.0.1', '240.0.0.0/4'],
  ['255.255.255.255', '255.255.255.255/32'],
  ['::', '::/128'],
  ['::1', '::1/128'],
  // The two of the report: IPv4-compatible and IPv4-translated spellings of 127.0.0.1.
  ['::127.0.0.1', '::/96'],
  ['::7f00:1', '::/96'],
  ['::ffff:0:127.0.0.1', '::ffff:0:0:0/96'],
  ['::ffff:0:7f00:1', '::ffff:0:0:0/96'],
  ['::8.8.8.8', '::/96'],
  ['::ffff:127.0.0.1', '::ffff:0:0/96'],
  ['::ffff:8.8.8.8', '::ffff:0:0/96'],
  ['64:ff9b::808:808', '64:ff9b::/96'],
  ['64:ff9b:1::1', '64:ff9b:1::/48'],
  ['100::1', '100::/64'],
  ['100:0:0:1::1', '100:0:0:1::/64'],
  ['2001:1ff::1', '2001::/23'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001::/32'],
  ['2001:1::1', '2001:1::1/128'],
  ['2001:1::2', '2001:1::2/128'],
  ['2001:1::3', '2001:1::3/128'],
  ['2001:2::1', '2001:2::/48'],
  ['2001:3::1', '2001:3::/32'],
  ['2001:4:112::1', '2001:4:112::/48'],
  ['2001:10::1', '2001:10::/28'],
  ['2001:20::1', '2001:20::/28'],
  ['2001:30::1', '2001:30::/28'],
  ['2001:db8::1', '2001:db8::/32'],
  ['2002:7f00:1::1', '2002::/16'],
  ['2002:808:808::1', '2002::/16'],
  ['2620:4f:8000::1', '2620:4f:8000::/48'],
  ['3fff:fff::1', '3fff::/20'],
  ['5f00::1', '5f00::/16'],
  ['fd12:3456::1', 'fc00::/7'],
  ['fc00::1', 'fc00::/7'],
  ['fe80::1', 'fe80::/10'],
  ['febf::1', 'fe80::/10'],
  ['fec0::1', 'fec0::/10'],
  ['ff02::1', 'ff00::/8'],
];
const PUBLIC = ['93.184.216.34', '8.8.8.8', '1.1.1.1', '2606:4700::1', '2a00:1450:4001::200e', '2001:4860:4860::8888'];
const literal = (address: string) => (address.includes(':') ? `[${address}]` : address);

describe('IANA special-purpose addresses (jwks_uri destinations in production)', () => {
  it('every registry entry has an address inside it in this table', () => {
    const covered = new Set(INSIDE.map(([, range]) => range));
    expect([...SPECIAL_PURPOSE_IPV4, ...SPECIAL_PURPOSE_IPV6].map((e) => e.range).filter((range) => !covered.has(range))).toEqual([]);
  });

  it('the connect-time check refuses an address inside every entry, naming the entry; public addresses pass', () => {
    for (const [address, range] of INSIDE) {
      expect([address, specialPurposeRange(address)?.range, isPublicAddress(address)]).toEqual([address, range, false]);
    }
    for (const address of PUBLIC) expect([address, specialPurposeRange(address), isPublicAddress(address)]).toEqual([address, undefined, true]);
    for (const text of ['not an address', '', '127.1', 'example.com']) expect(isPublicAddress(text)).toBe(false);
  });

  it('reads the IPv4 address embedded in IPv6 (mapped, compatible, translated, NAT64, 6to4, Teredo)', () => {
    expect(embeddedIPv4('::ffff:7f00:1')).toEqual(['127.0.0.1']);
    expect(embeddedIPv4('::7f00:1')).toEqual(['127.0.0.1']);
    expect(embeddedIPv4('::ffff:0:7f00:1')).toEqual(['127.0.0.1']);
    expect(embeddedIPv4('64:ff9b::a9fe:a9fe')).toEqual(['169.254.169.254']);
    expect(embeddedIPv4('2002:a00:1::1')).toEqual(['10.0.0.1']);
    // RFC 4380 §4's example: server 65.54.227.120, client 192.0.2.45 (stored inverted).
    expect(embeddedIPv4('2001:0:4136:e378:8000:63bf:3fff:fdd2')).toEqual(['65.54.227.120', '192.0.2.45']);
    expect(embeddedIPv4('2606:4700::1')).toEqual([]);
  });

  it('fetchJwks refuses every one of them before any connection', async () => {
    for (const [address] of INSIDE) {
      await expect(fetchJwks(`https://${literal(address)}:1/jwks`, { production: true })).rejects.toThrow(/may not point at .*a private, loopback or reserved address/);
    }
    await expect(fetchJwks('https://localhost.:1/jwks', { production: true })).rejects.toThrow('may not point at localhost');
    // A name is checked on every address it resolves to, in the connection's own lookup: this machine's
    // name resolves to a loopback or private address (were it public, nothing is asserted and nothing fetched).
    const name = os.hostname();
    const resolved = await dns.lookup(name, { all: true }).catch(() => []);
    if (resolved.length > 0 && resolved.some((a) => !isPublicAddress(a.address))) {
      await expect(fetchJwks(`https://${name}:1/jwks`, { production: true })).rejects.toThrow(/resolves to .*\(.*RFC \d+\), a private, loopback or reserved address/);
    }
  });

  describe('registration through the admin API in production', () => {
    let database: TestDatabase;
    let handle: DatabaseHandle;
    let server: TestServer;
    let token: string;

    beforeAll(async () => {
      database = await createTestDatabase();
      handle = await database.open();
      const env = testEnv(database);
      const production = { ...env, NODE_ENV: 'production', DATABASE_URL: env.DATABASE_URL ?? 'postgres://unused' };
      server = await startTestServer(loadConfig(production), handle);
      token = (await adminToken(env, handle, '--permission', 'clients:read', '--permission', 'clients:write')).token;
    });
    afterAll(async () => {
      await server?.close();
      await database?.drop();
    });

    const admin = () => ({
      post: (body: object) => request(server.url).post('/admin/v1/clients').set('Authorization', `Bearer ${token}`).send(body),
      patch: (id: string, body: object) => request(server.url).patch(`/admin/v1/clients/${id}`).set('Authorization', `Bearer ${token}`).send(body),
    });
    const count = async () => Number((await handle.db.selectFrom('oauth_clients').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

    it('refuses a jwks_uri inside every entry at POST and PATCH, changing nothing; public addresses are registered', async () => {
      const kept = await admin().post({ name: 'kept', scopes: ['read'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://keys.example/jwks' });
      expect(kept.status).toBe(201);
      const before = await count();
      for (const [address, range] of INSIDE) {
        const jwksUri = `https://${literal(address)}/.well-known/jwks.json`;
        const created = await admin().post({ name: 'inside', scopes: ['read'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: jwksUri });
        expect({ address, status: created.status, error: created.body.error }).toEqual({ address, status: 400, error: 'invalid_request' });
        expect(created.body.message).toContain(`${range}, RFC `);
        const changed = await admin().patch(kept.body.client_id, { jwks_uri: jwksUri });
        expect({ address, status: changed.status }).toEqual({ address, status: 400 });
      }
      expect(await count()).toBe(before);
      expect((await request(server.url).get(`/admin/v1/clients/${kept.body.client_id}`).set('Authorization', `Bearer ${token}`)).body.jwks_uri).toBe('https://keys.example/jwks');
      for (const address of PUBLIC) {
        const created = await admin().post({ name: 'public', scopes: ['read'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `https://${literal(address)}/jwks` });
        expect({ address, status: created.status }).toEqual({ address, status: 201 });
      }
    });
  });
});
