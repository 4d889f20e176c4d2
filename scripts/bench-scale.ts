import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type autocannon from 'autocannon';
import { CompiledQuery, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Database } from '../src/db/schema';
import { freePort, load, measured, median, scratchDatabase, summarise, summariseCpu, type CpuPerRequest, type RunFigures } from './lib/bench';
import { SEED_DEFAULTS, SEED_TENANTS, seed, seedClientId, seedClientSecret, seedUserEmail } from './lib/seed';

/**
 * `npm run bench:scale [-- --clients 1000000 --client-sets 100000,1000000 --users 1000000 --audit 1000000 --duration 15 --runs 3 --connections 16 --parts startup,throughput,memory,pages,explain]`
 *
 * The service with big tables, on a throw-away database of DATABASE_URL's server (default
 * postgres://postgres@127.0.0.1:5432/test; loopback only; dropped at the end):
 *
 * 1. seeds it (scripts/seed.ts) and times that;
 * 2. start-up time of the compiled server (IDP_WORKERS, default the CPU count) on it: spawn until every
 *    worker has logged `ready`, on the first start (which creates the signing keys) and the second;
 * 3. client-credentials throughput (and the CPU per request of the load generator, the server and its
 *    Postgres backends) with each request's client drawn uniformly at random from the first
 *    N clients, for each N of `--client-sets` (default 100,000 and every seeded client), next to the
 *    same run over 10 clients (alternating runs, medians), with the default IDP_CLIENT_CACHE_SIZE; and
 *    for the smallest set with a cache as large as that set;
 * 4. resident memory (VmRSS from /proc/<pid>/status) of each worker before and after a pass that
 *    presents each client of the smallest set to every worker, for both cache sizes, and again after
 *    the throughput runs (which present a good share of the largest set);
 * 5. p50/p99 at `--connections` of sign-in and of /admin/v1/users, /admin/v1/audit and /admin/v1/clients pages: first,
 *    middle (by cursor), filtered;
 * 6. EXPLAIN ANALYZE of the queries behind them, as the service's own code builds them.
 */

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'dist/src/main.js');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Server {
  url: string;
  child: ChildProcess;
  output(): string;
  /** Milliseconds from spawn until every worker logged `ready`. */
  startupMs: number;
}

async function startServer(env: NodeJS.ProcessEnv, workers: number): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, [MAIN], {
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', IDP_WORKERS: String(workers), IDP_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}:\n${output}`);
    if ((output.match(/"msg":"ready"/g)?.length ?? 0) >= workers) break;
    if (Date.now() > deadline) throw new Error(`the server was not ready within 300 s:\n${output}`);
    await pause(10);
  }
  const startupMs = Number(process.hrtime.bigint() - started) / 1e6;
  return { url, child, output: () => output, startupMs };
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** The pids of a cluster primary's workers (its children), from /proc. */
function workerPids(primary: number): number[] {
  const pids = new Set<number>();
  for (const task of fs.readdirSync(`/proc/${primary}/task`)) {
    const children = fs.readFileSync(`/proc/${primary}/task/${task}/children`, 'utf8').trim();
    for (const pid of children.split(/\s+/).filter(Boolean)) pids.add(Number(pid));
  }
  return [...pids].sort((a, b) => a - b);
}

function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return kb / 1024;
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

/** A token request whose client is chosen by `pick` for every request. */
function tokenRequests(url: string, connections: number, pick: () => string): autocannon.Options {
  return {
    url,
    connections,
    requests: [
      {
        method: 'POST',
        path: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
        setupRequest: (request) => ({ ...request, headers: { ...request.headers, authorization: pick() } }),
      },
    ],
  };
}

/**
 * Runs over 10 clients and over each of `sets` (the first N clients), alternating; their medians, 10
 * first. Prints each set's CPU per request too, by party (the load generator, the server's processes,
 * the Postgres backends of its database): what a miss costs, apart from how busy the machine was.
 */
async function throughput(server: Server, databaseUrl: string, headers: string[], sets: number[], connections: number, duration: number, runs: number): Promise<RunFigures[]> {
  const random = (n: number) => () => headers[crypto.randomInt(n)] as string;
  const counts = [10, ...sets];
  const options = counts.map((n) => tokenRequests(server.url, connections, random(n)));
  for (const option of options) await load({ ...option, duration: 3 });
  const results: Array<Array<RunFigures & { cpu: CpuPerRequest }>> = counts.map(() => []);
  const database = new pg.Client({ connectionString: databaseUrl });
  await database.connect();
  try {
    for (let i = 0; i < runs; i++) {
      for (const [index, option] of options.entries()) {
        results[index]?.push(await measured(() => load({ ...option, duration }), (figures) => figures.requestsPerSecond * duration, server.child.pid as number, database));
      }
    }
  } finally {
    await database.end();
  }
  const figures = counts.map((n, index) => summarise(`  random over ${n.toLocaleString('en')} clients`, results[index] ?? []));
  for (const [index, n] of counts.entries()) summariseCpu(`  random over ${n.toLocaleString('en')} clients`, results[index] ?? []);
  return figures;
}

/** Presents every client to every worker (connections are spread over the workers), then reads each worker's VmRSS. */
async function memoryAfterEveryClient(server: Server, headers: string[], clients: number, workers: number, connections: number): Promise<{ before: number[]; after: number[] }> {
  const pids = workerPids(server.child.pid as number);
  const before = pids.map(rssMiB);
  let next = 0;
  const started = Date.now();
  const figures = await load({ ...tokenRequests(server.url, connections, () => headers[next++ % clients] as string), amount: clients * workers * 2 });
  console.log(`  pass: ${(clients * workers * 2).toLocaleString('en')} requests over the first ${clients.toLocaleString('en')} clients in ${((Date.now() - started) / 1000).toFixed(0)} s (non-2xx ${figures.non2xx})`);
  await pause(1_000);
  return { before, after: pids.map(rssMiB) };
}

interface PageCase {
  label: string;
  path: string;
}

async function latency(url: string, connections: number, duration: number, request: autocannon.Request[] | { path: string; headers: Record<string, string> }): Promise<RunFigures> {
  const options: autocannon.Options = Array.isArray(request)
    ? { url, connections, duration, requests: request }
    : { url: `${url}${request.path}`, connections, duration, headers: request.headers };
  return load(options);
}

async function main(): Promise<void> {
  const counts = { clients: flag('clients', 1_000_000), users: flag('users', 1_000_000), audit: flag('audit', 1_000_000) };
  const setsIndex = process.argv.indexOf('--client-sets');
  const sets = (setsIndex >= 0 ? (process.argv[setsIndex + 1] ?? '').split(',').map(Number) : [Math.min(100_000, counts.clients), counts.clients])
    .filter((n, i, all) => all.indexOf(n) === i)
    .sort((a, b) => a - b);
  if (sets.some((n) => !Number.isInteger(n) || n < 10 || n > counts.clients)) throw new Error('--client-sets: whole numbers from 10 to --clients');
  const smallest = sets[0] as number;
  const duration = flag('duration', 15);
  const runs = flag('runs', 3);
  const connections = flag('connections', 16);
  const workers = flag('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const partsIndex = process.argv.indexOf('--parts');
  const parts = new Set(partsIndex >= 0 ? (process.argv[partsIndex + 1] ?? '').split(',') : ['startup', 'throughput', 'memory', 'pages', 'explain']);
  const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  console.log(`bench:scale on ${os.availableParallelism()} CPUs (load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}); ${workers} worker(s); Postgres`);

  const database = await scratchDatabase(adminUrl, 'idp_bench_scale');
  let server: Server | undefined;
  try {
    console.log(`\n1. seed: ${counts.clients.toLocaleString('en')} clients, ${counts.users.toLocaleString('en')} users, ${counts.audit.toLocaleString('en')} audit events`);
    const seedStarted = Date.now();
    const timings = await seed(database.url, counts, { ...SEED_DEFAULTS, log: () => undefined });
    console.log(`  ${((Date.now() - seedStarted) / 1000).toFixed(1)} s: ${Object.entries(timings).map(([k, v]) => `${k} ${v.toFixed(1)} s`).join(', ')}`);
    const sizer = new pg.Client({ connectionString: database.url });
    await sizer.connect();
    const sizes = await sizer.query<{ relname: string; size: string }>(
      "select relname, pg_size_pretty(pg_total_relation_size(oid)) as size from pg_class where relname in ('users', 'audit_events', 'oauth_clients')",
    );
    await sizer.end();
    console.log(`  table sizes with indexes: ${sizes.rows.map((r) => `${r.relname} ${r.size}`).join(', ')}`);

    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      NODE_ENV: 'test',
      DATABASE_URL: database.url,
      IDP_MEK: `bench:${crypto.randomBytes(32).toString('base64')}`,
      IDP_ISSUER: 'http://127.0.0.1',
      IDP_METRICS_PORT: 'off',
    };

    server = await startServer(env, workers);
    if (parts.has('startup')) {
      console.log(`\n2. start-up (spawn until all ${workers} workers logged "ready")`);
      console.log(`  first start (creates the signing keys): ${(server.startupMs / 1000).toFixed(2)} s`);
      await stopServer(server);
      const startups: number[] = [];
      for (let i = 0; i < 3; i++) {
        server = await startServer(env, workers);
        startups.push(server.startupMs);
        if (i < 2) await stopServer(server);
      }
      console.log(`  later starts: ${startups.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s (median ${(median(startups) / 1000).toFixed(2)} s)`);
    }

    const headers = Array.from({ length: counts.clients }, (_, i) => {
      const id = seedClientId(i + 1);
      return basic(id, seedClientSecret(id, SEED_DEFAULTS.secretSeed));
    });

    // The default cache over every set; a cache as large as the smallest set over that set alone.
    const cacheSizes: Array<[number | undefined, number[]]> = [
      [undefined, sets],
      [smallest, [smallest]],
    ];
    for (const [index, [cacheSize, clientSets]] of cacheSizes.entries()) {
      if (!parts.has('throughput') && !parts.has('memory')) break;
      if (index > 0) {
        await stopServer(server as Server);
        server = await startServer({ ...env, IDP_CLIENT_CACHE_SIZE: String(cacheSize) }, workers);
      }
      console.log(`\n${index === 0 ? '3/4' : '3b/4b'}. IDP_CLIENT_CACHE_SIZE=${cacheSize ?? '10000 (default)'}`);
      const pids = workerPids((server as Server).child.pid as number);
      if (parts.has('memory')) {
        const memory = await memoryAfterEveryClient(server as Server, headers, smallest, workers, connections);
        console.log(`  VmRSS per worker: after start ${memory.before.map((m) => m.toFixed(0)).join(', ')} MiB; after each of the first ${smallest.toLocaleString('en')} clients was seen ${memory.after.map((m) => m.toFixed(0)).join(', ')} MiB`);
      }
      if (parts.has('throughput')) {
        console.log(`  POST /oauth/token, client_credentials; ${connections} connections, ${duration} s a run, ${runs} runs each, alternating`);
        const [ten, ...figures] = await throughput(server as Server, database.url, headers, clientSets, connections, duration, runs);
        for (const [i, n] of clientSets.entries()) {
          console.log(`  ratio over ${n.toLocaleString('en')} clients: ${((figures[i]?.requestsPerSecond ?? 0) / (ten?.requestsPerSecond ?? 1)).toFixed(2)} (target ≥ 0.85)`);
        }
        console.log(`  VmRSS per worker after the throughput runs: ${pids.map((pid) => rssMiB(pid).toFixed(0)).join(', ')} MiB (load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
      }
    }
    await stopServer(server as Server);

    server = await startServer(env, workers);
    const pool = new pg.Pool({ connectionString: database.url, max: 2 });
    // An idle connection ended by the server (someone else's pg_terminate_backend on a shared server) must not end the run.
    pool.on('error', (error) => console.error(`  (bench pool: ${error.message})`));
    const middle = async (table: 'users' | 'audit_events' | 'oauth_clients', column: 'created_at' | 'occurred_at', rows: number) =>
      (await pool.query<{ at: Date; id: string }>(`select ${column} as at, id from ${table} order by ${column} desc, id desc offset $1 limit 1`, [Math.floor(rows / 2)])).rows[0] as { at: Date; id: string };
    const usersMiddle = await middle('users', 'created_at', counts.users);
    const auditMiddle = await middle('audit_events', 'occurred_at', counts.audit);
    const clientsMiddle = await middle('oauth_clients', 'created_at', counts.clients);
    if (parts.has('pages')) {
      const admin = JSON.parse(execFileSync(process.execPath, [CLI, 'admin-token', 'issue', '--super', '--ttl', '1h', '--json'], { env: { ...env, IDP_LOG_LEVEL: 'silent' } }).toString()) as { token: string };
      const auth = { authorization: `Bearer ${admin.token}` };
      // The cursor as the service writes it, MAC'd under a key derived from the same MEK ring (its format is the service's business: loaded at run time).
      const { loadConfig } = (await import(path.join(ROOT, 'dist/src/config/index.js'))) as { loadConfig(env: NodeJS.ProcessEnv): { production: boolean; mek: string | undefined; mekFile: string | undefined; devMekFile: string } };
      const { loadMekRing } = (await import(path.join(ROOT, 'dist/src/crypto/mek.js'))) as { loadMekRing(source: ReturnType<typeof loadConfig>, logger: { warn(): void }): unknown };
      const { CursorCodec } = (await import(path.join(ROOT, 'dist/src/http/cursor.js'))) as {
        CursorCodec: new (mek: unknown) => { encode(kind: 'users' | 'audit' | 'clients', position: { at: Date; id: string }): string };
      };
      const codec = new CursorCodec(loadMekRing(loadConfig(env), { warn: () => undefined }));
      const cursors = { encodeCursor: (kind: 'users' | 'audit' | 'clients', position: { at: Date; id: string }) => codec.encode(kind, position) };
      const pages: PageCase[] = [
        { label: 'GET /admin/v1/users first page', path: '/admin/v1/users?limit=50' },
        { label: 'GET /admin/v1/users middle page (cursor)', path: `/admin/v1/users?limit=50&cursor=${cursors.encodeCursor('users', usersMiddle)}` },
        { label: 'GET /admin/v1/users ?tenant_id=', path: '/admin/v1/users?limit=50&tenant_id=seed-tenant-3' },
        { label: 'GET /admin/v1/users ?email=', path: `/admin/v1/users?limit=50&email=${encodeURIComponent(seedUserEmail(Math.floor(counts.users / 2)))}` },
        { label: 'GET /admin/v1/audit first page', path: '/admin/v1/audit?limit=50' },
        { label: 'GET /admin/v1/audit middle page (cursor)', path: `/admin/v1/audit?limit=50&cursor=${cursors.encodeCursor('audit', auditMiddle)}` },
        { label: 'GET /admin/v1/audit ?action=', path: '/admin/v1/audit?limit=50&action=key.promoted' },
        { label: 'GET /admin/v1/audit ?actor=', path: '/admin/v1/audit?limit=50&actor=cli' },
        { label: 'GET /admin/v1/audit ?target=', path: '/admin/v1/audit?limit=50&target=seed-42' },
        { label: 'GET /admin/v1/clients first page', path: '/admin/v1/clients?limit=50' },
        { label: 'GET /admin/v1/clients middle page (cursor)', path: `/admin/v1/clients?limit=50&cursor=${cursors.encodeCursor('clients', clientsMiddle)}` },
      ];
      console.log(`\n5. latency at ${connections} connections, ${Math.min(duration, 10)} s each (p99 target < 50 ms; load average ${os.loadavg().map((l) => l.toFixed(2)).join(" ")})`);
      for (const page of pages) {
        const check = await fetch(`${server.url}${page.path}`, { headers: auth });
        if (check.status !== 200) throw new Error(`${page.path} answered ${check.status}: ${await check.text()}`);
        summarise(`  ${page.label}`, [await latency(server.url, connections, Math.min(duration, 10), { path: page.path, headers: auth })]);
      }
      const signIn: autocannon.Request[] = [
        {
          method: 'POST',
          path: '/auth/v1/token?grant_type=password',
          headers: { 'content-type': 'application/json' },
          setupRequest: (request) => ({ ...request, body: JSON.stringify({ email: seedUserEmail(1 + crypto.randomInt(counts.users)), password: SEED_DEFAULTS.password }) }),
        },
      ];
      summarise(`  POST /auth/v1/token (sign-in, random user)`, [await latency(server.url, connections, Math.min(duration, 10), signIn)]);
      summarise(`  POST /auth/v1/token (sign-in) at 2 connections`, [await latency(server.url, 2, Math.min(duration, 10), signIn)]);
    }
    await stopServer(server);
    server = undefined;

    if (parts.has('explain')) {
      console.log('\n6. EXPLAIN ANALYZE of the queries the service builds (first plan lines; execution time)');
      await explainAll(database.url, counts, usersMiddle, auditMiddle, clientsMiddle);
    }
    await pool.end();
  } finally {
    if (server) await stopServer(server);
    await database.drop();
  }
}

/** Runs the service's own query builders over a Kysely that records each compiled query, then EXPLAIN ANALYZEs them. */
async function explainAll(
  url: string,
  counts: { clients: number; users: number },
  usersMiddle: { at: Date; id: string },
  auditMiddle: { at: Date; id: string },
  clientsMiddle: { at: Date; id: string },
): Promise<void> {
  const captured: CompiledQuery[] = [];
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: (event) => void (event.level === 'query' && captured.push(event.query)) });
  const run = async (label: string, query: () => Promise<unknown>) => {
    captured.length = 0;
    await query();
    const compiled = captured[0];
    if (!compiled) throw new Error(`${label}: no query`);
    const plan = await db.executeQuery<{ 'QUERY PLAN': string }>(CompiledQuery.raw(`explain (analyze, buffers) ${compiled.sql}`, [...compiled.parameters]));
    const lines = plan.rows.map((r) => r['QUERY PLAN']);
    // Every scan and sort, and how many rows a scan read only to throw away.
    const nodes = lines
      .filter((l) => /Scan|Sort|Rows Removed by Filter/.test(l))
      .map((l) => l.trim().replace(/^->\s*/, '').replace(/\s+\(cost=.*?\)/, '').replace(/\s*\(actual time=.*?\)/, ''));
    const time = lines.find((l) => l.startsWith('Execution Time'))?.replace('Execution Time: ', '');
    console.log(`  ${label.padEnd(40)} ${time?.padStart(10)}   ${nodes.join(' → ')}`);
  };
  // Loaded at run time: the repositories' shapes belong to their owners.
  const clients = (await import(path.join(ROOT, 'dist/src/clients/repository.js'))) as {
    findClient(db: Kysely<Database>, id: string): Promise<unknown>;
    listClients(db: Kysely<Database>, page: { limit: number; after?: { at: Date; id: string } }): Promise<unknown>;
  };
  const users = (await import(path.join(ROOT, 'dist/src/users/repository.js'))) as {
    findUserByEmail(db: Kysely<Database>, email: string): Promise<unknown>;
    listUsers(db: Kysely<Database>, filter: { limit: number; tenantId?: string; after?: { at: Date; id: string } }): Promise<unknown>;
  };
  const audit = (await import(path.join(ROOT, 'dist/src/admin/audit.js'))) as { listAudit(db: Kysely<Database>, filter: { limit: number; action?: string; target?: string; after?: { at: Date; id: string } }): Promise<unknown> };
  try {
    await run('client by id (evicted client)', () => clients.findClient(db, seedClientId(Math.floor(counts.clients / 2))));
    await run('user by email (sign-in)', () => users.findUserByEmail(db, seedUserEmail(Math.floor(counts.users / 2))));
    await run('users first page', () => users.listUsers(db, { limit: 50 }));
    await run('users middle page (cursor)', () => users.listUsers(db, { limit: 50, after: usersMiddle }));
    await run('users by tenant', () => users.listUsers(db, { limit: 50, tenantId: `seed-tenant-${Math.min(3, SEED_TENANTS)}` }));
    await run('audit first page', () => audit.listAudit(db, { limit: 50 }));
    await run('audit middle page (cursor)', () => audit.listAudit(db, { limit: 50, after: auditMiddle }));
    await run('audit by action', () => audit.listAudit(db, { limit: 50, action: 'key.promoted' }));
    await run('audit by target', () => audit.listAudit(db, { limit: 50, target: 'seed-42' }));
    await run('clients first page', () => clients.listClients(db, { limit: 50 }));
    await run('clients middle page (cursor)', () => clients.listClients(db, { limit: 50, after: clientsMiddle }));
    // The middle pages as a row comparison, which an index can start from (what the admin queries should say).
    await run('users middle page, (created_at, id) < (…)', () =>
      db.selectFrom('users').selectAll().where((eb) => eb(eb.refTuple('created_at', 'id'), '<', eb.tuple(usersMiddle.at, usersMiddle.id))).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(51).execute(),
    );
    await run('audit middle page, (occurred_at, id) < (…)', () =>
      db.selectFrom('audit_events').selectAll().where((eb) => eb(eb.refTuple('occurred_at', 'id'), '<', eb.tuple(auditMiddle.at, auditMiddle.id))).orderBy('occurred_at', 'desc').orderBy('id', 'desc').limit(51).execute(),
    );
  } finally {
    await db.destroy();
  }
}

main().catch((error: Error) => {
  console.error(`bench-scale: ${error.stack ?? error.message}`);
  process.exit(1);
});
