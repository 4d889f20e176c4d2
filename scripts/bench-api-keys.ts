import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { argument, load, startIdp, summarise, type RunFigures } from './lib/bench';

/**
 * `npm run bench:api-keys [-- --duration 10 --connections 50 --runs 3 --workers N]`
 *
 * autocannon against the real server (IDP_WORKERS processes, default the CPU count) on Postgres, in
 * one run and alternating, two pairs:
 * 1. POST /oauth/introspect of an API key next to that of a JWT client access token (the same
 *    resource server asking, client_secret_basic);
 * 2. POST /oauth/token with the RFC 8693 token exchange of that key next to client_credentials.
 * It also reads Postgres's scan counters of the api_keys table around the key-introspection runs:
 * a hot key is served from memory, so they must stay near zero whatever the number of requests
 * (only the last_used_at write, at most once a minute per key and worker, touches the table).
 *
 * DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) names the server; a scratch
 * database is created on it and dropped at the end. Loopback addresses only.
 */
async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 50);
  const runs = argument('runs', 3);
  const workers = argument('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const root = path.resolve(__dirname, '../..');
  const idp = await startIdp({ databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', workers, name: 'bench-api-keys' });
  const idpPort = Number(new URL(idp.url).port);
  const stats = new pg.Client({ connectionString: idp.env.DATABASE_URL });
  try {
    const run = (...args: string[]) => JSON.parse(execFileSync(process.execPath, [path.join(root, 'dist/src/cli/main.js'), ...args, '--json'], { env: idp.env }).toString());
    const resourceServer = run('clients', 'create', '--name', 'resource server', '--scope', 'introspect', '--audience', 'https://api.bench') as { client_id: string; client_secret: string };
    const service = run('clients', 'create', '--name', 'service', '--scope', 'read write', '--audience', 'https://api.bench') as { client_id: string; client_secret: string };
    const apiKey = (run('api-keys', 'create', '--client', service.client_id, '--name', 'bench', '--scope', 'read') as { key: string }).key;
    const basic = (client: { client_id: string; client_secret: string }) => `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}`;
    const tokenResponse = await fetch(`${idp.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization: basic(service), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&scope=read',
    });
    const jwt = ((await tokenResponse.json()) as { access_token: string }).access_token;

    const form = (body: Record<string, string>) => new URLSearchParams(body).toString();
    const post = (pathname: string, body: string, authorization?: string) => ({
      url: `http://127.0.0.1:${idpPort}${pathname}`,
      connections,
      method: 'POST' as const,
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
      body,
    });
    const introspectKey = post('/oauth/introspect', form({ token: apiKey }), basic(resourceServer));
    const introspectJwt = post('/oauth/introspect', form({ token: jwt }), basic(resourceServer));
    const exchange = post(
      '/oauth/token',
      form({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: apiKey, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' }),
    );
    const clientCredentials = post('/oauth/token', form({ grant_type: 'client_credentials' }), basic(service));

    // Each answer is checked once before it is measured: a benchmark of refusals would be worthless.
    for (const [name, options] of [['key introspection', introspectKey], ['JWT introspection', introspectJwt], ['exchange', exchange], ['client credentials', clientCredentials]] as const) {
      const res = await fetch(options.url, { method: 'POST', headers: options.headers, body: options.body });
      const body = (await res.json()) as { active?: boolean; access_token?: string };
      if (res.status !== 200 || (body.active !== true && body.access_token === undefined)) throw new Error(`${name}: ${res.status} ${JSON.stringify(body)}`);
    }

    console.log(
      `${connections} connections, ${duration}s a run, ${runs} runs each, alternating; ${workers} worker process(es); ${os.availableParallelism()} CPUs shared with autocannon; Postgres`,
    );
    await stats.connect();
    // Postgres publishes a backend's table counters when it goes idle (at most every 10 s): wait them out.
    const scans = async () => {
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      const row = (await stats.query<{ scans: string }>(`select coalesce(seq_scan, 0) + coalesce(idx_scan, 0) as scans from pg_stat_user_tables where relname = 'api_keys'`)).rows[0];
      return Number(row?.scans ?? 0);
    };

    await load({ ...introspectKey, duration: 2 });
    await load({ ...introspectJwt, duration: 2 });
    const scansBefore = await scans();
    const keyRuns: RunFigures[] = [];
    const jwtRuns: RunFigures[] = [];
    let keyRequests = 0;
    for (let i = 0; i < runs; i++) {
      const figures = await load({ ...introspectKey, duration });
      keyRuns.push(figures);
      keyRequests += figures.requestsPerSecond * duration;
      jwtRuns.push(await load({ ...introspectJwt, duration }));
    }
    const scansAfter = await scans();
    console.log('\nPOST /oauth/introspect');
    const key = summarise('API key', keyRuns);
    const token = summarise('JWT client access token', jwtRuns);
    console.log(`ratio API key / JWT: ${(key.requestsPerSecond / token.requestsPerSecond).toFixed(2)}`);
    console.log(`api_keys table scans during ~${Math.round(keyRequests)} key introspections: ${scansAfter - scansBefore} (last_used_at writes only: a hot key is served from memory)`);

    await load({ ...exchange, duration: 2 });
    await load({ ...clientCredentials, duration: 2 });
    const exchangeRuns: RunFigures[] = [];
    const credentialRuns: RunFigures[] = [];
    for (let i = 0; i < runs; i++) {
      exchangeRuns.push(await load({ ...exchange, duration }));
      credentialRuns.push(await load({ ...clientCredentials, duration }));
    }
    console.log('\nPOST /oauth/token');
    const exchanged = summarise('token exchange (API key)', exchangeRuns);
    const credentials = summarise('client_credentials', credentialRuns);
    console.log(`ratio exchange / client_credentials: ${(exchanged.requestsPerSecond / credentials.requestsPerSecond).toFixed(2)} (non-2xx must be 0)`);
  } finally {
    await stats.end().catch(() => undefined);
    await idp.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench-api-keys: ${error.message}`);
  process.exit(1);
});
