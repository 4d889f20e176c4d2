import crypto from 'node:crypto';
import os from 'node:os';
import { argument, load, startIdp, summarise, type RunFigures } from './lib/bench';

/**
 * `npm run bench:signin [-- --duration 10 --connections 16 --runs 3]`
 *
 * Sign-ins per second on this machine: autocannon POSTs a correct email and password to
 * /auth/v1/token against the compiled server (loopback only). Each sign-in is one argon2id
 * verification (m=19 MiB, t=2, p=1), three small writes (session, refresh token hash, last sign-in)
 * and one RS256 signature, so the figure is mostly the password hash's CPU cost.
 * With DATABASE_URL: a throw-away database on that server (created and dropped here; the
 * server's default worker count). Without: a throw-away PGlite.
 */
async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 16);
  const runs = argument('runs', 3);
  const workers = process.env.IDP_WORKERS ? Number(process.env.IDP_WORKERS) : undefined;
  const server = await startIdp({ databaseUrl: process.env.DATABASE_URL, workers, name: 'bench-signin' });
  const url = server.url;

  const email = `bench-${crypto.randomBytes(4).toString('hex')}@example.com`;
  const password = crypto.randomBytes(18).toString('base64url');
  const body = JSON.stringify({ email, password });
  const figures: RunFigures[] = [];
  try {
    const signup = await fetch(`${url}/auth/v1/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    if (signup.status !== 201) throw new Error(`sign-up failed with ${signup.status}: ${await signup.text()}`);
    const request = { url: `${url}/auth/v1/token?grant_type=password`, method: 'POST' as const, headers: { 'Content-Type': 'application/json' }, body };
    console.log(
      `sign-in (argon2id m=19MiB t=2 p=1 + session + RS256); ${connections} connections, ${duration}s a run, ${runs} runs; ${os.cpus().length} CPUs; database: ${process.env.DATABASE_URL ? 'postgres' : 'pglite'}`,
    );
    await load({ ...request, connections, duration: 2 });
    for (let i = 0; i < runs; i++) figures.push(await load({ ...request, connections, duration }));
  } finally {
    await server.stop();
  }
  const result = summarise('POST /auth/v1/token (password)', figures);
  console.log(`sign-ins per second: ${result.requestsPerSecond.toFixed(0)}`);
  if (result.non2xx > 0 || result.errors > 0) process.exitCode = 1;
}

main().catch((error: Error) => {
  console.error(`bench-signin: ${error.message}`);
  process.exit(1);
});
