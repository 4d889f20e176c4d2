import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { createVerifier, requireAuth } from '../src/verifier';
import { alternatingRuns, argument, freePort, startChild, startIdp, stopChild, summarise } from './lib/bench';

/**
 * `npm run bench:verifier [-- --duration 10 --connections 50 --runs 3]`
 *
 * Verified requests per second on a minimal Express route (`GET /r` answering `{sub}`), one
 * process each, the same client-credentials token on every request:
 *   - requireAuth (the verifier kit, defaults: the verified result of a token is reused ≤ 5 s);
 *   - requireAuth with that reuse off (`cache.verifiedTtl: 0`): a full RS256 verification a request;
 *   - Auth0's express-oauth2-jwt-bearer `auth({ issuerBaseURL, audience, strict: true })`, the same
 *     checks (RS256, typ at+jwt, iss, aud, exp) and a full verification a request;
 *   - Express with no authentication, the ceiling.
 * Runs alternate; medians of `runs`. Then a bare `jose.jwtVerify` loop over a local key set in this
 * process, `connections` verifications in flight, for `duration` seconds: the cost of verification alone.
 *
 * The identity provider is the compiled server over a throw-away database (a scratch database on
 * DATABASE_URL's server when set, else PGlite). `serve <variant>` is the child mode.
 */
const VARIANTS = ['requireAuth', 'requireAuth-nocache', 'auth0', 'none'] as const;
type Variant = (typeof VARIANTS)[number];
const AUDIENCE = 'https://api.bench';

async function serve(variant: Variant): Promise<void> {
  const issuer = process.env.ISSUER as string;
  const app = express();
  app.get('/ready', (_req, res) => {
    res.send('ok');
  });
  let guard: express.RequestHandler;
  if (variant === 'auth0') {
    // Loaded untyped: its declarations give Express's Request.auth another type than the verifier kit's.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { auth } = require('express-oauth2-jwt-bearer') as { auth(options: Record<string, unknown>): express.RequestHandler };
    guard = auth({ issuerBaseURL: issuer, audience: AUDIENCE, tokenSigningAlg: 'RS256', strict: true });
  } else if (variant === 'none') {
    guard = (_req, _res, next) => next();
  } else {
    const verifier = createVerifier({ issuer, audience: AUDIENCE, ...(variant === 'requireAuth-nocache' ? { cache: { verifiedTtl: 0 } } : {}) });
    await verifier.ready();
    guard = requireAuth({ verifier });
  }
  app.get('/r', guard, (req, res) => {
    const auth = req.auth as unknown as { subject?: string; payload?: { sub?: string } } | undefined;
    res.json({ sub: auth?.subject ?? auth?.payload?.sub ?? null });
  });
  app.listen(Number(process.env.PORT), '127.0.0.1');
}

async function joseLoop(issuer: string, token: string, seconds: number, inFlight: number): Promise<number> {
  const jwks = (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
  const keySet = createLocalJWKSet(jwks);
  const options = { algorithms: ['RS256'], issuer, audience: AUDIENCE, typ: 'at+jwt', clockTolerance: 5 };
  const until = Date.now() + seconds * 1000;
  let count = 0;
  const worker = async () => {
    while (Date.now() < until) {
      await jwtVerify(token, keySet, options);
      count++;
    }
  };
  const started = process.hrtime.bigint();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return count / (Number(process.hrtime.bigint() - started) / 1e9);
}

async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 50);
  const runs = argument('runs', 3);
  const root = path.resolve(__dirname, '../..');
  const idp = await startIdp({ databaseUrl: process.env.DATABASE_URL, workers: 1, name: 'bench-verifier' });
  const children = [];
  try {
    const created = JSON.parse(
      execFileSync(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'clients', 'create', '--name', 'bench', '--scope', 'read', '--audience', AUDIENCE, '--json'], { env: idp.env }).toString(),
    ) as { client_id: string; client_secret: string };
    const tokenResponse = await fetch(`${idp.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${created.client_id}:${created.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    const token = ((await tokenResponse.json()) as { access_token: string }).access_token;

    const ports = new Map<Variant, number>();
    for (const variant of VARIANTS) {
      const port = await freePort();
      ports.set(variant, port);
      children.push(
        await startChild(
          process.execPath,
          [path.join(root, 'dist/scripts/bench-verifier.js'), 'serve', variant],
          { PATH: process.env.PATH, PORT: String(port), ISSUER: idp.url },
          `http://127.0.0.1:${port}/ready`,
        ),
      );
    }
    const request = (variant: Variant) => ({ url: `http://127.0.0.1:${ports.get(variant)}/r`, connections, headers: { authorization: `Bearer ${token}` } });
    console.log(
      `GET /r on Express ${(JSON.parse(fs.readFileSync(require.resolve('express/package.json'), 'utf8')) as { version: string }).version}, Bearer client-credentials token (${token.length} bytes, RS256 2048); ${connections} connections, ${duration}s a run, ${runs} runs each, alternating; 1 process each; ${os.availableParallelism()} CPUs; ${process.env.DATABASE_URL ? 'Postgres' : 'PGlite'}`,
    );
    const figures = await alternatingRuns(VARIANTS, request, runs, duration);
    const labels: Record<Variant, string> = {
      requireAuth: 'requireAuth (defaults)',
      'requireAuth-nocache': 'requireAuth, verifiedTtl 0',
      auth0: 'express-oauth2-jwt-bearer (Auth0)',
      none: 'Express, no authentication',
    };
    const medians = new Map(VARIANTS.map((v) => [v, summarise(labels[v], figures.get(v) ?? [])]));
    const loop = await joseLoop(idp.url, token, duration, connections);
    console.log(`${'bare jose.jwtVerify loop, local set'.padEnd(34)} ${loop.toFixed(0).padStart(8)} verifications/s (${connections} in flight, one process, no HTTP)`);
    const rate = (v: Variant) => medians.get(v)?.requestsPerSecond ?? NaN;
    console.log(`ratio requireAuth / Auth0: ${(rate('requireAuth') / rate('auth0')).toFixed(2)} (target ≥ 1.00); without the verified-result reuse: ${(rate('requireAuth-nocache') / rate('auth0')).toFixed(2)}`);
  } finally {
    for (const child of children) await stopChild(child);
    await idp.stop();
  }
}

if (process.argv[2] === 'serve') {
  serve(process.argv[3] as Variant).catch((error: Error) => {
    console.error(`bench-verifier serve: ${error.message}`);
    process.exit(1);
  });
} else {
  main().catch((error: Error) => {
    console.error(`bench-verifier: ${error.message}`);
    process.exit(1);
  });
}
