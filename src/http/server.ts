import http from 'node:http';
import { etagMatches } from '../keys/jwks';
import { createOAuthDispatch } from '../oauth/endpoints';
import { createApp, type AppContext } from './app';

/**
 * The HTTP server: a thin node:http dispatch in front of the Express app. The JWKS is the one
 * route verifiers hammer; it is answered here from precomputed bytes, because Express's router
 * alone costs ~100 µs a request (docs/performance.md "Performance" — several times the work itself.
 * Everything else goes to Express.
 */
export function createHttpServer(context: AppContext): http.Server {
  const app = createApp(context);
  const oauth = createOAuthDispatch({ logger: context.logger, metrics: context.metrics, deps: () => context.runtime()?.oauth });
  const cacheControl = `public, max-age=${context.config.jwksMaxAgeSeconds}`;

  const serveJwks = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const jwks = context.runtime()?.jwks();
    if (!jwks) {
      context.metrics.jwksRequests.inc({ status: '503' });
      res.writeHead(503, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Retry-After': '1' });
      res.end('{"error":"temporarily_unavailable","error_description":"signing keys are not loaded yet"}');
      return;
    }
    if (etagMatches(req.headers['if-none-match'], jwks.etag)) {
      context.metrics.jwksRequests.inc({ status: '304' });
      res.writeHead(304, { ETag: jwks.etag, 'Cache-Control': cacheControl });
      res.end();
      return;
    }
    context.metrics.jwksRequests.inc({ status: '200' });
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': jwks.body.length,
      'Cache-Control': cacheControl,
      ETag: jwks.etag,
      'Access-Control-Allow-Origin': '*',
    });
    res.end(req.method === 'HEAD' ? undefined : jwks.body);
  };

  const timeoutMs = context.config.requestTimeoutMs;
  const server = http.createServer(
    {
      // docs/security.md "Abuse limits and the threat model": a request whose headers and body take longer than IDP_REQUEST_TIMEOUT is closed
      // (Node's defaults hold a dripping client for 300 s, and check only every 30 s).
      requestTimeout: timeoutMs,
      headersTimeout: timeoutMs,
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(timeoutMs / 4))),
    },
    (req, res) => {
      const url = req.url ?? '/';
      const query = url.indexOf('?');
      const path = query < 0 ? url : url.slice(0, query);
      if (path === '/.well-known/jwks.json' && (req.method === 'GET' || req.method === 'HEAD')) return serveJwks(req, res);
      // POST /oauth/token, /oauth/introspect, /oauth/revoke: the token endpoint is the other hot route.
      if (path.startsWith('/oauth/') && oauth(req, res, path)) return;
      app(req, res);
    },
  );
  return server;
}
