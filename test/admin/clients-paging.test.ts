import crypto from 'node:crypto';
import { sql } from 'kysely';
import request from 'supertest';
import { insertClient } from '../../src/clients/repository';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { matchesOpenApi } from '../helpers/openapi';
import { adminToken, cli, signUp, testEnv } from '../users/support';

/** The longest client id there is: a Client ID Metadata Document URL of 256 characters (src/clients/metadata-documents.ts). */
const LONGEST_URL_ID = `https://agent.example/${'d'.repeat(256 - 'https://agent.example/'.length - '/client.json'.length)}/client.json`;

interface Page {
  clients: Array<{ client_id: string; created_at: string }>;
  next_cursor: string | null;
}

/**
 * GET /admin/v1/clients and `idp clients list` (docs/http-api.md "Admin API", docs/oauth.md): newest first,
 * keyset pages of `limit` over (created_at, id), opaque authenticated cursors of their own kind, shared
 * between the two (one MEK ring), as the users list pages.
 */
describe('the clients list in pages (admin API and CLI)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let env: Record<string, string>;
  let token: string;
  /** Every client's id, in the order the database sorts them (created_at desc, id desc). */
  let expected: string[];

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database);
    server = await startTestServer(loadConfig(env), handle);
    token = (await adminToken(env, handle, '--permission', 'clients:read', '--permission', 'users:read')).token;
    // Eleven clients: three created at the same instant (the id breaks the tie), the longest possible
    // id (a metadata-document URL), dynamic and operator ones, issued ids differing only in case.
    const base = Date.parse('2026-12-01T10:00:00.000Z');
    const add = (id: string, at: number, registeredBy: 'operator' | 'dynamic' | 'metadata_document' = 'operator') =>
      insertClient(handle.db, {
        id,
        name: `client ${id.slice(0, 12)}`,
        secretHash: registeredBy === 'operator' ? crypto.randomBytes(32) : null,
        ...(registeredBy !== 'operator' && { tokenEndpointAuthMethod: 'none', redirectUris: ['https://agent.example/cb'] }),
        registeredBy,
        scopes: ['read'],
        audiences: ['https://api.example'],
        tenantId: null,
        tokenTtlSeconds: null,
        now: new Date(at),
      });
    await add('sameInstantA', base);
    await add('sameInstantB', base);
    await add(LONGEST_URL_ID, base, 'metadata_document');
    await add('CaseSensitive', base + 1_000);
    await add('casesensitive', base + 1_000);
    for (let i = 0; i < 5; i++) await add(crypto.randomBytes(16).toString('base64url'), base + 2_000 + i, i % 2 === 0 ? 'dynamic' : 'operator');
    await add('https://agent.example/other/client.json', base - 1_000, 'metadata_document');
    await signUp(server.url);
    await signUp(server.url);
    expected = (await sql<{ id: string }>`select id from oauth_clients order by created_at desc, id desc`.execute(handle.db)).rows.map((r) => r.id);
    expect(expected).toHaveLength(11);
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const snapshot = async () => ({
    clients: (await sql`select * from oauth_clients order by id`.execute(handle.db)).rows,
    audit: (await sql`select * from audit_events order by id`.execute(handle.db)).rows,
  });
  /** The next_cursor of the users list's first page of one (two users signed up in beforeAll). */
  const firstUsersCursor = async () => {
    const users = await request(server.url).get('/admin/v1/users?limit=1').set('Authorization', `Bearer ${token}`);
    expect(users.body.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    return users.body.next_cursor as string;
  };
  const get = (query: string) => request(server.url).get(`/admin/v1/clients${query}`).set('Authorization', `Bearer ${token}`).expect(matchesOpenApi);
  /** Follows next_cursor from the first page to the last: the ids in order, and the pages' sizes. */
  const walkApi = async (limit: number) => {
    const ids: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`?limit=${limit}${cursor === null ? '' : `&cursor=${cursor}`}`);
      expect(res.status).toBe(200);
      const page = res.body as Page;
      ids.push(...page.clients.map((c) => c.client_id));
      sizes.push(page.clients.length);
      cursor = page.next_cursor;
    } while (cursor !== null && sizes.length <= 20);
    return { ids, sizes };
  };
  const walkCli = async (limit: number) => {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const result = await cli(env, handle, 'clients', 'list', '--limit', String(limit), ...(cursor === null ? [] : ['--cursor', cursor]), '--json');
      expect(result).toMatchObject({ code: 0, stderr: '' });
      const page = JSON.parse(result.stdout) as Page;
      ids.push(...page.clients.map((c) => c.client_id));
      cursor = page.next_cursor;
      pages++;
    } while (cursor !== null && pages <= 20);
    return ids;
  };

  it('a first page holds `limit` clients, newest first, and a next_cursor; following it yields every client exactly once, in order', async () => {
    const first = await get('?limit=4');
    expect(first.status).toBe(200);
    expect(Object.keys(first.body).sort()).toEqual(['clients', 'next_cursor']);
    expect(first.body.clients.map((c: { client_id: string }) => c.client_id)).toEqual(expected.slice(0, 4));
    expect(first.body.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(await walkApi(4)).toEqual({ ids: expected, sizes: [4, 4, 3] });
    // A page boundary after every client: each id, the longest URL and the tied instants among them, is in a cursor once.
    expect((await walkApi(1)).ids).toEqual(expected);
    // Exactly the page size: the last full page says there is no more.
    expect(await walkApi(11)).toEqual({ ids: expected, sizes: [11] });
  });

  it('without limit, a page of 100 (the users list default); at most 500', async () => {
    expect((await get('')).body).toEqual({ clients: expect.any(Array), next_cursor: null });
    // 95 more, older than the others: 106 in all.
    await sql`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at)
      select 'bulk' || g, 'bulk', decode('00', 'hex'), '[]', '["https://api.example"]', t, t
        from generate_series(1, 95) g, lateral (select timestamptz '2026-01-01T00:00:00Z' + g * interval '1 second' as t) at`.execute(handle.db);
    try {
      const page = await get('');
      expect(page.body.clients).toHaveLength(100);
      expect(page.body.clients.slice(0, 11).map((c: { client_id: string }) => c.client_id)).toEqual(expected);
      expect(page.body.next_cursor).toEqual(expect.any(String));
      expect((await get(`?cursor=${page.body.next_cursor}`)).body.clients).toHaveLength(6);
      const all = await get('?limit=500');
      expect(all.body.clients).toHaveLength(106);
      expect(all.body.next_cursor).toBeNull();
    } finally {
      await sql`delete from oauth_clients where id like 'bulk%'`.execute(handle.db);
    }
  });

  it('refuses a bad limit and any cursor it did not hand out: 400 in the admin API error shape', async () => {
    const cursor = (await get('?limit=1')).body.next_cursor as string;
    expect((await get(`?limit=1&cursor=${cursor}`)).status).toBe(200);
    const usersCursor = await firstUsersCursor();
    const bytes = Buffer.from(cursor, 'base64url');
    const flipped = Buffer.from(bytes);
    flipped[10] = (flipped[10] as number) ^ 1;
    const forged = Buffer.concat([Buffer.from(JSON.stringify({ v: 2, k: 'clients', at: '2026-12-01T10:00:00.000Z', id: 'sameInstantB' })), Buffer.alloc(16)]);
    const before = await snapshot();
    const refused = [
      '?limit=0',
      '?limit=501',
      '?limit=abc',
      '?limit=1.5',
      '?limit=1&limit=2',
      `?cursor=${usersCursor}`,
      `?cursor=${flipped.toString('base64url')}`,
      `?cursor=${cursor.slice(0, -2)}`,
      `?cursor=${forged.toString('base64url')}`,
      `?cursor=${cursor}&cursor=${cursor}`,
      `?cursor=${'A'.repeat(1025)}`,
      '?cursor=',
      '?cursor=not%20a%20cursor',
    ];
    for (const query of refused) {
      const res = await get(query);
      expect({ query, status: res.status }).toEqual({ query, status: 400 });
      expect(Object.keys(res.body).sort()).toEqual(['error', 'message']);
      expect(res.body.error).toBe('invalid_request');
    }
    expect(await snapshot()).toEqual(before);
    // Bound to its list the other way too: a clients cursor is not a users cursor.
    const atUsers = await request(server.url).get(`/admin/v1/users?cursor=${cursor}`).set('Authorization', `Bearer ${token}`);
    expect(atUsers.status).toBe(400);
  });

  it('idp clients list pages the same way, with --limit and --cursor, and prints next_cursor', async () => {
    expect(await walkCli(3)).toEqual(expected);
    expect(await walkCli(1)).toEqual(expected);

    const text = await cli(env, handle, 'clients', 'list', '--limit', '2');
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^CLIENT_ID +NAME/);
    expect(lines[1]?.startsWith(expected[0] as string)).toBe(true);
    const next = /^next_cursor: ([A-Za-z0-9_-]+)$/.exec(lines[3] as string)?.[1];
    expect(next).toBeDefined();
    const rest = await cli(env, handle, 'clients', 'list', '--cursor', next as string, '--json');
    expect((JSON.parse(rest.stdout) as Page).clients.map((c) => c.client_id)).toEqual(expected.slice(2));
    expect(JSON.parse(rest.stdout).next_cursor).toBeNull();
    // The last page prints no next_cursor line.
    expect((await cli(env, handle, 'clients', 'list', '--cursor', next as string)).stdout).not.toMatch(/next_cursor/);

    // One MEK ring: a cursor of the CLI pages the admin API, and the other way round.
    expect((await get(`?limit=2&cursor=${next}`)).body.clients.map((c: { client_id: string }) => c.client_id)).toEqual(expected.slice(2, 4));
    const apiCursor = (await get('?limit=5')).body.next_cursor as string;
    const fromApi = await cli(env, handle, 'clients', 'list', '--limit', '5', '--cursor', apiCursor, '--json');
    expect((JSON.parse(fromApi.stdout) as Page).clients.map((c) => c.client_id)).toEqual(expected.slice(5, 10));
  });

  it('idp clients list refuses a bad --limit or --cursor in one line, exit 1, nothing printed', async () => {
    const usersCursor = await firstUsersCursor();
    const cursor = (await get('?limit=1')).body.next_cursor as string;
    const cases: Array<[string[], RegExp]> = [
      [['--limit', '0'], /^idp: --limit: /],
      [['--limit', '501'], /^idp: --limit: /],
      [['--limit', 'many'], /^idp: --limit: /],
      [['--cursor', `${cursor.slice(0, -1)}${cursor.endsWith('A') ? 'B' : 'A'}`], /^idp: --cursor: not a cursor of idp clients list/],
      [['--cursor', 'x'.repeat(1025)], /^idp: --cursor: /],
      [['--cursor', usersCursor], /^idp: --cursor: not a cursor of idp clients list/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(env, handle, 'clients', 'list', ...args);
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 1, stdout: '' });
      expect(result.stderr).toMatch(message);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
  });
});
