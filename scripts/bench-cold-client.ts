import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { argument, median, startIdp, cookieOf, hiddenField } from './lib/bench';

/**
 * `npm run bench:cold-client [-- --requests 400 --connections 8 --runs 3 --slow-ms 500 --hung 32]`
 *
 * What a Client ID Metadata Document client costs at GET /oauth/authorize (docs/oauth.md "Client ID
 * Metadata Documents") on the compiled server (IDP_WORKERS processes, default the CPU count) on
 * Postgres, a browser session already signed in, each figure next to a registered client's in the
 * same run, alternating:
 *
 * 1. First authorization: the answer is the consent page (200) for both, since a client never seen
 *    has no consent to remember. Registered: a client created with `idp clients create`. Cold
 *    document: a document URL never seen before on every request (served on loopback by this
 *    process): fetched, checked, its client row made and audited in one transaction.
 * 2. Consent remembered: the redirect with a code (302). Registered, and a document client already
 *    seen (its document fresh by its Cache-Control).
 * 3. A slow document server (answers after --slow-ms), and one that never answers (--hung requests):
 *    the fetch is bounded by its 2 s deadline, then the error page (400).
 *
 * Latency is measured per request by this process (fetch, --connections at a time); requests per
 * second are the requests over the run's time. Postgres: DATABASE_URL (default
 * postgres://postgres@127.0.0.1:5432/test) names the server; a scratch database is created on it and
 * dropped at the end. Loopback only.
 */

interface Figures {
  requestsPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  /** Responses whose status was not the one expected. */
  unexpected: number;
}

/** `count` GETs of `url(i)` at `connections` at a time, each expected to answer `status`. */
async function run(count: number, connections: number, status: number, url: (i: number) => string, cookie: string): Promise<Figures> {
  const latencies: number[] = [];
  let unexpected = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < count) {
        const i = next++;
        const t0 = performance.now();
        const res = await fetch(url(i), { redirect: 'manual', headers: { Cookie: cookie } });
        await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        if (res.status !== status) unexpected++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  return { requestsPerSecond: count / elapsed, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] as number, unexpected };
}

function summarise(label: string, runs: Figures[]): Figures {
  const f: Figures = {
    requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    max: Math.max(...runs.map((r) => r.max)),
    unexpected: runs.reduce((sum, r) => sum + r.unexpected, 0),
  };
  const ms = (v: number) => v.toFixed(1).padStart(7);
  console.log(
    `${label.padEnd(52)} ${f.requestsPerSecond.toFixed(0).padStart(6)} req/s  p50 ${ms(f.p50)} ms  p99 ${ms(f.p99)} ms  max ${ms(f.max)} ms  unexpected ${f.unexpected}  (runs: ${runs.map((r) => r.requestsPerSecond.toFixed(0)).join(', ')})`,
  );
  return f;
}

/** The clients' web server: /doc/<n>.json answers at once, /slow/<n>.json after slowMs, /hung/<n>.json never. */
async function documentHost(slowMs: number): Promise<{ url: string; hits: number; close(): Promise<void> }> {
  const host = { url: '', hits: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    host.hits++;
    const kind = req.url?.split('/')[1];
    if (kind === 'hung') return;
    const answer = () =>
      res
        .writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=3600' })
        .end(JSON.stringify({ client_id: `${host.url}${req.url}`, client_name: 'Bench Agent', redirect_uris: ['http://127.0.0.1/callback'], token_endpoint_auth_method: 'none' }));
    if (kind === 'slow') setTimeout(answer, slowMs);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  host.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  host.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return host;
}

async function main(): Promise<void> {
  const requests = argument('requests', 400);
  const connections = argument('connections', 8);
  const runs = argument('runs', 3);
  const slowMs = argument('slow-ms', 500);
  const hung = argument('hung', 32);
  const workers = argument('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const idp = await startIdp({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    workers,
    name: 'bench-cold',
    // Refused documents are logged as warnings: the hung runs would flood the terminal.
    env: { IDP_CLIENT_ID_METADATA_DOCUMENTS: 'on', IDP_LOG_LEVEL: 'error' },
  });
  const host = await documentHost(slowMs);
  try {
    const redirectUri = 'http://127.0.0.1/callback';
    const cli = idp.cli;
    const registered = (cli('clients', 'create', '--name', 'bench registered', '--scope', 'read', '--redirect-uri', redirectUri, '--public') as { client_id: string }).client_id;
    const remembered = (cli('clients', 'create', '--name', 'bench remembered', '--scope', 'read', '--redirect-uri', redirectUri, '--public') as { client_id: string }).client_id;
    const warmDocument = `${host.url}/doc/warm.json`;

    const email = `bench-${crypto.randomBytes(4).toString('hex')}@example.com`;
    const password = crypto.randomBytes(18).toString('base64url');
    const signup = await fetch(`${idp.url}/auth/v1/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }) });
    if (signup.status !== 201) throw new Error(`sign-up failed with ${signup.status}`);

    const challenge = crypto.createHash('sha256').update(crypto.randomBytes(32).toString('base64url')).digest('base64url');
    const authorize = (clientId: string) =>
      `${idp.url}/oauth/authorize?${new URLSearchParams({ client_id: clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })}`;
    const post = (cookie: string, fields: Record<string, string>) =>
      fetch(`${idp.url}/oauth/authorize`, { method: 'POST', redirect: 'manual', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie }, body: new URLSearchParams(fields).toString() });

    // A browser session: signed in once on the hosted page (a third-party client: answered with the consent page).
    const signInPage = await fetch(authorize(remembered), { redirect: 'manual' });
    const signInHtml = await signInPage.text();
    const binding = cookieOf(signInPage);
    const signedIn = await post(binding, { interaction: hiddenField(signInHtml, 'interaction'), csrf_token: hiddenField(signInHtml, 'csrf_token'), email, password });
    if (signedIn.status !== 200 && signedIn.status !== 303) throw new Error(`sign-in through the page failed with ${signedIn.status}`);
    const session = `${binding}; ${cookieOf(signedIn)}`;
    // Consent, given once, to the clients of the "remembered" figures.
    for (const clientId of [remembered, warmDocument]) {
      const page = await fetch(authorize(clientId), { redirect: 'manual', headers: { Cookie: session } });
      const html = await page.text();
      if (page.status !== 200) throw new Error(`no consent page for ${clientId}: ${page.status}`);
      const allowed = await post(`${session}; ${cookieOf(page)}`, { interaction: hiddenField(html, 'interaction'), csrf_token: hiddenField(html, 'csrf_token'), decision: 'allow' });
      if (allowed.status !== 303 || !new URL(allowed.headers.get('location') ?? 'x:').searchParams.has('code')) throw new Error(`consent for ${clientId} failed with ${allowed.status}`);
    }

    const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
    console.log(`cold metadata-document clients at GET /oauth/authorize; ${workers} process(es); ${os.availableParallelism()} CPUs; Postgres; ${connections} connections; load average ${load()}`);
    let round = 0;
    const cold = (prefix: string) => {
      const tag = `${prefix}-${++round}`;
      return (i: number) => authorize(`${host.url}/${prefix}/${tag}-${i}.json`);
    };

    console.log(`1. first authorization, a signed-in session, answered with the consent page (200); ${requests} requests a run, ${runs} runs each, alternating`);
    await run(Math.min(requests, 100), connections, 200, () => authorize(registered), session);
    await run(Math.min(requests, 100), connections, 200, cold('doc'), session);
    const a: Figures[] = [];
    const b: Figures[] = [];
    for (let i = 0; i < runs; i++) {
      a.push(await run(requests, connections, 200, () => authorize(registered), session));
      b.push(await run(requests, connections, 200, cold('doc'), session));
    }
    const fa = summarise('registered client', a);
    const fb = summarise('cold metadata document (fetch + row + audit)', b);
    console.log(`   ratio cold document / registered: req/s ${(fb.requestsPerSecond / fa.requestsPerSecond).toFixed(2)}, p50 ${(fb.p50 / fa.p50).toFixed(2)}`);

    console.log(`2. consent remembered, answered with the redirect and a code (302); ${requests} requests a run, ${runs} runs each, alternating`);
    const c: Figures[] = [];
    const d: Figures[] = [];
    for (let i = 0; i < runs; i++) {
      c.push(await run(requests, connections, 302, () => authorize(remembered), session));
      d.push(await run(requests, connections, 302, () => authorize(warmDocument), session));
    }
    const fc = summarise('registered client', c);
    const fd = summarise('metadata document, fresh', d);
    console.log(`   ratio document / registered: req/s ${(fd.requestsPerSecond / fc.requestsPerSecond).toFixed(2)}, p50 ${(fd.p50 / fc.p50).toFixed(2)}`);

    console.log(`3. a slow document server: cold documents answered after ${slowMs} ms, and never (the 2 s deadline, then the error page, 400)`);
    const slow = summarise(`cold document, server answers after ${slowMs} ms`, [await run(Math.min(requests, 100), connections, 200, cold('slow'), session)]);
    const hanging = summarise(`cold document, server never answers (${hung} requests)`, [await run(hung, connections, 400, cold('hung'), session)]);
    console.log(`load average after: ${load()}; document fetches served: ${host.hits}`);
    if ([...a, ...b, ...c, ...d, slow, hanging].some((f) => f.unexpected > 0)) process.exitCode = 1;
  } finally {
    await host.close();
    await idp.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench-cold-client: ${error.message}`);
  process.exit(1);
});
