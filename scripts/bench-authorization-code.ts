import crypto from 'node:crypto';
import os from 'node:os';
import autocannon from 'autocannon';
import { argument, startIdp, summarise, type RunFigures, cookieOf, hiddenField } from './lib/bench';

/**
 * `npm run bench:authorization-code [-- --requests 5000 --signins 600 --connections 16 --runs 3]`
 *
 * Two figures of the authorization-code flow (docs/sign-in.md "Sign-in for applications" on the compiled
 * server — IDP_WORKERS processes (default: the CPU count) on Postgres — each next to its
 * counterpart in the same run, alternating:
 *
 * 1. Redemption: POST /oauth/token grant_type=authorization_code (client_secret_basic, PKCE S256,
 *    scope openid: an access token and an ID token, two RS256 signatures, one transaction that
 *    spends the code and opens the session) next to client_credentials (one signature, no write).
 *    Before each run a pool of fresh codes, one per request, is fetched from /oauth/authorize with a
 *    signed-in browser session (IDP_AUTH_CODE_TTL is 10m here so a pool outlives its run).
 * 2. The hosted sign-in page's form post (POST /oauth/authorize with email, password, the
 *    interaction and its CSRF token and binding cookie; answered with the consent page) next to
 *    POST /auth/v1/token, at 16 connections: p99 is the figure. Both are one argon2id verification;
 *    each form post needs its own interaction, fetched before the run.
 *
 * Runs send a fixed number of requests; requests per second are the responses over the time from
 * the first to the last. Postgres: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
 * names the server; a scratch database is created on it and dropped at the end. Loopback only.
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

/** `count` results of `task`, at most `concurrency` at a time. */
async function pool<T>(count: number, concurrency: number, task: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  let started = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < count) {
        started++;
        results.push(await task());
      }
    }),
  );
  return results;
}

async function main(): Promise<void> {
  const amount = argument('requests', 5_000);
  const signins = argument('signins', 600);
  const connections = argument('connections', 16);
  const runs = argument('runs', 3);
  const workers = argument('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const idp = await startIdp({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    workers,
    name: 'bench-code',
    env: { IDP_AUTH_CODE_TTL: '10m' },
  });
  try {
    const cli = idp.cli;
    const redirectUri = 'http://127.0.0.1/callback';
    const app = cli('clients', 'create', '--name', 'bench app', '--scope', 'read', '--redirect-uri', redirectUri, '--first-party') as { client_id: string; client_secret: string };
    const thirdParty = cli('clients', 'create', '--name', 'bench third party', '--scope', 'read', '--redirect-uri', redirectUri) as { client_id: string };
    const service = cli('clients', 'create', '--name', 'bench service', '--scope', 'read', '--audience', 'https://api.bench') as { client_id: string; client_secret: string };
    const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

    // One user per connection: the sign-in limits reserve a slot per (email, address) for each attempt
    // in flight (docs/security.md "Abuse limits and the threat model", so one user from 16 connections would be refused.
    const password = crypto.randomBytes(18).toString('base64url');
    const users: string[] = [];
    for (let i = 0; i < connections; i++) {
      const email = `bench-${i}-${crypto.randomBytes(4).toString('hex')}@example.com`;
      const signup = await fetch(`${idp.url}/auth/v1/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }) });
      if (signup.status !== 201) throw new Error(`sign-up failed with ${signup.status}`);
      users.push(email);
    }
    const email = users[0] as string;

    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const authorizeUrl = (clientId: string) =>
      `${idp.url}/oauth/authorize?${new URLSearchParams({ client_id: clientId, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })}`;
    /** A sign-in page: its form's hidden members and the binding cookie. */
    const signInPage = async (clientId: string) => {
      const res = await fetch(authorizeUrl(clientId), { redirect: 'manual' });
      const html = await res.text();
      return { cookie: cookieOf(res), interaction: hiddenField(html, 'interaction'), csrf: hiddenField(html, 'csrf_token') };
    };
    const formBody = (page: { interaction: string; csrf: string }, user = email) => new URLSearchParams({ interaction: page.interaction, csrf_token: page.csrf, email: user, password }).toString();

    // A browser session, signed in once through the page.
    const page = await signInPage(app.client_id);
    const signedIn = await fetch(`${idp.url}/oauth/authorize`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: page.cookie },
      body: formBody(page),
    });
    if (signedIn.status !== 303) throw new Error(`sign-in through the page failed with ${signedIn.status}`);
    const session = `${page.cookie}; ${cookieOf(signedIn)}`;
    const freshCode = async () => {
      const res = await fetch(authorizeUrl(app.client_id), { redirect: 'manual', headers: { Cookie: session } });
      const code = new URL(res.headers.get('location') ?? 'x:').searchParams.get('code');
      if (!code) throw new Error(`no code: ${res.status}`);
      await res.arrayBuffer();
      return `grant_type=authorization_code&code=${code}&code_verifier=${verifier}&redirect_uri=${encodeURIComponent(redirectUri)}`;
    };

    const tokenUrl = `${idp.url}/oauth/token`;
    const form = 'application/x-www-form-urlencoded';
    const clientCredentialsRun = (requests: number) =>
      load({ url: tokenUrl, connections: 50, amount: requests, method: 'POST', headers: { authorization: basic(service.client_id, service.client_secret), 'content-type': form }, body: 'grant_type=client_credentials' });
    const redemptionRun = async (requests: number) => {
      const bodies = await pool(requests, 16, freshCode);
      let next = 0;
      return load({
        url: tokenUrl,
        connections: 50,
        amount: requests,
        method: 'POST',
        headers: { authorization: basic(app.client_id, app.client_secret), 'content-type': form },
        requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) }],
      });
    };
    const passwordRun = (requests: number) => {
      let next = 0;
      return load({
        url: `${idp.url}/auth/v1/token?grant_type=password`,
        connections,
        amount: requests,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        requests: [{ setupRequest: (req) => ({ ...req, body: JSON.stringify({ email: users[next++ % users.length], password }) }) }],
      });
    };
    const pageRun = async (requests: number) => {
      const pages = await pool(requests, 16, () => signInPage(thirdParty.client_id));
      let next = 0;
      return load({
        url: `${idp.url}/oauth/authorize`,
        connections,
        amount: requests,
        method: 'POST',
        headers: { 'content-type': form },
        requests: [
          {
            setupRequest: (req) => {
              const i = next++;
              const one = pages[i % pages.length] as (typeof pages)[number];
              return { ...req, headers: { ...req.headers, cookie: one.cookie }, body: formBody(one, users[i % users.length]) };
            },
          },
        ],
      });
    };

    console.log(
      `authorization code flow; ${workers} process(es); ${os.availableParallelism()} CPUs; Postgres; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n` +
        `1. POST /oauth/token, ${amount} requests a run at 50 connections, ${runs} runs each, alternating`,
    );
    await clientCredentialsRun(Math.min(amount, 2_000));
    await redemptionRun(Math.min(amount, 2_000));
    const cc: RunFigures[] = [];
    const code: RunFigures[] = [];
    for (let i = 0; i < runs; i++) {
      cc.push(await clientCredentialsRun(amount));
      code.push(await redemptionRun(amount));
    }
    const a = summarise('client_credentials', cc);
    const b = summarise('authorization_code (+ ID token)', code);
    console.log(`ratio authorization_code / client_credentials: ${(b.requestsPerSecond / a.requestsPerSecond).toFixed(2)} (non-2xx must be 0)`);

    console.log(`2. sign-in, ${signins} requests a run at ${connections} connections, ${runs} runs each, alternating`);
    await passwordRun(Math.min(signins, 100));
    await pageRun(Math.min(signins, 100));
    const api: RunFigures[] = [];
    const pages: RunFigures[] = [];
    for (let i = 0; i < runs; i++) {
      api.push(await passwordRun(signins));
      pages.push(await pageRun(signins));
    }
    const c = summarise('POST /auth/v1/token (password)', api);
    const d = summarise('POST /oauth/authorize (sign-in page)', pages);
    console.log(`p99 sign-in page / /auth/v1/token: ${d.p99} ms / ${c.p99} ms (non-2xx must be 0)`);
    console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    if (a.non2xx + b.non2xx + c.non2xx + d.non2xx > 0 || a.errors + b.errors + c.errors + d.errors > 0) process.exitCode = 1;
  } finally {
    await idp.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench-authorization-code: ${error.message}`);
  process.exit(1);
});
