import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Config } from '../config';
import type { JwksSnapshot } from '../keys/jwks';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { OAuthEndpointDeps } from '../oauth/endpoints';
import { isBadInputDatabaseError } from './api-error';
import { OPENAPI_PATH, type OpenApiSnapshot } from './openapi';
import { etagMatches } from '../keys/jwks';

/**
 * What the HTTP layer serves once start-up is done, assembled by the composition root from the
 * capabilities it mounts (src/compose.ts). Until then the server answers /healthz, /readyz (503) and
 * the OpenAPI document, and 503 "the service is starting" for everything else.
 */
export interface AppRuntime {
  /** The published key set (served from memory by the thin dispatch in ./server.ts). */
  jwks(): JwksSnapshot | undefined;
  /** POST /oauth/token, /oauth/introspect and /oauth/revoke. */
  oauth: OAuthEndpointDeps;
  /** `/readyz`: the database answers and the current signing key is loaded. */
  readiness(): Promise<{ database: boolean; signingKey: boolean }>;
  /** RFC 8414 / OpenID Provider metadata: only what this server really offers. */
  metadata(): Promise<Record<string, unknown>>;
  /** Every capability's routes (/auth/v1, /admin/v1, ...), mounted in the root's order. */
  routes: RequestHandler;
}

export interface AppContext {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** The OpenAPI document of the capabilities the root mounts; known before start-up, served throughout. */
  openapi: OpenApiSnapshot;
  /** Undefined while the database is awaited. */
  runtime(): AppRuntime | undefined;
  /** IDP_WORKERS > 1 only: whether every worker of this instance is ready, as the primary last said. */
  workersReady?(): boolean;
}

const STARTING = { error: 'temporarily_unavailable', message: 'the service is starting; retry in a second' };

/** The Express application: every route but the hot ones served in front of it (see server.ts). */
export function createApp(context: AppContext): express.Express {
  const app = express();
  // Exact routes (docs/security.md "Abuse limits and the threat model": set before the first route, since the app's router is built with them.
  // Each Router is built with the same options: Routers do not inherit them.
  app.enable('case sensitive routing');
  app.enable('strict routing');
  app.disable('x-powered-by');
  // req.ip is the one client address of every limit, log line and audit event (IDP_TRUST_PROXY).
  app.set('trust proxy', context.config.trustProxy);
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const { database, signingKey } = (await context.runtime()?.readiness()) ?? { database: false, signingKey: false };
    // A worker answers for the whole instance: not ready while another one is starting or restarting.
    const workers = context.workersReady?.();
    const ready = database && signingKey && workers !== false;
    const checks = workers === undefined ? { database, signing_key: signingKey } : { database, signing_key: signingKey, workers };
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });

  // The OpenAPI document (src/http/openapi.ts), generated once from the routes' zod schemas. Public
  // like the JWKS: any origin may load it (a browser-based viewer such as editor.swagger.io).
  const { openapi } = context;
  app.get(OPENAPI_PATH, (req, res) => {
    res.set({ 'Cache-Control': 'public, max-age=3600', ETag: openapi.etag, 'Access-Control-Allow-Origin': '*' });
    if (etagMatches(req.get('if-none-match'), openapi.etag)) {
      res.status(304).end();
      return;
    }
    res.type('application/json').send(openapi.body);
  });

  const metadata = async (_req: Request, res: Response, next: NextFunction) => {
    const runtime = context.runtime();
    if (!runtime) return next();
    res.set('Cache-Control', `public, max-age=${context.config.jwksMaxAgeSeconds}`).json(await runtime.metadata());
  };
  app.get('/.well-known/oauth-authorization-server', metadata);
  app.get('/.well-known/openid-configuration', metadata);

  // While starting: one 503 for every route the capabilities add, in the JSON APIs' shape.
  app.use((req, res, next) => {
    const runtime = context.runtime();
    if (runtime) return runtime.routes(req, res, next);
    res.status(503).set({ 'Cache-Control': 'no-store', 'Retry-After': '1' }).json(STARTING);
  });

  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found', error_description: 'no such endpoint' });
  });

  // The one error handler: details go to the log, never to the client.
  app.use((error: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
    const status = isBadInputDatabaseError(error) ? 400 : error.status && error.status >= 400 && error.status < 500 ? error.status : 500;
    if (status === 500) context.logger.error({ err: error }, 'unhandled error');
    res.status(status).json({ error: status === 500 ? 'server_error' : 'invalid_request', error_description: status === 500 ? 'internal error' : error.message });
  });
  return app;
}
