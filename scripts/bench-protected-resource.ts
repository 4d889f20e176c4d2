import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { createVerifier, protectedResource, protectedResourceMetadataUrl, requireAuth } from '../src/verifier';
import { alternatingRuns, argument, freePort, startChild, startIdp, stopChild, summarise } from './lib/bench';

/**
 * `npm run bench:protected-resource [-- --duration 10 --connections 50 --runs 3]`
 *
 * An MCP-style protected resource (docs/verifier-kit.md "Protecting an MCP server": requests per second of
 * `GET /mcp` requiring the scope `read` and answering `{sub}`, one process per variant, the same
 * token (client credentials, `resource` = the MCP server's URL) on every request:
 *   - requireAuth behind protectedResource (the verifier kit, defaults: the verified result of a
 *     token is reused ≤ 5 s), and the same with that reuse off (`cache.verifiedTtl: 0`);
 *   - the MCP TypeScript SDK's `requireBearerAuth` with `requiredScopes`, `resourceMetadataUrl` and
 *     `expectedResource`, over an OAuthTokenVerifier written the usual way: jose `jwtVerify` with
 *     `createRemoteJWKSet` (RS256, typ at+jwt, iss, aud), a full verification a request;
 *   - Auth0's express-oauth2-jwt-bearer `auth({ strict: true })` + `requiredScopes('read')`;
 *   - Express with no authentication, the ceiling.
 * Runs alternate; medians of `runs`. The identity provider is the compiled server over a throw-away
 * database, all on loopback. `serve <variant>` is the child mode.
 */
const VARIANTS = ['requireAuth', 'requireAuth-nocache', 'mcp-sdk', 'auth0', 'none'] as const;
type Variant = (typeof VARIANTS)[number];
const RESOURCE = 'https://mcp.bench/mcp';
const SCOPE = 'read';

/** The SDK's token verifier contract (`OAuthTokenVerifier`) and `AuthInfo`, as far as this benchmark uses them. */
interface McpAuthInfo {
  token: string;
  clientId: string;
  scopes: string[];
  expiresAt?: number;
  resource?: URL;
}

async function serve(variant: Variant): Promise<void> {
  const issuer = process.env.ISSUER as string;
  const app = express();
  app.get('/ready', (_req, res) => {
    res.send('ok');
  });
  let guard: express.RequestHandler[];
  if (variant === 'auth0') {
    // Loaded untyped: its declarations give Express's Request.auth another type than the verifier kit's.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { auth, requiredScopes } = require('express-oauth2-jwt-bearer') as {
      auth(options: Record<string, unknown>): express.RequestHandler;
      requiredScopes(scopes: string): express.RequestHandler;
    };
    guard = [auth({ issuerBaseURL: issuer, audience: RESOURCE, tokenSigningAlg: 'RS256', strict: true }), requiredScopes(SCOPE)];
  } else if (variant === 'mcp-sdk') {
    // Untyped for the same reason (the SDK's bearerAuth declarations augment Request.auth too).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { requireBearerAuth } = require('@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js') as {
      requireBearerAuth(options: {
        verifier: { verifyAccessToken(token: string): Promise<McpAuthInfo> };
        requiredScopes?: string[];
        resourceMetadataUrl?: string;
        expectedResource?: URL;
      }): express.RequestHandler;
    };
    const metadata = (await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()) as { jwks_uri: string };
    const keys = createRemoteJWKSet(new URL(metadata.jwks_uri));
    const verifyAccessToken = async (token: string): Promise<McpAuthInfo> => {
      const { payload } = await jwtVerify(token, keys, { algorithms: ['RS256'], issuer, audience: RESOURCE, typ: 'at+jwt' });
      const aud = Array.isArray(payload.aud) ? payload.aud[0] : payload.aud;
      return {
        token,
        clientId: typeof payload.client_id === 'string' ? payload.client_id : String(payload.sub),
        scopes: typeof payload.scope === 'string' ? payload.scope.split(' ') : [],
        expiresAt: payload.exp,
        ...(aud === undefined ? {} : { resource: new URL(aud) }),
      };
    };
    guard = [
      requireBearerAuth({
        verifier: { verifyAccessToken },
        requiredScopes: [SCOPE],
        resourceMetadataUrl: protectedResourceMetadataUrl(RESOURCE),
        expectedResource: new URL(RESOURCE),
      }),
    ];
  } else if (variant === 'none') {
    guard = [];
  } else {
    const verifier = createVerifier({ issuer, audience: RESOURCE, ...(variant === 'requireAuth-nocache' ? { cache: { verifiedTtl: 0 } } : {}) });
    await verifier.ready();
    app.use(protectedResource({ resource: RESOURCE, verifier, scopesSupported: [SCOPE] }));
    guard = [requireAuth({ verifier, scopes: [SCOPE] })];
  }
  app.get('/mcp', ...guard, (req, res) => {
    const auth = req.auth as unknown as { subject?: string; clientId?: string; payload?: { sub?: string } } | undefined;
    res.json({ sub: auth?.subject ?? auth?.payload?.sub ?? auth?.clientId ?? null });
  });
  // Refusals that a variant passes to next(error) (Auth0's) are answered without Express logging each stack.
  app.use((error: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(error.status ?? 500).end();
  });
  app.listen(Number(process.env.PORT), '127.0.0.1');
}

async function main(): Promise<void> {
  const duration = argument('duration', 10);
  const connections = argument('connections', 50);
  const runs = argument('runs', 3);
  const root = path.resolve(__dirname, '../..');
  const idp = await startIdp({ databaseUrl: process.env.DATABASE_URL, workers: 1, name: 'bench-protected-resource' });
  const children = [];
  try {
    const created = JSON.parse(
      execFileSync(process.execPath, [path.join(root, 'dist/src/cli/main.js'), 'clients', 'create', '--name', 'bench', '--scope', SCOPE, '--audience', RESOURCE, '--json'], {
        env: idp.env,
      }).toString(),
    ) as { client_id: string; client_secret: string };
    const tokenResponse = await fetch(`${idp.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization: `Basic ${Buffer.from(`${created.client_id}:${created.client_secret}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', scope: SCOPE, resource: RESOURCE }).toString(),
    });
    const token = ((await tokenResponse.json()) as { access_token: string }).access_token;

    const ports = new Map<Variant, number>();
    for (const variant of VARIANTS) {
      const port = await freePort();
      ports.set(variant, port);
      children.push(
        await startChild(
          process.execPath,
          [path.join(root, 'dist/scripts/bench-protected-resource.js'), 'serve', variant],
          { PATH: process.env.PATH, PORT: String(port), ISSUER: idp.url, NODE_ENV: 'production' },
          `http://127.0.0.1:${port}/ready`,
        ),
      );
    }
    const request = (variant: Variant) => ({ url: `http://127.0.0.1:${ports.get(variant)}/mcp`, connections, headers: { authorization: `Bearer ${token}` } });
    // Every variant refuses a request without a token, and names the metadata where it can.
    for (const variant of VARIANTS.filter((v) => v !== 'none')) {
      const refused = await fetch(`http://127.0.0.1:${ports.get(variant)}/mcp`);
      if (refused.status !== 401) throw new Error(`${variant}: ${refused.status} without a token, not 401`);
    }
    console.log(
      `GET /mcp (scope "${SCOPE}"), Bearer client-credentials token for ${RESOURCE} (${token.length} bytes, RS256 2048); ${connections} connections, ${duration}s a run, ${runs} runs each, alternating; 1 process each; ${os.availableParallelism()} CPUs; load average ${os.loadavg()[0]?.toFixed(1)}; ${process.env.DATABASE_URL ? 'Postgres' : 'PGlite'}`,
    );
    const figures = await alternatingRuns(VARIANTS, request, runs, duration);
    const labels: Record<Variant, string> = {
      requireAuth: 'protectedResource + requireAuth',
      'requireAuth-nocache': '... requireAuth, verifiedTtl 0',
      'mcp-sdk': 'MCP SDK requireBearerAuth + jose',
      auth0: 'express-oauth2-jwt-bearer (Auth0)',
      none: 'Express, no authentication',
    };
    const medians = new Map(VARIANTS.map((v) => [v, summarise(labels[v], figures.get(v) ?? [])]));
    const rate = (v: Variant) => medians.get(v)?.requestsPerSecond ?? NaN;
    for (const [other, name] of [
      ['mcp-sdk', 'MCP SDK'],
      ['auth0', 'Auth0'],
    ] as const) {
      console.log(`ratio requireAuth / ${name}: ${(rate('requireAuth') / rate(other)).toFixed(2)} (target ≥ 1.00); without the verified-result reuse: ${(rate('requireAuth-nocache') / rate(other)).toFixed(2)}`);
    }
  } finally {
    for (const child of children) await stopChild(child);
    await idp.stop();
  }
}

if (process.argv[2] === 'serve') {
  serve(process.argv[3] as Variant).catch((error: Error) => {
    console.error(`bench-protected-resource serve: ${error.message}`);
    process.exit(1);
  });
} else {
  main().catch((error: Error) => {
    console.error(`bench-protected-resource: ${error.message}`);
    process.exit(1);
  });
}
