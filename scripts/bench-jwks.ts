import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { argument, freePort, load, scratchDatabase, startChild, stopChild, summarise, type RunFigures } from './lib/bench';

/**
 * `npm run bench:jwks [-- --duration 10 --connections 50 --runs 3]`
 *
 * autocannon against our /.well-known/jwks.json and against a bare node:http server serving the
 * same bytes, in the same run, one process each, alternating runs; prints medians and the ratio.
 * With DATABASE_URL: a throw-away database on that server (created and dropped here); else a
 * throw-away embedded database. Loopback only.
 */
async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 50);
  const runs = argument('runs', 3);
  const root = path.resolve(__dirname, '../..');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-bench-jwks-'));
  const database = process.env.DATABASE_URL ? await scratchDatabase(process.env.DATABASE_URL, 'idp_bench_jwks') : undefined;

  const idpPort = await freePort();
  const idp = await startChild(
    process.execPath,
    [path.join(root, 'dist/src/main.js')],
    {
      PATH: process.env.PATH,
      PORT: String(idpPort),
      HOST: '127.0.0.1',
      IDP_WORKERS: '1',
      IDP_LOG_LEVEL: 'warn',
      IDP_MEK: `bench:${crypto.randomBytes(32).toString('base64')}`,
      IDP_DATA_DIR: path.join(scratch, 'data'),
      ...(database ? { DATABASE_URL: database.url } : {}),
    },
    `http://127.0.0.1:${idpPort}/readyz`,
  );
  const jwksUrl = `http://127.0.0.1:${idpPort}/.well-known/jwks.json`;
  const sample = await fetch(jwksUrl);
  const body = await sample.text();

  const barePort = await freePort();
  const bare = await startChild(
    process.execPath,
    [path.join(root, 'dist/scripts/bare-jwks-server.js')],
    { PATH: process.env.PATH, PORT: String(barePort), BENCH_JWKS_BODY: body, BENCH_JWKS_ETAG: sample.headers.get('etag') ?? '' },
    `http://127.0.0.1:${barePort}/`,
  );

  console.log(`JWKS of ${body.length} bytes; ${connections} connections, ${duration}s a run, ${runs} runs each, alternating; ${os.cpus().length} CPUs`);
  const ours: RunFigures[] = [];
  const baseline: RunFigures[] = [];
  try {
    // Warm both up, then alternate so that drift on the machine hits both alike.
    await load({ url: jwksUrl, connections, duration: 2 });
    await load({ url: `http://127.0.0.1:${barePort}/`, connections, duration: 2 });
    for (let i = 0; i < runs; i++) {
      ours.push(await load({ url: jwksUrl, connections, duration }));
      baseline.push(await load({ url: `http://127.0.0.1:${barePort}/`, connections, duration }));
    }
  } finally {
    await stopChild(idp);
    await stopChild(bare);
    fs.rmSync(scratch, { recursive: true, force: true });
    await database?.drop();
  }
  const a = summarise('idp /.well-known/jwks.json', ours);
  const b = summarise('bare node:http, same bytes', baseline);
  console.log(`ratio idp / bare: ${(a.requestsPerSecond / b.requestsPerSecond).toFixed(2)} (target ≥ 0.60)`);
}

main().catch((error: Error) => {
  console.error(`bench-jwks: ${error.message}`);
  process.exit(1);
});
