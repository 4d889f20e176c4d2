import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { argument, freePort, load, median, startChild, startIdp, stopChild, summarise, type RunFigures } from './lib/bench';

/**
 * `npm run bench:token [-- --duration 10 --connections 50 --runs 3]`
 *
 * autocannon against POST /oauth/token (client_credentials, client_secret_basic) of the real
 * server — IDP_WORKERS processes (default: the CPU count) on Postgres — and, in the same run,
 * against bare-token-server with the same number of processes doing only the essential work.
 * Runs alternate; prints the medians (req/s, p50, p99), the throughput and p99 ratios (of the
 * medians, and the median of each idp run against the bare run next to it), the non-2xx count and
 * the load average.
 *
 * Postgres: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; a
 * scratch database is created on it and dropped at the end. Loopback addresses only.
 */
async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 50);
  const runs = argument('runs', 3);
  const workers = argument('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const root = path.resolve(__dirname, '../..');
  const idp = await startIdp({ databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', workers, name: 'bench-token' });
  const env = idp.env;
  const idpPort = Number(new URL(idp.url).port);
  const children = [];
  try {
    const created = JSON.parse(
      execFileSync(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'clients', 'create', '--name', 'bench', '--scope', 'read write', '--audience', 'https://api.bench', '--json'], { env }).toString(),
    ) as { client_id: string; client_secret: string };
    const authorization = `Basic ${Buffer.from(`${created.client_id}:${created.client_secret}`).toString('base64')}`;

    const barePort = await freePort();
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const bare = await startChild(
      process.execPath,
      [path.join(root, 'dist/scripts/bare-token-server.js')],
      {
        PATH: process.env.PATH,
        PORT: String(barePort),
        BENCH_WORKERS: String(workers),
        BENCH_CLIENT_ID: created.client_id,
        BENCH_CLIENT_SECRET: created.client_secret,
        BENCH_PRIVATE_KEY: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      },
      `http://127.0.0.1:${barePort}/`,
    );
    children.push(bare);

    const request = (port: number) => ({
      url: `http://127.0.0.1:${port}/oauth/token`,
      connections,
      method: 'POST' as const,
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    const loadAtStart = os.loadavg().map((l) => l.toFixed(2)).join(' ');
    console.log(`POST /oauth/token, client_secret_basic; ${connections} connections, ${duration}s a run, ${runs} runs each, alternating; ${workers} process(es) each; ${os.availableParallelism()} CPUs; Postgres`);
    const ours: RunFigures[] = [];
    const baseline: RunFigures[] = [];
    await load({ ...request(idpPort), duration: 2 });
    await load({ ...request(barePort), duration: 2 });
    for (let i = 0; i < runs; i++) {
      ours.push(await load({ ...request(idpPort), duration }));
      baseline.push(await load({ ...request(barePort), duration }));
    }
    const a = summarise('idp POST /oauth/token', ours);
    const b = summarise('bare node:http, same work', baseline);
    // Each idp run against the bare run right after it: the pairs share the machine's load of the moment.
    const paired = (figure: (r: RunFigures) => number) => median(ours.map((r, i) => figure(r) / figure(baseline[i] as RunFigures))).toFixed(2);
    console.log(`throughput idp / bare: ${(a.requestsPerSecond / b.requestsPerSecond).toFixed(2)} of the medians, ${paired((r) => r.requestsPerSecond)} paired (target ≥ 0.95; non-2xx must be 0)`);
    console.log(`p99 idp / bare:        ${(a.p99 / b.p99).toFixed(2)} of the medians, ${paired((r) => r.p99)} paired (target ≤ 1.25); p50 ${(a.p50 / b.p50).toFixed(2)}`);
    console.log(`load average: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')} (at the start: ${loadAtStart})`);
  } finally {
    for (const child of children) await stopChild(child);
    await idp.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench-token: ${error.message}`);
  process.exit(1);
});
