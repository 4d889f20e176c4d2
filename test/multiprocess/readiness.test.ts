import http from 'node:http';
import type { DatabaseHandle } from '../../src/db';
import { testMek } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { logLines, prepare, type SeededClient } from '../faults/harness';
import { freePort, killAllChildren, spawnServer, stopChild, waitFor, type Child } from './processes';

/** One answer, or the transport error (connection refused or reset) of a request that got none. */
interface Outcome {
  startedAt: number;
  endedAt: number;
  status?: number;
  body?: string;
  error?: string;
}

/** A request on a fresh connection (agent: false), so that node:cluster hands each one to the next worker. */
function send(url: string, path: string, method: 'GET' | 'POST', headers: Record<string, string>, body: string, timeoutMs = 5_000): Promise<Outcome> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    const target = new URL(path, url);
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method, agent: false, timeout: timeoutMs, headers: { ...headers, 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ startedAt, endedAt: Date.now(), status: res.statusCode ?? 0, body: text }));
        res.on('error', (error: NodeJS.ErrnoException) => resolve({ startedAt, endedAt: Date.now(), error: error.code ?? error.message }));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'TIMEOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ startedAt, endedAt: Date.now(), error: error.code ?? error.message }));
    req.end(body);
  });
}

/**
 * `loops` clients, each sending `request` again and again until stopped (or a bound on the number
 * of requests is reached); every outcome is kept with its times. A loop that gets no answer (the
 * server is down between a stop and a start) tries again 10 ms later; so does a readiness probe.
 */
const loads = new Set<{ stop(): Promise<void> }>();
function repeat(loops: number, request: () => Promise<Outcome>, pauseMs = 0, maxRequests = 50_000) {
  const outcomes: Outcome[] = [];
  let running = true;
  const done = Array.from({ length: loops }, async () => {
    while (running && outcomes.length < maxRequests) {
      const outcome = await request();
      outcomes.push(outcome);
      if (outcome.error || pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, Math.max(pauseMs, 10)));
    }
  });
  const load = {
    outcomes,
    /** Tokens issued to requests that started after `since`. */
    issuedSince: (since: number) => outcomes.filter((o) => o.startedAt >= since && o.status === 200).length,
    async stop() {
      running = false;
      await Promise.all(done);
      loads.delete(load);
    },
  };
  loads.add(load);
  return load;
}

/** Three clients asking for tokens, each request on a fresh connection. */
const tokenLoad = (url: string, authorization: string) =>
  repeat(3, () => send(url, '/oauth/token', 'POST', { Authorization: authorization, 'Content-Type': 'application/x-www-form-urlencoded' }, 'grant_type=client_credentials'));

/** /readyz on a fresh connection each time: the answer of whichever worker the cluster picks. */
const readyz = (url: string) => send(url, '/readyz', 'GET', {}, '');

/** Polls /readyz until it answers `status`; returns when that answer arrived. */
async function untilReadyz(url: string, status: number, server: Child, timeoutMs = 30_000): Promise<{ at: number; body: string }> {
  return waitFor(
    `/readyz answers ${status}`,
    async () => {
      if (server.process.exitCode !== null) throw new Error(`the server exited with ${server.process.exitCode}:\n${server.output()}`);
      const answer = await readyz(url);
      return answer.status === status ? { at: answer.endedAt, body: answer.body ?? '' } : undefined;
    },
    timeoutMs,
    25,
  );
}

/** The pids of the workers that logged "ready" (their own line, not the primary's). */
const readyWorkers = (server: Child) =>
  logLines(server.output())
    .filter((line) => line.msg === 'ready' && line.pid !== server.pid)
    .map((line) => line.pid as number);

const unavailable = (outcomes: Outcome[]) => outcomes.filter((o) => o.status === 503).map((o) => o.body);

// Several workers on one database need Postgres: on PGlite IDP_WORKERS must be 1 (test/oauth/workers.test.ts).
if (usingPostgres) describe('readiness with IDP_WORKERS=2 under token load (Postgres)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let client: SeededClient;
  let port: number;
  let url: string;
  let server: Child;
  const mek = testMek('readiness-mek');
  const start = () =>
    spawnServer({ ...database.env, NODE_ENV: 'test', IDP_MEK: mek, IDP_ISSUER: 'http://idp.faults.test', PORT: String(port), HOST: '127.0.0.1', IDP_WORKERS: '2', IDP_LOG_LEVEL: 'info' });

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    client = (await prepare(handle, mek, 1))[0] as SeededClient;
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    // A test that failed half-way leaves its load running.
    await Promise.all([...loads].map((load) => load.stop()));
    await killAllChildren();
    await handle?.close();
    await database?.drop();
  });

  it('a start: no 503 once /readyz has answered 200, and 200 only with both workers ready', async () => {
    // The load runs before the server exists: connections are refused until a worker listens.
    const load = tokenLoad(url, client.authorization);
    server = start();
    const firstReady = await untilReadyz(url, 200, server);
    // Each worker logged "ready" before the primary counted it (the pipe may deliver the line a little later).
    const workersReady = await waitFor('two workers logged ready', () => (readyWorkers(server).length === 2 ? 2 : undefined), 2_000).catch(() => readyWorkers(server).length);
    await waitFor('200 tokens issued after /readyz first answered 200', () => (load.issuedSince(firstReady.at) >= 200 ? true : undefined), 30_000);
    await load.stop();

    expect(unavailable(load.outcomes.filter((o) => o.startedAt >= firstReady.at))).toEqual([]);
    // Not one answer came from a worker that was not ready: before any worker could serve, none listened.
    expect(unavailable(load.outcomes)).toEqual([]);
    expect(workersReady).toBe(2);
    expect(JSON.parse(firstReady.body)).toEqual({ status: 'ready', checks: { database: true, signing_key: true, workers: true } });
  });

  it('a worker killed with SIGKILL: the other keeps serving (no 503), /readyz 503 until its replacement is ready, then 200', async () => {
    await untilReadyz(url, 200, server);
    const [victim, survivor] = readyWorkers(server);
    const load = tokenLoad(url, client.authorization);
    await waitFor('tokens from both workers', () => (load.issuedSince(0) >= 20 ? true : undefined), 10_000);

    // Two probes every 25 ms, each with a short timeout: one of them may be the connection lost with
    // the killed worker (below), and must not hide the answers of the others.
    const probes = repeat(2, () => send(url, '/readyz', 'GET', {}, '', 1_000), 25);
    await waitFor('/readyz probed', () => (probes.outcomes.some((o) => o.status === 200) ? true : undefined), 5_000);
    process.kill(victim as number, 'SIGKILL');
    const killedAt = Date.now();
    // The primary notices the exit and tells the survivor: fewer workers ready than configured.
    const notReady = await waitFor('/readyz answers 503', () => probes.outcomes.find((o) => o.startedAt >= killedAt && o.status === 503), 10_000);
    const readyAgain = await waitFor('/readyz answers 200 again', () => probes.outcomes.find((o) => o.startedAt > notReady.endedAt && o.status === 200), 30_000);
    // 200 again only once a replacement (a third pid) has started, loaded its keys and said so.
    const replacement = await waitFor('the replacement logged ready', () => readyWorkers(server).find((pid) => pid !== victim && pid !== survivor), 2_000);
    expect(replacement).toBeDefined();
    await waitFor('100 tokens issued after /readyz answered 200 again', () => (load.issuedSince(readyAgain.endedAt) >= 100 ? true : undefined), 30_000);
    await Promise.all([load.stop(), probes.stop()]);

    const during = load.outcomes.filter((o) => o.endedAt >= killedAt);
    expect(unavailable(load.outcomes)).toEqual([]);
    expect(during.filter((o) => o.status === 200).length).toBeGreaterThan(100);
    // The listening socket is the primary's: no connection is refused. Requests in flight on the
    // killed worker die with it, at most one per loop: those it had accepted are reset; the one
    // connection node:cluster's primary was handing to it at that instant is never answered nor
    // closed (the primary keeps its copy until the worker acknowledges it), so that client waits
    // for its own timeout. docs/operating.md "Running several instances on one Postgres".
    const failures = during.filter((o) => o.error).map((o) => o.error);
    expect(failures.filter((e) => e !== 'ECONNRESET' && e !== 'EPIPE' && e !== 'TIMEOUT')).toEqual([]);
    expect(failures.filter((e) => e === 'TIMEOUT').length).toBeLessThanOrEqual(1);
    expect(failures.length).toBeLessThanOrEqual(3);
    expect(JSON.parse(notReady.body ?? '')).toEqual({ status: 'not ready', checks: { database: true, signing_key: true, workers: false } });
  });

  it('the whole server restarted under load: no 503 once /readyz answers 200 again', async () => {
    const load = tokenLoad(url, client.authorization);
    await waitFor('tokens before the restart', () => (load.issuedSince(0) >= 20 ? true : undefined), 10_000);
    expect(await stopChild(server)).toBe(0);
    server = start();
    const firstReady = await untilReadyz(url, 200, server);
    await waitFor('two workers logged ready', () => (readyWorkers(server).length === 2 ? true : undefined), 2_000);
    await waitFor('200 tokens issued after the restart', () => (load.issuedSince(firstReady.at) >= 200 ? true : undefined), 30_000);
    await load.stop();

    expect(unavailable(load.outcomes.filter((o) => o.startedAt >= firstReady.at))).toEqual([]);
    expect(unavailable(load.outcomes)).toEqual([]);
    // Between the two processes the port is closed (refused); a connection the draining server had
    // accepted but not read may be closed (reset). No request hangs.
    const failures = load.outcomes.filter((o) => o.error).map((o) => o.error);
    expect(failures.filter((e) => e !== 'ECONNREFUSED' && e !== 'ECONNRESET')).toEqual([]);
    expect(await stopChild(server)).toBe(0);
  });
});

// One process (the only choice on PGlite) listens while it starts, so that /healthz and /readyz
// answer while the database is awaited (test/multiprocess/database-down.test.ts); /readyz has no
// workers check then, and once it has answered 200 the process serves.
describe(`readiness of one process (IDP_WORKERS=1, ${usingPostgres ? 'Postgres' : 'PGlite on disk'}) under token load`, () => {
  let database: TestDatabase;
  const mek = testMek('readiness-mek');

  afterAll(async () => {
    await Promise.all([...loads].map((load) => load.stop()));
    await killAllChildren();
    await database?.drop();
  });

  it('no 503 once /readyz has answered 200; the body has no workers check', async () => {
    database = await createTestDatabase({ onDisk: true });
    const handle = await database.open();
    const client = (await prepare(handle, mek, 1))[0] as SeededClient;
    // PGlite is one process's database: hand the directory over to the server.
    if (usingPostgres) await handle.close();
    else await database.release();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const load = tokenLoad(url, client.authorization);
    const server = spawnServer({ ...database.env, NODE_ENV: 'test', IDP_MEK: mek, IDP_ISSUER: 'http://idp.faults.test', PORT: String(port), HOST: '127.0.0.1', IDP_WORKERS: '1', IDP_LOG_LEVEL: 'info' });
    const firstReady = await untilReadyz(url, 200, server);
    await waitFor('100 tokens issued after /readyz first answered 200', () => (load.issuedSince(firstReady.at) >= 100 ? true : undefined), 30_000);
    await load.stop();

    expect(unavailable(load.outcomes.filter((o) => o.startedAt >= firstReady.at))).toEqual([]);
    expect(JSON.parse(firstReady.body)).toEqual({ status: 'ready', checks: { database: true, signing_key: true } });
    expect(await stopChild(server)).toBe(0);
  });
});
