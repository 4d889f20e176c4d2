import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';

/** Shared helpers of the benchmarks: child servers on loopback, autocannon runs, medians. */

export interface RunFigures {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

export function argument(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts a child process and waits until `readyUrl` answers 200. */
export async function startChild(command: string, args: string[], env: NodeJS.ProcessEnv, readyUrl: string): Promise<ChildProcess> {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
    try {
      const res = await fetch(readyUrl);
      if (res.ok) return child;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill('SIGKILL');
  throw new Error(`${readyUrl} did not become ready`);
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

export async function load(options: autocannon.Options): Promise<RunFigures> {
  const result = await autocannon(options);
  return {
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/**
 * Each variant warmed up for 2 s (which must answer only 2xx), then `runs` runs of `duration` s each,
 * alternating between the variants so that a drifting load falls on all of them alike.
 */
export async function alternatingRuns<V extends string>(variants: readonly V[], request: (variant: V) => autocannon.Options, runs: number, duration: number): Promise<Map<V, RunFigures[]>> {
  for (const variant of variants) {
    const warm = await load({ ...request(variant), duration: 2 });
    if (warm.non2xx > 0 || warm.errors > 0) throw new Error(`${variant}: ${warm.non2xx} non-2xx and ${warm.errors} errors in the warm-up`);
  }
  const figures = new Map<V, RunFigures[]>(variants.map((v) => [v, []]));
  for (let i = 0; i < runs; i++) {
    for (const variant of variants) figures.get(variant)?.push(await load({ ...request(variant), duration }));
  }
  return figures;
}

/** CPU time (user + system, ms) each of `pids` has used so far, from /proc (Linux); a process gone since is left out. */
function cpuMs(pids: readonly number[]): Map<number, number> {
  const used = new Map<number, number>();
  for (const pid of pids) {
    try {
      // Fields after the parenthesised command name: utime and stime are the 12th and 13th, in clock ticks (100 a second).
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      used.set(pid, (Number(fields[11]) + Number(fields[12])) * 10);
    } catch {
      // exited
    }
  }
  return used;
}

/** CPU per request of one run, µs of one core: the load generator (this process), the server's processes, the Postgres backends serving it. */
export interface CpuPerRequest {
  loadGenerator: number;
  server: number;
  postgres: number;
}

/**
 * Runs `run` and measures the CPU each party used for it (`requests`: how many it served, from its
 * figures). On 2 shared cores the requests a second move with whatever else the machine does; the
 * CPU a request costs much less, so it is printed too.
 */
export async function measured(run: () => Promise<RunFigures>, requests: (figures: RunFigures) => number, serverPid: number, database: pg.Client): Promise<RunFigures & { cpu: CpuPerRequest }> {
  const backends = async () =>
    (await database.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()')).rows.map((r) => r.pid);
  const serverBefore = cpuMs(processTree(serverPid));
  const postgresBefore = cpuMs(await backends());
  const ownBefore = process.cpuUsage();
  const figures = await run();
  const own = process.cpuUsage(ownBefore);
  const used = (before: Map<number, number>, after: Map<number, number>) => [...after].reduce((sum, [pid, ms]) => sum + ms - (before.get(pid) ?? 0), 0);
  const serverMs = used(serverBefore, cpuMs(processTree(serverPid)));
  const postgresMs = used(postgresBefore, cpuMs(await backends()));
  const count = requests(figures);
  const perRequest = (ms: number) => (ms * 1000) / count;
  return { ...figures, cpu: { loadGenerator: (own.user + own.system) / count, server: perRequest(serverMs), postgres: perRequest(postgresMs) } };
}

export function summariseCpu(label: string, runs: Array<{ cpu: CpuPerRequest }>): number {
  const part = (name: keyof CpuPerRequest) => median(runs.map((r) => r.cpu[name]));
  const total = median(runs.map((r) => r.cpu.loadGenerator + r.cpu.server + r.cpu.postgres));
  console.log(
    `${label.padEnd(34)} CPU per request, µs of one core: load generator ${part('loadGenerator').toFixed(0)}, server ${part('server').toFixed(0)}, Postgres backends ${part('postgres').toFixed(0)}, total ${total.toFixed(0)}`,
  );
  return total;
}

/** `pid` and its descendants (Linux /proc). */
function processTree(pid: number): number[] {
  const found = [pid];
  for (let i = 0; i < found.length; i++) {
    try {
      for (const task of fs.readdirSync(`/proc/${found[i]}/task`)) {
        const children = fs.readFileSync(`/proc/${found[i]}/task/${task}/children`, 'utf8').trim();
        if (children !== '') found.push(...children.split(/\s+/).map(Number));
      }
    } catch {
      // exited
    }
  }
  return found;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summarise(label: string, runs: RunFigures[]): RunFigures {
  const figures: RunFigures = {
    requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    non2xx: runs.reduce((sum, r) => sum + r.non2xx, 0),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
  };
  console.log(
    `${label.padEnd(34)} ${figures.requestsPerSecond.toFixed(0).padStart(8)} req/s   p50 ${String(figures.p50).padStart(4)} ms   p99 ${String(figures.p99).padStart(4)} ms   non-2xx ${figures.non2xx}   errors ${figures.errors}   (runs: ${runs.map((r) => r.requestsPerSecond.toFixed(0)).join(', ')})`,
  );
  return figures;
}

/** A throw-away database on the server of `adminUrl` (loopback only), so a benchmark never writes into a real one. */
export async function scratchDatabase(adminUrl: string, prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const url = new URL(adminUrl);
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(url.hostname)) throw new Error('DATABASE_URL must be on a loopback address');
  const name = `${prefix}_${crypto.randomBytes(4).toString('hex')}`;
  const run = async (statement: string) => {
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await run(`create database ${name}`);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`drop database if exists ${name} with (force)`) };
}

export interface IdpUnderTest {
  url: string;
  /** The server's process (the primary, when it runs workers). */
  pid: number | undefined;
  /** Environment that points the CLI at the same database and MEK. */
  env: NodeJS.ProcessEnv;
  /** Runs `idp <args> --json` (dist/src/cli/main.js) against this server's database; its parsed output. */
  cli(...args: string[]): unknown;
  stop(): Promise<void>;
}

/** The cookies a response sets, as a `Cookie` header sends them back. */
export function cookieOf(res: Response): string {
  return res.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
}

/** The value of a hosted page's hidden input (the CSRF token, the interaction id). */
export function hiddenField(html: string, name: string): string {
  const value = new RegExp(`name="${name}" value="([^"]+)"`).exec(html)?.[1];
  if (!value) throw new Error(`the page has no ${name}`);
  return value;
}

/**
 * Starts the compiled server (dist/src/main.js) on loopback over a throw-away database: a scratch
 * database on DATABASE_URL's server when `databaseUrl` is given, else an embedded PGlite in a
 * temporary directory; a fresh random MEK. `stop()` removes all of it.
 */
export async function startIdp(options: { databaseUrl?: string; workers?: number; name: string; env?: NodeJS.ProcessEnv }): Promise<IdpUnderTest> {
  // This file runs as dist/scripts/lib/bench.js.
  const root = path.resolve(__dirname, '../../..');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `idp-${options.name}-`));
  const database = options.databaseUrl ? await scratchDatabase(options.databaseUrl, `idp_${options.name.replace(/\W/g, '_')}`) : undefined;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    IDP_MEK: `bench:${crypto.randomBytes(32).toString('base64')}`,
    IDP_ISSUER: url,
    IDP_LOG_LEVEL: 'warn',
    IDP_DATA_DIR: path.join(scratch, 'data'),
    IDP_METRICS_PORT: 'off',
    ...(database ? { DATABASE_URL: database.url } : {}),
    ...options.env,
  };
  const stop = async () => {
    await database?.drop();
    fs.rmSync(scratch, { recursive: true, force: true });
  };
  let child: ChildProcess;
  try {
    child = await startChild(
      process.execPath,
      [path.join(root, 'dist/src/main.js')],
      { ...env, PORT: String(port), HOST: '127.0.0.1', ...(options.workers ? { IDP_WORKERS: String(options.workers) } : {}) },
      `${url}/readyz`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    pid: child.pid,
    env,
    cli: (...args: string[]) => JSON.parse(execFileSync(process.execPath, [path.join(root, 'dist/src/cli/main.js'), ...args, '--json'], { env }).toString()) as unknown,
    async stop() {
      await stopChild(child);
      await stop();
    },
  };
}
