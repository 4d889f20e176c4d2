import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import pg from 'pg';
import { argument, measured, startIdp, summarise, summariseCpu, type CpuPerRequest, type RunFigures } from './lib/bench';
import { formRequest, rawLoad } from './lib/raw-load';

/**
 * One autocannon run of a fixed number of requests. Requests per second are the responses over the
 * time from the first to the last response: autocannon's own average is of whole-second samples,
 * and it notices the end of a run of a fixed size only at its next one-second tick, so both its
 * average and its duration would round a 6.4 s run to whole seconds.
 */
async function load(options: autocannon.Options): Promise<RunFigures> {
  let first = 0;
  let last = 0;
  let responses = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(options, (error, done) => (error ? reject(error) : resolve(done)));
    instance.on('response', () => {
      last = performance.now();
      if (responses++ === 0) first = last;
    });
  });
  return {
    requestsPerSecond: (responses - 1) / ((last - first) / 1000),
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

/**
 * `npm run bench:private-key-jwt [-- --requests 30000 --connections 50 --runs 3 --autocannon]`
 *
 * POST /oauth/token (client_credentials) of the real server — IDP_WORKERS processes (default: the
 * CPU count) on Postgres — authenticated with private_key_jwt (an RS256 assertion, verified from the
 * client's parsed key in memory, its jti written to Postgres) next to client_secret_basic, in one
 * run, alternating. Each run sends a fixed number of requests; before each private_key_jwt run a
 * pool of that many assertions, each with its own jti, is signed (on the thread pool), so that the
 * load generator, which shares the machine, only picks the next body and RSA signing is not
 * measured. Prints the medians and the ratio; non-2xx must be 0 (a reused jti would be a 401). Also
 * the CPU each request cost (medians), by party: this process (the load generator), the server's
 * processes, and the Postgres backends of its database (Postgres's shared background processes,
 * the WAL writer among them, are not counted: other databases use them too).
 *
 * Postgres: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; a
 * scratch database is created on it and dropped at the end. Loopback addresses only.
 */
async function main(): Promise<void> {
  const amount = argument('requests', 30_000);
  const connections = argument('connections', 50);
  const runs = argument('runs', 3);
  const workers = argument('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const useAutocannon = process.argv.includes('--autocannon');
  const root = path.resolve(__dirname, '../..');
  const idp = await startIdp({ databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', workers, name: 'bench-pkjwt' });
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pkjwt-'));
  try {
    const idpCli = (...args: string[]) => JSON.parse(execFileSync(process.execPath, [path.join(root, 'dist/src/cli/main.js'), ...args, '--json'], { env: idp.env }).toString());
    const secretClient = idpCli('clients', 'create', '--name', 'bench-secret', '--scope', 'read write', '--audience', 'https://api.bench') as { client_id: string; client_secret: string };
    const authorization = `Basic ${Buffer.from(`${secretClient.client_id}:${secretClient.client_secret}`).toString('base64')}`;

    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const kid = 'bench-rs256';
    const jwksFile = path.join(scratch, 'jwks.json');
    fs.writeFileSync(jwksFile, JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' }] }));
    const keyClient = idpCli('clients', 'create', '--name', 'bench-key', '--scope', 'read write', '--audience', 'https://api.bench', '--auth-method', 'private_key_jwt', '--jwks-file', jwksFile) as {
      client_id: string;
    };

    const url = `${idp.url}/oauth/token`;
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid, typ: 'JWT' })).toString('base64url');
    /** `count` form bodies, each with a fresh assertion (unique jti, exp 5 minutes ahead), signed 64 at a time on libuv's pool. */
    const presign = async (count: number): Promise<string[]> => {
      const bodies: string[] = [];
      const now = Math.floor(Date.now() / 1000);
      for (let start = 0; start < count; start += 64) {
        const batch = Array.from({ length: Math.min(64, count - start) }, async () => {
          const claims = { iss: keyClient.client_id, sub: keyClient.client_id, aud: idp.url, iat: now, exp: now + 290, jti: crypto.randomUUID() };
          const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
          const signature = await new Promise<Buffer>((resolve, reject) => crypto.sign('sha256', Buffer.from(input), privateKey, (e, s) => (e ? reject(e) : resolve(s))));
          const assertion = `${input}.${signature.toString('base64url')}`;
          return `grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=${assertion}`;
        });
        bodies.push(...(await Promise.all(batch)));
      }
      return bodies;
    };

    const secretBody = 'grant_type=client_credentials';
    // The load generator shares the 2 cores with the server: by default the lean one (scripts/lib/raw-load.ts), whose request
    // costs the same whatever it holds; `--autocannon` measures with autocannon, which rebuilds every changed request.
    const secretRun = (requests: number) =>
      useAutocannon
        ? load({ url, connections, amount: requests, method: 'POST', headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' }, body: secretBody })
        : rawLoad({ url, connections, requests: Array<Buffer>(requests).fill(formRequest(url, secretBody, { authorization })) });
    /** Runs the requests of `bodies`, prepared for the load generator (by `prepare`) before the measurement. */
    const prepare = (bodies: string[]) => (useAutocannon ? bodies : bodies.map((body) => formRequest(url, body)));
    const jwtRun = (bodies: string[] | Buffer[]) => {
      if (!useAutocannon) return rawLoad({ url, connections, requests: bodies as Buffer[] });
      let next = 0;
      return load({
        url,
        connections,
        amount: bodies.length,
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        requests: [
          {
            setupRequest: (req) => {
              req.body = bodies[next++ % bodies.length] as string;
              return req;
            },
          },
        ],
      });
    };

    console.log(
      `POST /oauth/token client_credentials: private_key_jwt (RS256, 2048-bit) next to client_secret_basic; ${connections} connections, ${amount} requests a run, ${runs} runs each, alternating; ${workers} process(es); ${os.availableParallelism()} CPUs; load generator ${useAutocannon ? 'autocannon' : 'lean (scripts/lib/raw-load.ts)'}; Postgres; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    if (idp.pid === undefined) throw new Error('the server did not start');
    const serverPid = idp.pid;
    const database = new pg.Client({ connectionString: idp.env.DATABASE_URL });
    await database.connect();
    try {
      await secretRun(Math.min(amount, 5_000));
      await jwtRun(prepare(await presign(Math.min(amount, 5_000))));
      const secret: Array<RunFigures & { cpu: CpuPerRequest }> = [];
      const jwt: Array<RunFigures & { cpu: CpuPerRequest }> = [];
      for (let i = 0; i < runs; i++) {
        secret.push(await measured(() => secretRun(amount), () => amount, serverPid, database));
        // Signed before the measurement starts: RSA signing is the client's cost, not the server's.
        const bodies = prepare(await presign(amount));
        jwt.push(await measured(() => jwtRun(bodies), () => amount, serverPid, database));
      }
      const a = summarise('client_secret_basic', secret);
      const b = summarise('private_key_jwt (RS256)', jwt);
      console.log(`ratio private_key_jwt / client_secret_basic: ${(b.requestsPerSecond / a.requestsPerSecond).toFixed(2)} (non-2xx must be 0)`);
      const cpuA = summariseCpu('client_secret_basic', secret);
      const cpuB = summariseCpu('private_key_jwt (RS256)', jwt);
      console.log(`ratio by CPU per request, client_secret_basic / private_key_jwt: ${(cpuA / cpuB).toFixed(2)}`);

      const { rows } = await database.query<{ count: string }>('select count(*) from client_assertion_jtis');
      console.log(`client_assertion_jtis rows (one per accepted assertion, until exp): ${rows[0]?.count}`);
    } finally {
      await database.end();
    }
    console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
    await idp.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench-private-key-jwt: ${error.message}`);
  process.exit(1);
});
