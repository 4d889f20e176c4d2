import os from 'node:os';
import path from 'node:path';
import { argument, freePort, load, startChild, startIdp, stopChild, summarise, type RunFigures } from './lib/bench';

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
  // One server process against one bare process: the JWKS path does no I/O, so this compares the dispatch alone.
  const idp = await startIdp({ databaseUrl: process.env.DATABASE_URL, workers: 1, name: 'bench-jwks' });
  const jwksUrl = `${idp.url}/.well-known/jwks.json`;
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
    await idp.stop();
    await stopChild(bare);
  }
  const a = summarise('idp /.well-known/jwks.json', ours);
  const b = summarise('bare node:http, same bytes', baseline);
  console.log(`ratio idp / bare: ${(a.requestsPerSecond / b.requestsPerSecond).toFixed(2)} (target ≥ 0.60)`);
}

main().catch((error: Error) => {
  console.error(`bench-jwks: ${error.message}`);
  process.exit(1);
});
