import crypto from 'node:crypto';
import { CLIENT_USE_INTERVAL_MS, ClientCache, clientUseInterval } from '../../src/clients/cache';
import { insertClient, touchClients } from '../../src/clients/repository';
import { hashClientSecret } from '../../src/clients/secret';
import { openDatabase, type DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { createLogger } from '../../src/observability/logger';
import { captureLogs } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';

describe('clientUseInterval: how often a client use is written, for the sweep of unused clients', () => {
  it('is an hour for the default TTL (30 days)', () => {
    expect(CLIENT_USE_INTERVAL_MS).toBe(3_600_000);
    expect(clientUseInterval(30 * 86_400_000)).toBe(3_600_000);
  });

  it('is a tenth of a shorter TTL, so that a client in use is never older than the TTL when swept', () => {
    expect(clientUseInterval(600_000)).toBe(60_000);
    expect(clientUseInterval(5_000)).toBe(1_000);
  });
});

describe(`a client's last use is written once per interval, by every process together (${usingPostgres ? 'Postgres' : 'PGlite'})`, () => {
  const INTERVAL = 60_000;
  const logs = captureLogs();
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let clock = new Date('2026-12-06T12:00:00.000Z');
  /** Two processes' caches over one database, on the same clock. */
  const caches: ClientCache[] = [];
  let second: ClientCache;
  const cache = () => new ClientCache({ handle, logger: createLogger('info', logs.stream), maxEntries: 10, useIntervalMs: INTERVAL, now: () => clock });

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
    second = cache();
    caches.push(cache(), second);
  });
  afterAll(async () => {
    for (const c of caches) await c.stop();
    await database?.drop();
  });

  const lastUsed = async (id: string) => (await handle.db.selectFrom('oauth_client_uses').select('used_at').where('client_id', '=', id).executeTakeFirst())?.used_at ?? null;
  /** Writes what each process has waiting (the batch timer's work, without waiting for it). */
  const flush = async () => {
    for (const c of caches) await c.stop();
  };

  it('50 uses at once in each of two processes write it once; uses within the interval write nothing, from a new process either; the first use after it writes again', async () => {
    const id = crypto.randomBytes(16).toString('base64url');
    await insertClient(handle.db, { id, name: 'used', secretHash: hashClientSecret('s'), scopes: [], audiences: ['https://api.test'], tenantId: null, tokenTtlSeconds: null, now: clock, registeredBy: 'dynamic' });
    expect(await lastUsed(id)).toBeNull();
    const client = { id, registeredBy: 'dynamic' } as const;

    const first = clock;
    for (let i = 0; i < 50; i++) for (const c of caches) c.recordUse(client);
    await flush();
    expect(await lastUsed(id)).toEqual(first);

    // Within the interval nobody writes: not the two processes, nor a third that starts now and has
    // written nothing itself (the statement's own condition holds it back).
    clock = new Date(first.getTime() + INTERVAL - 1);
    caches.push(cache());
    for (const c of caches) c.recordUse(client);
    await flush();
    expect(await lastUsed(id)).toEqual(first);

    clock = new Date(first.getTime() + INTERVAL);
    second.recordUse(client);
    await flush();
    expect(await lastUsed(id)).toEqual(clock);
  });
});

// Each handle has a statement lane of its own, so these writes really run at once (Postgres; PGlite is one connection).
if (usingPostgres) describe('use writes of several processes at once, over the same clients (Postgres)', () => {
  let database: TestDatabase;
  const handles: DatabaseHandle[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    for (let i = 0; i < 6; i++) handles.push(await openDatabase({ databaseUrl: database.databaseUrl, dataDir: 'unused', logger: createLogger('silent'), poolSize: 1 }));
    await migrateToLatest(handles[0] as DatabaseHandle);
  });
  afterAll(async () => {
    for (const handle of handles) await handle.close();
    await database?.drop();
  });

  it('six processes writing the uses of the same 40 clients, each in its own order, all at once: no deadlock, no error, one row a client', async () => {
    const handle = handles[0] as DatabaseHandle;
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const id = crypto.randomBytes(16).toString('base64url');
      await insertClient(handle.db, { id, name: `c${i}`, secretHash: null, scopes: [], audiences: ['https://api.test'], tenantId: null, tokenTtlSeconds: null, now: new Date() });
      ids.push(id);
    }
    const now = new Date('2026-12-06T12:00:00.000Z');
    const orders = handles.map((_, i) => (i % 2 === 0 ? [...ids] : [...ids].reverse()).slice(i % 3));
    const written = await Promise.all(handles.map((h, i) => touchClients(h, orders[i] as string[], now, 60_000)));
    // Each statement writes what it found unused when it started; a client is written at least once.
    expect(written.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(ids.length);
    const rows = await handle.db.selectFrom('oauth_client_uses').select(['client_id', 'used_at']).where('client_id', 'in', ids).execute();
    expect(rows.map((r) => r.client_id).sort()).toEqual([...ids].sort());
    expect(rows.every((r) => r.used_at.getTime() === now.getTime())).toBe(true);
    // Within the interval, the same burst writes nothing.
    const again = await Promise.all(handles.map((h, i) => touchClients(h, orders[i] as string[], new Date(now.getTime() + 1_000), 60_000)));
    expect(again).toEqual(handles.map(() => 0));
  });
});
