import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import type { DatabaseHandle } from '../../src/db';
import { listKeys } from '../../src/keys/repository';
import { testMek } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { getJson, killAllChildren, stopChild, waitFor } from '../multiprocess/processes';
import { headerKid, logLines, prepare, preload, record, runLoad, startServer, StrictVerifier, token, type SeededClient, type Server } from './harness';

/** Paces a load loop (a throttle, never a wait for a result: those poll with waitFor). */
const pace = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A rotation every 12 s, checked every second by every server; a verifier caches the JWKS for 2 s. */
const LIFECYCLE = {
  IDP_KEY_ROTATION_INTERVAL: '12s',
  IDP_KEY_PREPUBLISH: '4s',
  IDP_JWKS_MAX_AGE: '2',
  IDP_ROTATION_CRON: '* * * * * *',
};

/**
 * Token, JWKS and verification load over the live servers: every token is verified by a strict
 * verifier against the key set of a live server as cached by its max-age.
 */
function loadOver(servers: () => Server[], client: SeededClient, verifier: StrictVerifier, kids: Set<string>) {
  const seen = record();
  const load = runLoad(4, async (loop) => {
    const live = servers();
    if (live.length === 0) {
      await pace(50);
      return;
    }
    const server = live[(seen.count('token') + loop) % live.length] as Server;
    const kind = loop === 3 ? 'jwks' : 'token';
    try {
      if (kind === 'jwks') {
        seen.add(`jwks ${server.url}`, (await getJson(`${server.url}/.well-known/jwks.json`, 5_000)).status);
        await pace(20);
        return;
      }
      const answer = await token(server.url, client.authorization, 5_000);
      seen.add('token', answer.status);
      seen.add(`token ${server.url}`, answer.status);
      if (answer.status !== 200) return;
      const jwt = answer.body.access_token as string;
      kids.add(headerKid(jwt));
      const verifyWith = live[(seen.count('token') + 1) % live.length] as Server;
      await verifier.verify(jwt, verifyWith.url);
    } catch (error) {
      seen.fail(`${kind} ${server.url}`, error);
    }
  });
  return { seen, load };
}

describe(`a server killed with SIGKILL inside a rotation transaction, under load (${usingPostgres ? 'Postgres, 3 compiled servers' : 'PGlite on disk, the one server killed and started again'})`, () => {
  let database: TestDatabase;
  let handle: DatabaseHandle | undefined;
  let client: SeededClient;
  let dir: string;
  let env: Record<string, string>;
  const mek = testMek();

  beforeAll(async () => {
    database = await createTestDatabase({ onDisk: true });
    handle = await database.open();
    [client] = (await prepare(handle, mek, 1, LIFECYCLE)) as [SeededClient];
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-hang-'));
    env = {
      ...database.env,
      IDP_MEK: mek,
      ...LIFECYCLE,
      NODE_OPTIONS: preload('hang-in-rotation'),
      IDP_TEST_HANG_ARM_FILE: path.join(dir, 'armed'),
      IDP_TEST_HANG_ONCE_FILE: path.join(dir, 'hanging'),
    };
    // PGlite is one process's database: the server takes the directory over.
    if (!usingPostgres) {
      await database.release();
      handle = undefined;
    }
  }, 120_000);

  afterAll(async () => {
    await killAllChildren();
    await database?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exactly one transition happens, and no token fails verification', async () => {
    const count = usingPostgres ? 3 : 1;
    let servers = await Promise.all(Array.from({ length: count }, () => startServer(env)));
    const verifier = new StrictVerifier();
    const kids = new Set<string>();
    const { seen, load } = loadOver(() => servers, client, verifier, kids);
    let killed: Server | undefined;
    let before: { current: string; next: string } | undefined;
    try {
      const first = await token((servers[0] as Server).url, client.authorization, 5_000);
      const firstKid = headerKid(first.body.access_token as string);
      await waitFor('the load verifies tokens of the first key', () => (verifier.verified >= 10 ? true : undefined), 30_000, 50);
      // From now on, the first server to generate a key (a promotion's new `next`) stays inside its transaction.
      fs.writeFileSync(env.IDP_TEST_HANG_ARM_FILE as string, '');
      const pid = await waitFor('a server is stuck inside a rotation transaction', () => {
        const file = env.IDP_TEST_HANG_ONCE_FILE as string;
        return fs.existsSync(file) && fs.readFileSync(file, 'utf8') !== '' ? Number(fs.readFileSync(file, 'utf8')) : undefined;
      }, 60_000, 50);
      killed = servers.find((s) => s.child.pid === pid) as Server;
      expect(killed).toBeDefined();

      if (usingPostgres && handle) {
        // Proof that it is mid-transaction: its backend holds the key lock and row locks on signing_keys…
        const locks = await sql<{ locktype: string }>`
          select l.locktype from pg_locks l join pg_stat_activity a on a.pid = l.pid
           where a.datname = current_database() and a.state = 'idle in transaction' and l.granted
             and (l.locktype = 'advisory' or (l.locktype = 'relation' and l.relation = 'signing_keys'::regclass and l.mode = 'RowExclusiveLock'))`.execute(handle.db);
        expect(locks.rows.map((r) => r.locktype).sort()).toEqual(['advisory', 'relation']);
        // …and what it wrote is not visible to anyone else: the keys are as before the transition.
        const keys = await listKeys(handle.db);
        before = { current: keys.find((k) => k.state === 'current')?.kid as string, next: keys.find((k) => k.state === 'next')?.kid as string };
        expect(before.current).toBe(firstKid);
      }

      killed.child.kill('SIGKILL');
      expect(await killed.child.exited).toBe('SIGKILL');
      servers = servers.filter((s) => s !== killed);
      if (!usingPostgres) {
        // The one instance comes back on the same directory; its start-up check makes the overdue transition.
        servers = [await startServer({ ...env, IDP_TEST_HANG_ARM_FILE: '' })];
      }
      // The survivors (Postgres) or the restarted server (PGlite) make the transition, once.
      const promotedKid = await waitFor(
        'the rotation is made by another server',
        async () => {
          const answer = await token((servers[0] as Server).url, client.authorization, 5_000);
          const kid = answer.status === 200 ? headerKid(answer.body.access_token as string) : undefined;
          return kid !== undefined && kid !== firstKid ? kid : undefined;
        },
        60_000,
        100,
      );
      if (before) expect(promotedKid).toBe(before.next);
      const verifiedBefore = verifier.verified;
      await waitFor('the load verifies tokens after the transition', () => (verifier.verified >= verifiedBefore + 10 ? true : undefined), 30_000, 50);
      await load.stop();

      // The audit log and the keys: one promotion of that key, one demotion, one current, one next.
      if (!usingPostgres) {
        for (const server of servers) await stopChild(server.child);
        handle = await database.open();
      }
      const db = (handle as DatabaseHandle).db;
      const promotions = await db.selectFrom('audit_events').select('target').where('action', '=', 'key.promoted').where('target', '=', promotedKid).execute();
      expect(promotions).toHaveLength(1);
      const keys = await listKeys(db);
      expect(keys.filter((k) => k.state === 'current').map((k) => k.kid)).toEqual([promotedKid]);
      expect(keys.filter((k) => k.state === 'next')).toHaveLength(1);
      const demoted = await db.selectFrom('audit_events').select('target').where('action', '=', 'key.deactivated').execute();
      expect(new Set(demoted.map((d) => d.target)).size).toBe(demoted.length);
      expect(demoted.filter((d) => d.target === firstKid)).toHaveLength(1);
    } finally {
      await load.stop();
    }

    // No verification failure, and tokens of both the old and the new key were verified.
    expect(verifier.failures).toEqual([]);
    expect(kids.size).toBeGreaterThanOrEqual(2);
    expect(verifier.verified).toBeGreaterThan(20);
    // Every answer was a token and every JWKS a 200; only the killed server stopped answering.
    expect((seen.statuses.get('token') ?? []).filter((s) => s !== 200)).toEqual([]);
    for (const [kind, statuses] of seen.statuses) if (kind.startsWith('jwks')) expect(statuses.filter((s) => s !== 200)).toEqual([]);
    if (usingPostgres) {
      expect([...seen.transportErrors.keys()].filter((kind) => !kind.endsWith(killed?.url as string))).toEqual([]);
      for (const server of servers) expect(logLines(server.child.output()).filter((l) => l.level >= 50)).toEqual([]);
    }
  }, 180_000);
});
