import express, { type NextFunction, type Request, type Response } from 'express';
import type { Config } from '../config';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { Services } from '../services';
import { oauthMetadata, scopesSupported } from '../oauth';
import { adminRoutes } from '../admin/routes';
import { isBadInputDatabaseError } from './api-error';
import { OPENAPI_PATH, openApiSnapshot } from './openapi';
import { etagMatches } from '../keys/jwks';
import { userRoutes } from '../users/routes';
import { apiKeyUserRoutes } from '../api-keys/user-routes';

/** What the HTTP layer sees: the services once they are up (undefined while the database is awaited). */
export interface AppContext {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  services(): Services | undefined;
  /** IDP_WORKERS > 1 only: whether every worker of this instance is ready, as the primary last said. */
  workersReady?(): boolean;
}

/** RFC 8414 metadata: only what this server really offers. `scopes` are those clients may request. */
export function authorizationServerMetadata(config: Config, scopes: readonly string[] = []): Record<string, unknown> {
  return {
    issuer: config.issuer,
    jwks_uri: `${config.issuer}/.well-known/jwks.json`,
    ...oauthMetadata(config.issuer, scopes),
  };
}

/** The Express application: every route but the hot ones served in front of it (see server.ts). */
export function createApp(context: AppContext): express.Express {
  const app = express();
  // Exact routes (README: "Abuse limits"): set before the first route, since the app's router is built with them.
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
    const services = context.services();
    const database = services ? await services.handle.ping(1_000) : false;
    const signingKey = services?.keys.loaded ?? false;
    // A worker answers for the whole instance: not ready while another one is starting or restarting.
    const workers = context.workersReady?.();
    const ready = database && signingKey && workers !== false;
    const checks = workers === undefined ? { database, signing_key: signingKey } : { database, signing_key: signingKey, workers };
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });

  // The OpenAPI document (src/http/openapi.ts), generated once from the routes' zod schemas. Public
  // like the JWKS: any origin may load it (a browser-based viewer such as editor.swagger.io).
  const openapi = openApiSnapshot(context.config);
  app.get(OPENAPI_PATH, (req, res) => {
    res.set({ 'Cache-Control': 'public, max-age=3600', ETag: openapi.etag, 'Access-Control-Allow-Origin': '*' });
    if (etagMatches(req.get('if-none-match'), openapi.etag)) {
      res.status(304).end();
      return;
    }
    res.type('application/json').send(openapi.body);
  });

  const metadata = async (_req: Request, res: Response) => {
    const services = context.services();
    // A scope list that cannot be read is left empty rather than failing discovery (RFC 8414: RECOMMENDED member).
    const scopes = services ? await scopesSupported(services.handle).catch(() => []) : [];
    res.set('Cache-Control', `public, max-age=${context.config.jwksMaxAgeSeconds}`).json(authorizationServerMetadata(context.config, scopes));
  };
  app.get('/.well-known/oauth-authorization-server', metadata);
  app.get('/.well-known/openid-configuration', metadata);

  app.use('/auth/v1/api-keys', apiKeyUserRoutes({ deps: context.services, logger: context.logger }));
  app.use('/auth/v1', userRoutes({ accounts: () => context.services()?.users, logger: context.logger }));
  app.use('/admin/v1', adminRoutes({ services: context.services, logger: context.logger }));

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
