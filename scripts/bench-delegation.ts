import crypto from 'node:crypto';
import os from 'node:os';
import { argument, load, startIdp, summarise, type RunFigures, cookieOf, hiddenField } from './lib/bench';

/**
 * `npm run bench:delegation [-- --duration 10 --connections 50 --runs 3]`
 *
 * Delegated token exchanges (docs/delegation.md "Delegation" on the compiled server — IDP_WORKERS processes
 * (default: the CPU count) on Postgres — next to client_credentials in the same run, alternating:
 *
 * - client_credentials: one RS256 signature, no database work;
 * - a user's access token (from the authorization-code flow, signed in once through the hosted page)
 *   exchanged by its client for a token for a tool server: the subject verified (RS256), its session,
 *   user and tenant read, its jti checked, a signature, and a `token.exchange` audit row written;
 * - a delegated token (act: the agent) exchanged again with a sub-agent's actor_token: two tokens
 *   verified, the chain's jtis checked in one query, the session and every actor checked, a
 *   signature and the audit row.
 *
 * The subject tokens stay valid for the whole run (IDP_ACCESS_TOKEN_TTL 1h). Postgres: DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/test) names the server; a scratch database is created
 * on it and dropped at the end. Loopback only.
 */

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 50);
  const runs = argument('runs', 3);
  const workers = argument('workers', Number(process.env.IDP_WORKERS ?? os.availableParallelism()));
  const idp = await startIdp({ databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test', workers, name: 'bench-delegation' });
  try {
    const cli = idp.cli;
    const calendar = 'https://calendar.bench';
    const tools = 'https://tools.bench';
    const redirectUri = 'http://127.0.0.1/callback';
    cli('resources', 'create', calendar, '--name', 'Calendar', '--scope', 'calendar:read calendar:write');
    const agent = cli(
      'clients', 'create', '--name', 'bench agent', '--scope', 'calendar:read calendar:write', '--audience', calendar, '--audience', tools,
      '--redirect-uri', redirectUri, '--first-party', '--grant-type', 'authorization_code', '--grant-type', TOKEN_EXCHANGE,
    ) as { client_id: string; client_secret: string };
    const subAgent = cli('clients', 'create', '--name', 'bench sub-agent', '--scope', 'calendar:read', '--audience', tools) as { client_id: string; client_secret: string };
    const service = cli('clients', 'create', '--name', 'bench service', '--scope', 'calendar:read', '--audience', tools) as { client_id: string; client_secret: string };
    const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    const form = 'application/x-www-form-urlencoded';
    const post = async (body: string, authorization: string) => {
      const res = await fetch(`${idp.url}/oauth/token`, { method: 'POST', headers: { 'Content-Type': form, Authorization: authorization }, body });
      const json = (await res.json()) as { access_token?: string; error_description?: string };
      if (!json.access_token) throw new Error(`token request failed: ${res.status} ${json.error_description ?? ''}`);
      return json.access_token;
    };

    // The user signs in once through the hosted page; the agent redeems the code.
    const email = `bench-${crypto.randomBytes(4).toString('hex')}@example.com`;
    const password = crypto.randomBytes(18).toString('base64url');
    const signup = await fetch(`${idp.url}/auth/v1/signup`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email, password }) });
    if (signup.status !== 201) throw new Error(`sign-up failed with ${signup.status}`);
    const verifier = crypto.randomBytes(32).toString('base64url');
    const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
    const authorizeUrl = `${idp.url}/oauth/authorize?${new URLSearchParams({ client_id: agent.client_id, response_type: 'code', scope: 'calendar:read calendar:write', resource: calendar, code_challenge: challenge, code_challenge_method: 'S256' })}`;
    const page = await fetch(authorizeUrl, { redirect: 'manual' });
    const html = await page.text();
    const cookie = cookieOf(page);
    const signedIn = await fetch(`${idp.url}/oauth/authorize`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'Content-Type': form, Cookie: cookie },
      body: new URLSearchParams({ interaction: hiddenField(html, 'interaction'), csrf_token: hiddenField(html, 'csrf_token'), email, password }).toString(),
    });
    const again = await fetch(authorizeUrl, { redirect: 'manual', headers: { Cookie: `${cookie}; ${cookieOf(signedIn)}` } });
    const code = new URL(again.headers.get('location') ?? 'x:').searchParams.get('code');
    if (!code) throw new Error(`no code (sign-in answered ${signedIn.status})`);
    const agentAuth = basic(agent.client_id, agent.client_secret);
    const userToken = await post(`grant_type=authorization_code&code=${code}&code_verifier=${verifier}&redirect_uri=${encodeURIComponent(redirectUri)}`, agentAuth);
    const exchangeBody = (subject: string, extra = '') =>
      `grant_type=${encodeURIComponent(TOKEN_EXCHANGE)}&subject_token=${subject}&subject_token_type=${encodeURIComponent(ACCESS_TOKEN_TYPE)}&resource=${encodeURIComponent(tools)}${extra}`;
    const delegated = await post(exchangeBody(userToken, '&scope=calendar%3Aread'), agentAuth);
    const actorToken = await post('grant_type=client_credentials', basic(subAgent.client_id, subAgent.client_secret));
    const actorExtra = `&actor_token=${actorToken}&actor_token_type=${encodeURIComponent(ACCESS_TOKEN_TYPE)}`;
    await post(exchangeBody(delegated, actorExtra), agentAuth);

    const tokenUrl = `${idp.url}/oauth/token`;
    const run = (authorization: string, body: string, seconds: number) =>
      load({ url: tokenUrl, connections, duration: seconds, method: 'POST', headers: { authorization, 'content-type': form }, body });
    const variants = [
      { label: 'client_credentials', run: (s: number) => run(basic(service.client_id, service.client_secret), 'grant_type=client_credentials', s) },
      { label: 'exchange: user token (1 actor)', run: (s: number) => run(agentAuth, exchangeBody(userToken), s) },
      { label: 'exchange: delegated + actor_token', run: (s: number) => run(agentAuth, exchangeBody(delegated, actorExtra), s) },
    ];
    console.log(
      `POST /oauth/token; ${connections} connections, ${duration}s a run, ${runs} runs each, alternating; ${workers} process(es); ${os.availableParallelism()} CPUs; Postgres; ` +
        `load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
    );
    for (const variant of variants) await variant.run(2);
    const figures: RunFigures[][] = variants.map(() => []);
    for (let i = 0; i < runs; i++) for (const [index, variant] of variants.entries()) figures[index]?.push(await variant.run(duration));
    const [cc, first, second] = variants.map((variant, index) => summarise(variant.label, figures[index] ?? [])) as [RunFigures, RunFigures, RunFigures];
    console.log(`ratio exchange / client_credentials: ${(first.requestsPerSecond / cc.requestsPerSecond).toFixed(2)}, delegated + actor / client_credentials: ${(second.requestsPerSecond / cc.requestsPerSecond).toFixed(2)} (non-2xx must be 0)`);
    console.log(`load average after: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    if ([cc, first, second].some((f) => f.non2xx + f.errors > 0)) process.exitCode = 1;
  } finally {
    await idp.stop();
  }
}

main().catch((error: Error) => {
  console.error(`bench-delegation: ${error.message}`);
  process.exit(1);
});
