import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { argument, load, startIdp, summarise, type RunFigures } from './lib/bench';

/**
 * `npm run bench:flood [-- --duration 10 --connections 10 --flood 16 --runs 3]`
 *
 * The token endpoint while passwords are being guessed (issue 7): client-credentials p50 and p99
 * alone, then again while `--flood` connections post sign-ups and wrong-password sign-ins as fast
 * as they can. The flood is the worst case for hashing: every request carries a new email and
 * comes from an allow-listed address (IDP_RATE_LIMIT_ALLOWLIST=127.0.0.1), so no limit stops it
 * and every one of them costs an argon2id hash. Password hashing runs under
 * IDP_PASSWORD_HASH_CONCURRENCY (default 1 per process); the target is a token p99 under flood of
 * at most 3× the p99 alone.
 *
 * Postgres: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; a
 * scratch database is created on it and dropped at the end. Loopback addresses only.
 */
async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 10);
  const floodConnections = argument('flood', 16);
  const runs = argument('runs', 3);
  const workers = argument('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const root = path.resolve(__dirname, '../..');
  const idp = await startIdp({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    workers,
    name: 'bench-flood',
    env: { IDP_RATE_LIMIT_ALLOWLIST: '127.0.0.1' },
  });
  try {
    const created = JSON.parse(
      execFileSync(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'clients', 'create', '--name', 'bench', '--scope', 'read', '--audience', 'https://api.bench', '--json'], {
        env: idp.env,
      }).toString(),
    ) as { client_id: string; client_secret: string };
    const authorization = `Basic ${Buffer.from(`${created.client_id}:${created.client_secret}`).toString('base64')}`;
    const tokens: autocannon.Options = {
      url: `${idp.url}/oauth/token`,
      connections,
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    };
    const email = () => `flood-${crypto.randomBytes(6).toString('hex')}@example.com`;
    const flood = (seconds: number) =>
      autocannon({
        url: idp.url,
        connections: floodConnections,
        duration: seconds,
        requests: [
          {
            method: 'POST',
            path: '/auth/v1/signup',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, body: JSON.stringify({ email: email(), password: 'flood password 1' }) }),
          },
          {
            method: 'POST',
            path: '/auth/v1/token',
            headers: { 'content-type': 'application/json' },
            setupRequest: (req) => ({ ...req, body: JSON.stringify({ email: email(), password: 'wrong password' }) }),
          },
        ],
      });

    console.log(
      `POST /oauth/token (client_secret_basic, ${connections} connections) alone and under a flood of ${floodConnections} connections of sign-ups and wrong-password sign-ins; ${duration}s a run, ${runs} runs; ${workers} worker(s); ${os.availableParallelism()} CPUs; Postgres`,
    );
    await load({ ...tokens, duration: 2 });
    const alone: RunFigures[] = [];
    const underFlood: RunFigures[] = [];
    const floodCodes: Record<string, number> = {};
    let floodRate = 0;
    for (let i = 0; i < runs; i++) {
      alone.push(await load({ ...tokens, duration }));
      const [figures, attack] = await Promise.all([load({ ...tokens, duration }), flood(duration)]);
      underFlood.push(figures);
      floodRate += attack.requests.average / runs;
      for (const [code, stats] of Object.entries(attack.statusCodeStats ?? {})) floodCodes[code] = (floodCodes[code] ?? 0) + (stats as { count: number }).count;
    }
    const a = summarise('token endpoint alone', alone);
    const b = summarise('token endpoint under flood', underFlood);
    console.log(`flood: ${floodRate.toFixed(0)} req/s; status codes ${JSON.stringify(floodCodes)}`);
    console.log(`p99 under flood / alone: ${(b.p99 / Math.max(1, a.p99)).toFixed(2)} (target ≤ 3); token throughput under flood / alone: ${(b.requestsPerSecond / a.requestsPerSecond).toFixed(2)}`);
  } finally {
    await idp.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench-flood: ${error.message}`);
  process.exit(1);
});
