import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import { loadConfig, type Config } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { compose, createServer, type Composition } from '../../src/compose';
import { requireAuth, type AuthRequirements, type FetchFunction, type Verifier } from '../../src/verifier';
import { testMek } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually as pollUntil } from '../oauth/helpers';

/** The audience of the resource server under test (clients' default audience). */
export const API = 'https://api.test';
/** The audience of user access tokens (IDP_USER_AUDIENCE); the provider reserves it, so no client token can carry it. */
export const USERS = 'https://app.test';

/**
 * A real identity provider on a fixed loopback port, so that its issuer (`http://127.0.0.1:<port>`)
 * is the URL the verifier discovers, and so that it can be stopped and started again on the same
 * port (the outage tests). Stopping closes the HTTP server only; the services and database stay.
 */
export interface Idp {
  issuer: string;
  port: number;
  config: Config;
  env: Record<string, string>;
  services: Composition;
  handle: DatabaseHandle;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

export async function startIdp(extraEnv: Record<string, string> = {}): Promise<Idp> {
  const database: TestDatabase = await createTestDatabase();
  const handle = await database.open();
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    IDP_LOG_LEVEL: 'silent',
    IDP_ISSUER: issuer,
    IDP_MEK: testMek(),
    IDP_USER_AUDIENCE: USERS,
    IDP_CLIENT_AUDIENCE: API,
    IDP_METRICS_PORT: 'off',
    ...database.env,
    ...extraEnv,
  };
  const config = loadConfig(env);
  const logger = createLogger(config.logLevel);
  const metrics = createMetrics();
  const services = await compose({ config, logger, metrics, handle });
  let server: http.Server | undefined;

  const start = async () => {
    const inner = createServer({ config, logger, metrics, composition: () => services });
    await new Promise<void>((resolve, reject) => {
      inner.once('error', reject);
      inner.listen(port, '127.0.0.1', () => resolve());
    });
    server = inner;
  };
  const stop = async () => {
    const current = server;
    server = undefined;
    if (!current) return;
    current.closeAllConnections();
    await new Promise<void>((resolve) => current.close(() => resolve()));
  };
  await start();
  return {
    issuer,
    port,
    config,
    env,
    services,
    handle,
    stop,
    start,
    async close() {
      await stop();
      await services.close();
      await database.drop();
    },
  };
}

/** A client_credentials token from the real token endpoint. */
export async function clientToken(idp: Idp, client: { id: string; secret: string }, params: Record<string, string> = {}): Promise<string> {
  const res = await request(idp.issuer).post('/oauth/token').auth(client.id, client.secret).type('form').send({ grant_type: 'client_credentials', ...params });
  if (res.status !== 200) throw new Error(`token request failed: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as { access_token: string }).access_token;
}

/** Claims as the identity provider signs them, for tokens the real endpoints cannot be asked for (expired, other issuer). */
export function claims(idp: Idp, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = Math.floor(Date.now() / 1000);
  const id = crypto.randomBytes(16).toString('base64url');
  return { iss: idp.issuer, sub: id, aud: API, exp: iat + 300, iat, nbf: iat, jti: crypto.randomUUID(), client_id: id, scope: 'read write', ...overrides };
}

/**
 * A minimal resource server: one route per requirement set, answering `req.auth`. Its own
 * `requireAuth` over the verifier under test, as an application would write it.
 */
export function resourceServer(verifier: Verifier, routes: Record<string, AuthRequirements> = {}): express.Express {
  const app = express();
  const answer = (req: express.Request, res: express.Response) => {
    res.json(req.auth);
  };
  app.get('/any', requireAuth({ verifier }), answer);
  for (const [path, requirements] of Object.entries(routes)) app.get(path, requireAuth({ verifier, ...requirements }), answer);
  return app;
}

/** A fetch that counts the verifier's requests by path (discovery, JWKS, introspection). */
export function countingFetch(): { fetch: FetchFunction; count(path: string): number } {
  const counts = new Map<string, number>();
  return {
    count: (path: string) => counts.get(path) ?? 0,
    fetch: (input: string, init: RequestInit) => {
      const path = new URL(input).pathname;
      counts.set(path, (counts.get(path) ?? 0) + 1);
      return fetch(input, init);
    },
  };
}

/** Polls until `check` passes; a verifier's caches and an identity provider's restart get 10 s. */
export function eventually(check: () => Promise<void>, timeoutMs = 10_000): Promise<void> {
  return pollUntil(check, timeoutMs);
}
