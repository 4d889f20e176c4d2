import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config';
import { KeyRingMekProvider, parseKeyRing } from '../src/crypto/mek';
import { LISTENER_APPLICATION_NAME, openDatabase, type DatabaseHandle } from '../src/db';
import { KeyLifecycle } from '../src/keys/lifecycle';
import { createLogger } from '../src/observability/logger';
import { freePort, median } from './lib/bench';
import { startPrivatePostgres, type PrivatePostgres } from './lib/private-postgres';
import { headerKid, StrictVerifier } from './lib/strict-verifier';
import { SEED_DEFAULTS, seed, seedClientId, seedClientSecret } from './lib/seed';

/**
 * `npm run chaos [-- --scenarios restart,listener,kill,skew,soak --rounds 3 --minutes 10]`
 *
 * The longer versions of the fault tests (test/faults) and a soak, against compiled servers and a
 * private Postgres server made here (initdb in a temporary directory, removed at the end; the shared
 * server is never touched). Each scenario gets a fresh database, three instances (IDP_WORKERS=1),
 * token, JWKS and verification load (every token verified by a strict verifier that honours the
 * JWKS max-age and never refetches on an unknown kid), and prints what it saw:
 *
 * - restart:  `pg_ctl restart -m fast` every ~15 s, `--rounds` times: tokens for clients in memory,
 *             the JWKS, /readyz (503 during, 200 after), the same processes.
 * - listener: every LISTEN connection cut (pg_terminate_backend) while a rotation and a client
 *             disable happen, `--rounds` times: how long until every instance has caught up.
 * - kill:     one instance SIGKILLed inside a rotation transaction and started again, `--rounds`
 *             times: exactly one transition each time, no verification failure.
 * - skew:     three instances whose clocks are +1 h, -1 h and right, through `--rounds` rotations:
 *             every promotion an interval apart and every retirement on time, by the database's clock.
 * - soak:     `--minutes` (default 10) of load with a rotation every 30 s (legal settings): 0
 *             verification failures, VmRSS of each instance in the first and last minute, no
 *             error-level log line.
 * Exit code 1 when any scenario saw a failure.
 */

const ROOT = path.resolve(__dirname, '../..');
const MAIN = path.join(ROOT, 'dist/src/main.js');
const FIXTURES = path.join(ROOT, 'test/fixtures');
const ISSUER = 'http://idp.chaos.test';
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const silent = createLogger('silent');

function numberFlag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const value = index >= 0 ? Number(process.argv[index + 1]) : fallback;
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

function listFlag(name: string, fallback: string[]): string[] {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? '').split(',').filter(Boolean) : fallback;
}

interface Instance {
  name: string;
  url: string;
  child: ChildProcess;
  output(): string;
}

async function startInstance(name: string, env: NodeJS.ProcessEnv): Promise<Instance> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, NODE_ENV: 'test', IDP_ISSUER: ISSUER, IDP_WORKERS: '1', IDP_LOG_LEVEL: 'info', IDP_METRICS_PORT: 'off', HOST: '127.0.0.1', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${output}`);
    try {
      if ((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) })).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${name} was not ready within 120 s:\n${output}`);
    await pause(50);
  }
  return { name, url, child, output: () => output };
}

async function stopInstance(instance: Instance): Promise<void> {
  if (instance.child.exitCode !== null || instance.child.signalCode !== null) return;
  const exited = new Promise((resolve) => instance.child.once('exit', resolve));
  instance.child.kill('SIGTERM');
  const timer = setTimeout(() => instance.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function errorLines(instance: Instance): string[] {
  return instance
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{') && (JSON.parse(line) as { level: number }).level >= 50);
}

function rssMiB(pid: number | undefined): number {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
  } catch {
    return NaN;
  }
}

/** Token, JWKS and verification load over the live instances; a sample of tokens is verified again later in their life. */
class Traffic {
  readonly verifier = new StrictVerifier(ISSUER);
  tokens = 0;
  nonOk: string[] = [];
  transportErrors: string[] = [];
  jwksNonOk = 0;
  readonly kids = new Set<string>();
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly later: Array<{ jwt: string; at: number; exp: number }> = [];

  constructor(
    private readonly instances: () => Instance[],
    private readonly clients: string[],
  ) {}

  start(concurrency: number, pauseMs: number): void {
    this.running = true;
    this.loops = Array.from({ length: concurrency }, (_, loop) => this.loop(loop, pauseMs));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(loop: number, pauseMs: number): Promise<void> {
    let n = 0;
    while (this.running) {
      n += 1;
      const live = this.instances().filter((i) => i.child.exitCode === null && i.child.signalCode === null);
      if (live.length === 0) {
        await pause(50);
        continue;
      }
      const instance = live[(n + loop) % live.length] as Instance;
      try {
        if (loop === 0 && n % 4 === 0) {
          const jwks = await fetch(`${instance.url}/.well-known/jwks.json`, { signal: AbortSignal.timeout(5_000) });
          if (jwks.status !== 200) this.jwksNonOk += 1;
          await jwks.arrayBuffer();
        } else {
          const response = await fetch(`${instance.url}/oauth/token`, {
            method: 'POST',
            headers: { authorization: this.clients[crypto.randomInt(this.clients.length)] as string, 'content-type': 'application/x-www-form-urlencoded' },
            body: 'grant_type=client_credentials',
            signal: AbortSignal.timeout(10_000),
          });
          const body = (await response.json()) as { access_token?: string; expires_in?: number; error?: string };
          this.tokens += 1;
          if (response.status !== 200 || !body.access_token) {
            this.nonOk.push(`${instance.name}: ${response.status} ${body.error ?? ''}`);
          } else {
            this.kids.add(headerKid(body.access_token));
            const verifyWith = live[crypto.randomInt(live.length)] as Instance;
            await this.verifier.verify(body.access_token, verifyWith.url);
            if (crypto.randomInt(20) === 0) this.later.push({ jwt: body.access_token, at: Date.now() + crypto.randomInt(5_000, 50_000), exp: Date.now() + (body.expires_in ?? 0) * 1000 });
          }
        }
        // Tokens verified again later in their life: their key must still be published.
        const due = this.later.findIndex((t) => t.at <= Date.now());
        if (due >= 0) {
          const [token] = this.later.splice(due, 1);
          if (token && token.exp > Date.now() + 2_000) await this.verifier.verify(token.jwt, (live[crypto.randomInt(live.length)] as Instance).url);
        }
      } catch (error) {
        this.transportErrors.push(`${instance.name}: ${(error as Error).message}`);
      }
      if (pauseMs > 0) await pause(pauseMs);
    }
  }
}

interface Stage {
  postgres: PrivatePostgres;
  databaseUrl: string;
  handle: DatabaseHandle;
  mek: string;
  clients: string[];
  instances: Instance[];
  env: NodeJS.ProcessEnv;
  lifecycle: KeyLifecycle;
  close(): Promise<void>;
}

let stageCount = 0;

/** A fresh database on the private server, seeded clients, three instances. */
async function stage(postgres: PrivatePostgres, settings: NodeJS.ProcessEnv, instanceEnv: (i: number) => NodeJS.ProcessEnv = () => ({})): Promise<Stage> {
  stageCount += 1;
  const databaseUrl = await postgres.createDatabase(`chaos_${stageCount}`);
  await seed(databaseUrl, { clients: 20, users: 0, audit: 0 }, { ...SEED_DEFAULTS, log: () => undefined });
  const mek = `chaos:${crypto.randomBytes(32).toString('base64')}`;
  const handle = await openDatabase({ databaseUrl, dataDir: 'unused', logger: silent, poolSize: 2 });
  const lifecycle = new KeyLifecycle({ db: handle.db, mek: new KeyRingMekProvider(parseKeyRing(mek, 'chaos')), policy: loadConfig({ NODE_ENV: 'test', IDP_MEK: mek, ...settings }), logger: silent });
  await lifecycle.check('startup');
  const clients = Array.from({ length: 20 }, (_, i) => {
    const id = seedClientId(i + 1);
    return `Basic ${Buffer.from(`${id}:${seedClientSecret(id)}`).toString('base64')}`;
  });
  const env = { DATABASE_URL: databaseUrl, IDP_MEK: mek, ...settings };
  const instances = await Promise.all([0, 1, 2].map((i) => startInstance(`instance-${i + 1}`, { ...env, ...instanceEnv(i) })));
  return {
    postgres,
    databaseUrl,
    handle,
    mek,
    clients,
    instances,
    env,
    lifecycle,
    async close() {
      await Promise.all(instances.map(stopInstance));
      await handle.close();
    },
  };
}

const FAST = {
  IDP_KEY_ROTATION_INTERVAL: '10s',
  IDP_KEY_PREPUBLISH: '4s',
  IDP_JWKS_MAX_AGE: '2',
  IDP_ACCESS_TOKEN_TTL: '30s',
  IDP_ADMIN_TOKEN_TTL: '30s',
  IDP_CLIENT_TOKEN_TTL: '30s',
  IDP_KEY_RETENTION: '35s',
  IDP_ROTATION_CRON: '* * * * * *',
};

type Result = { scenario: string; ok: boolean; lines: string[] };

function report(traffic: Traffic): string[] {
  return [
    `tokens ${traffic.tokens}, verified ${traffic.verifier.verified}, verification failures ${traffic.verifier.failures.length}, non-200 ${traffic.nonOk.length}, transport errors ${traffic.transportErrors.length}, JWKS non-200 ${traffic.jwksNonOk}, signing keys seen ${traffic.kids.size}`,
    ...traffic.verifier.failures.slice(0, 5).map((f) => `  verification failure: ${f}`),
    ...traffic.nonOk.slice(0, 5).map((f) => `  non-200: ${f}`),
    ...traffic.transportErrors.slice(0, 5).map((f) => `  transport error: ${f}`),
  ];
}

async function restartScenario(postgres: PrivatePostgres, rounds: number): Promise<Result> {
  const s = await stage(postgres, { IDP_REQUEST_TIMEOUT: '3s' });
  const lines: string[] = [];
  const traffic = new Traffic(() => s.instances, s.clients);
  try {
    // Every client into every instance's memory first: only those keep working while Postgres is away.
    for (const instance of s.instances) for (const client of s.clients) await fetch(`${instance.url}/oauth/token`, { method: 'POST', headers: { authorization: client, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
    const pids = s.instances.map((i) => i.child.pid);
    traffic.start(4, 5);
    for (let round = 1; round <= rounds; round++) {
      await pause(10_000);
      let notReady = 0;
      const polling = (async () => {
        const until = Date.now() + 60_000;
        while (Date.now() < until) {
          const statuses = await Promise.all(s.instances.map(async (i) => (await fetch(`${i.url}/readyz`, { signal: AbortSignal.timeout(3_000) }).catch(() => undefined))?.status));
          if (statuses.some((st) => st === 503)) notReady += 1;
          else if (notReady > 0) return;
          await pause(20);
        }
      })();
      const started = Date.now();
      await postgres.restart();
      const restartedIn = Date.now() - started;
      await polling;
      lines.push(`round ${round}: pg_ctl restart -m fast took ${restartedIn} ms; /readyz answered 503 in ${notReady} polls, then 200 on every instance ${Date.now() - started} ms after the restart began`);
    }
    await pause(3_000);
    await traffic.stop();
    const samePids = s.instances.every((i, k) => i.child.pid === pids[k] && i.child.exitCode === null);
    lines.push(...report(traffic), `same processes throughout: ${samePids}`);
    return { scenario: 'restart', ok: samePids && traffic.verifier.failures.length === 0 && traffic.nonOk.length === 0 && traffic.transportErrors.length === 0 && traffic.jwksNonOk === 0, lines };
  } finally {
    await traffic.stop();
    await s.close();
  }
}

async function listenerScenario(postgres: PrivatePostgres, rounds: number): Promise<Result> {
  // Rotations here are the scenario's own (not forced: `next` has been published for IDP_KEY_PREPUBLISH, so verifiers know it).
  const s = await stage(postgres, { IDP_KEY_REFRESH_INTERVAL: '10s', IDP_ROTATION_CRON: '0 0 1 1 *', IDP_JWKS_MAX_AGE: '2', IDP_KEY_PREPUBLISH: '4s', IDP_KEY_ROTATION_INTERVAL: '1h' });
  const lines: string[] = [];
  const traffic = new Traffic(() => s.instances, s.clients.slice(1));
  const admin = new pg.Client({ connectionString: postgres.url() });
  await admin.connect();
  const name = new URL(s.databaseUrl).pathname.slice(1);
  const victimId = seedClientId(1);
  const victim = s.clients[0] as string;
  const catchUps: number[] = [];
  let ok = true;
  try {
    traffic.start(3, 5);
    for (let round = 1; round <= rounds; round++) {
      await pause(5_000);
      await s.handle.db.selectFrom('oauth_clients').select('id').limit(1).execute();
      await admin.query(`alter database ${name} allow_connections false`);
      let created: string;
      let promoted: string;
      const disable = round % 2 === 1;
      try {
        const cut = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = $2', [name, LISTENER_APPLICATION_NAME]);
        const changes = await s.lifecycle.rotate('chaos', { force: false, reason: 'chaos: rotation while nobody listens' });
        promoted = changes.find((c) => c.action === 'promoted')?.kid as string;
        created = changes.find((c) => c.action === 'created-next')?.kid as string;
        await s.handle.db.updateTable('oauth_clients').set({ disabled_at: disable ? new Date() : null, updated_at: new Date() }).where('id', '=', victimId).execute();
        lines.push(`round ${round}: ${cut.rowCount} LISTEN connections cut; rotation to ${promoted.slice(0, 8)}…, client ${victimId} ${disable ? 'disabled' : 'enabled again'}`);
        await pause(1_000);
      } finally {
        await admin.query(`alter database ${name} allow_connections true`);
      }
      const started = Date.now();
      const caughtUp = await Promise.all(
        s.instances.map(async (instance) => {
          for (;;) {
            const jwks = (await (await fetch(`${instance.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
            const signs = await fetch(`${instance.url}/oauth/token`, { method: 'POST', headers: { authorization: s.clients[1] as string, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
            const kid = headerKid(((await signs.json()) as { access_token: string }).access_token);
            const victimAnswer = await fetch(`${instance.url}/oauth/token`, { method: 'POST', headers: { authorization: victim, 'content-type': 'application/x-www-form-urlencoded' }, body: 'grant_type=client_credentials' });
            // A disabled client is refused: 401, or 429 once its failures (these polls) pass the per-client limit.
            const victimDone = disable ? victimAnswer.status === 401 || victimAnswer.status === 429 : victimAnswer.status === 200;
            if (jwks.keys.some((k) => k.kid === created) && kid === promoted && victimDone) return Date.now() - started;
            if (Date.now() - started > 30_000) {
              console.log(`  ${instance.name} not caught up: next ${created} published ${jwks.keys.some((k) => k.kid === created)}, signs with ${kid} (promoted ${promoted}), victim answered ${victimAnswer.status}`);
              return Infinity;
            }
            await pause(100);
          }
        }),
      );
      catchUps.push(...caughtUp);
      lines.push(`  caught up ${caughtUp.map((ms) => `${ms} ms`).join(', ')} after connections were allowed again (bound: IDP_KEY_REFRESH_INTERVAL 10 s)`);
      if (caughtUp.some((ms) => ms > 10_000)) ok = false;
    }
    await traffic.stop();
    for (const instance of s.instances) {
      const logged = instance.output().split('\n').filter((l) => l.includes('client cache caught up')).length;
      lines.push(`${instance.name}: "client cache caught up" logged ${logged} times`);
      if (logged < rounds) ok = false;
    }
    lines.push(`catch-up median ${median(catchUps)} ms, max ${Math.max(...catchUps)} ms`, ...report(traffic));
    return { scenario: 'listener', ok: ok && traffic.verifier.failures.length === 0, lines };
  } finally {
    await admin.query(`alter database ${name} allow_connections true`).catch(() => undefined);
    await admin.end();
    await traffic.stop();
    await s.close();
  }
}

async function killScenario(postgres: PrivatePostgres, rounds: number): Promise<Result> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-chaos-kill-'));
  // Every instance carries the hook; each round arms it once, and the first instance to generate a key hangs.
  const arm = path.join(dir, 'armed');
  const once = path.join(dir, 'hanging');
  const hooks = { NODE_OPTIONS: `--require ${path.join(FIXTURES, 'hang-in-rotation.js')}`, IDP_TEST_HANG_ARM_FILE: arm, IDP_TEST_HANG_ONCE_FILE: once };
  const s = await stage(postgres, { ...FAST, ...hooks });
  const lines: string[] = [];
  const traffic = new Traffic(() => s.instances, s.clients);
  let ok = true;
  try {
    traffic.start(4, 5);
    for (let round = 1; round <= rounds; round++) {
      await pause(2_000);
      fs.rmSync(once, { force: true });
      const before = await s.handle.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<string>().as('n')).where('action', '=', 'key.promoted').executeTakeFirstOrThrow();
      fs.writeFileSync(arm, '');
      const deadline = Date.now() + 60_000;
      while (!(fs.existsSync(once) && fs.readFileSync(once, 'utf8') !== '') && Date.now() < deadline) await pause(20);
      if (!fs.existsSync(once)) throw new Error(`round ${round}: no instance entered a rotation within 60 s`);
      fs.rmSync(arm);
      const pid = Number(fs.readFileSync(once, 'utf8'));
      const index = s.instances.findIndex((i) => i.child.pid === pid);
      const keys = await s.handle.db.selectFrom('signing_keys').select(['kid', 'state']).where('state', 'in', ['current', 'next']).execute();
      const next = keys.find((k) => k.state === 'next')?.kid;
      const killed = s.instances[index] as Instance;
      killed.child.kill('SIGKILL');
      const started = Date.now();
      let promotedBy = '';
      while (Date.now() - started < 30_000) {
        const current = await s.handle.db.selectFrom('signing_keys').select('kid').where('state', '=', 'current').executeTakeFirst();
        if (current?.kid === next) break;
        await pause(50);
      }
      const promotions = await s.handle.db.selectFrom('audit_events').select(['target', 'actor']).where('action', '=', 'key.promoted').where('target', '=', next as string).execute();
      promotedBy = promotions.map((p) => p.actor).join(', ');
      const after = await s.handle.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<string>().as('n')).where('action', '=', 'key.promoted').executeTakeFirstOrThrow();
      const exactlyOne = promotions.length === 1 && Number(after.n) - Number(before.n) === 1;
      if (!exactlyOne) ok = false;
      lines.push(`round ${round}: ${killed.name} killed inside the promotion of ${next?.slice(0, 8)}…; promoted ${promotions.length} time(s) (actor ${promotedBy}) ${Date.now() - started} ms later; transitions this round: ${Number(after.n) - Number(before.n)}`);
      // The killed instance comes back (armed for the next round), as an orchestrator would restart it.
      s.instances[index] = await startInstance(killed.name, s.env);
    }
    await pause(3_000);
    await traffic.stop();
    lines.push(...report(traffic));
    return { scenario: 'kill', ok: ok && traffic.verifier.failures.length === 0, lines };
  } finally {
    await traffic.stop();
    await s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function skewScenario(postgres: PrivatePostgres, rounds: number): Promise<Result> {
  const offsets = [3_600_000, -3_600_000, 0];
  const settings = { ...FAST, IDP_KEY_RETENTION: '35s' };
  const s = await stage(postgres, settings, (i) => ({ NODE_OPTIONS: `--require ${path.join(FIXTURES, 'clock-offset.js')}`, IDP_TEST_CLOCK_OFFSET_MS: String(offsets[i]) }));
  const lines: string[] = [`instances' clocks: ${offsets.map((o) => `${o / 3_600_000} h`).join(', ')}; rotation every 10 s, retention 35 s`];
  try {
    const deadline = Date.now() + rounds * 10_000 + 60_000;
    for (;;) {
      const retired = await s.handle.db.selectFrom('signing_keys').select('kid').where('state', '=', 'retired').execute();
      if (retired.length >= Math.max(1, rounds - 4) || Date.now() > deadline) break;
      await pause(1_000);
    }
    const keys = await s.handle.db.selectFrom('signing_keys').selectAll().orderBy('created_at').execute();
    const activations = keys.map((k) => k.activated_at).filter((d): d is Date => d !== null).sort((a, b) => a.getTime() - b.getTime());
    const gaps = activations.slice(1).map((d, i) => d.getTime() - (activations[i] as Date).getTime());
    const retirements = keys.filter((k) => k.state === 'retired').map((k) => (k.retired_at as Date).getTime() - (k.deactivated_at as Date).getTime());
    const promotionsEarly = gaps.filter((g) => g < 10_000).length;
    const retirementsEarly = retirements.filter((r) => r < 35_000).length;
    const retirementsLate = retirements.filter((r) => r > 35_000 + 5_000).length;
    const now = new Date((await s.handle.db.selectNoFrom((eb) => eb.fn<Date>('clock_timestamp').as('now')).executeTakeFirstOrThrow()).now);
    const future = keys.filter((k) => k.created_at.getTime() > now.getTime()).length;
    lines.push(
      `promotions ${gaps.length}: intervals ${gaps.map((g) => (g / 1000).toFixed(1)).join(', ')} s (early: ${promotionsEarly})`,
      `retirements ${retirements.length}: after ${retirements.map((r) => (r / 1000).toFixed(1)).join(', ')} s (early: ${retirementsEarly}, more than 5 s late: ${retirementsLate})`,
      `keys stamped in the database's future: ${future}`,
    );
    return { scenario: 'skew', ok: gaps.length >= rounds - 1 && promotionsEarly === 0 && retirementsEarly === 0 && retirementsLate === 0 && future === 0, lines };
  } finally {
    await s.close();
  }
}

async function soakScenario(postgres: PrivatePostgres, minutes: number): Promise<Result> {
  // A rotation every 30 s with settings the service accepts: prepublish ≥ 2 × max-age, interval ≥ prepublish, retention ≥ longest token TTL.
  const settings = {
    IDP_KEY_ROTATION_INTERVAL: '30s',
    IDP_KEY_PREPUBLISH: '10s',
    IDP_JWKS_MAX_AGE: '5',
    IDP_ACCESS_TOKEN_TTL: '60s',
    IDP_ADMIN_TOKEN_TTL: '60s',
    IDP_CLIENT_TOKEN_TTL: '60s',
    IDP_KEY_RETENTION: '70s',
    IDP_ROTATION_CRON: '*/5 * * * * *',
  };
  const s = await stage(postgres, settings);
  const lines: string[] = [`settings: ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(' ')}`];
  const traffic = new Traffic(() => s.instances, s.clients);
  const rss: number[][] = [];
  try {
    traffic.start(4, 5);
    const started = Date.now();
    let lastTokens = 0;
    for (let minute = 1; minute <= minutes; minute++) {
      const samples: number[][] = [];
      for (let second = 0; second < 60; second += 10) {
        await pause(Math.max(0, started + (minute - 1) * 60_000 + (second + 10) * 1000 - Date.now()));
        samples.push(s.instances.map((i) => rssMiB(i.child.pid)));
      }
      const average = s.instances.map((_, k) => samples.reduce((sum, sample) => sum + (sample[k] as number), 0) / samples.length);
      rss.push(average);
      const promotions = await s.handle.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<string>().as('n')).where('action', '=', 'key.promoted').executeTakeFirstOrThrow();
      console.log(
        `  minute ${minute}: ${((traffic.tokens - lastTokens) / 60).toFixed(0)} tokens/s, verified ${traffic.verifier.verified}, failures ${traffic.verifier.failures.length}, promotions ${promotions.n}, VmRSS ${average.map((m) => m.toFixed(0)).join(' / ')} MiB`,
      );
      lastTokens = traffic.tokens;
    }
    await traffic.stop();
    const errors = s.instances.flatMap(errorLines);
    const promotions = await s.handle.db.selectFrom('audit_events').select((eb) => eb.fn.countAll<string>().as('n')).where('action', '=', 'key.promoted').executeTakeFirstOrThrow();
    const retired = await s.handle.db.selectFrom('signing_keys').select((eb) => eb.fn.countAll<string>().as('n')).where('state', '=', 'retired').executeTakeFirstOrThrow();
    lines.push(
      `${minutes} minutes: promotions ${promotions.n}, keys retired ${retired.n}`,
      ...report(traffic),
      `VmRSS first minute ${(rss[0] ?? []).map((m) => m.toFixed(0)).join(' / ')} MiB, last minute ${(rss.at(-1) ?? []).map((m) => m.toFixed(0)).join(' / ')} MiB`,
      `error-level log lines: ${errors.length}`,
      ...errors.slice(0, 5),
    );
    return { scenario: 'soak', ok: traffic.verifier.failures.length === 0 && traffic.nonOk.length === 0 && traffic.transportErrors.length === 0 && errors.length === 0, lines };
  } finally {
    await traffic.stop();
    await s.close();
  }
}

async function main(): Promise<void> {
  const scenarios = listFlag('scenarios', ['restart', 'listener', 'kill', 'skew', 'soak']);
  const rounds = numberFlag('rounds', 3);
  const minutes = numberFlag('minutes', 10);
  console.log(`chaos: ${scenarios.join(', ')}; ${rounds} rounds; soak ${minutes} min; ${os.availableParallelism()} CPUs, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const postgres = await startPrivatePostgres();
  const results: Result[] = [];
  const stop = async () => {
    await postgres.remove();
    process.exit(130);
  };
  process.once('SIGINT', () => void stop());
  try {
    for (const scenario of scenarios) {
      console.log(`\n${scenario}`);
      const run = { restart: restartScenario, listener: listenerScenario, kill: killScenario, skew: skewScenario, soak: (p: PrivatePostgres) => soakScenario(p, minutes) }[scenario];
      if (!run) throw new Error(`unknown scenario ${scenario}`);
      const result = await run(postgres, rounds);
      results.push(result);
      for (const line of result.lines) console.log(`  ${line}`);
      console.log(`  → ${result.ok ? 'ok' : 'FAILED'}`);
    }
  } finally {
    await postgres.remove();
  }
  console.log(`\n${results.map((r) => `${r.scenario}: ${r.ok ? 'ok' : 'FAILED'}`).join(', ')}`);
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

main().catch((error: Error) => {
  console.error(`chaos: ${error.stack ?? error.message}`);
  process.exit(1);
});
