import cluster from 'node:cluster';
import http from 'node:http';
import client from 'prom-client';
import type { KeySnapshot } from '../keys/cache';
import type { Logger } from './logger';

/** Every metric of the service, on a registry of its own (no global state, one per app in tests). */
export interface Metrics {
  registry: client.Registry;
  jwksRequests: client.Counter<'status'>;
  keyTransitions: client.Counter<'action'>;
  alreadyRotated: client.Counter;
  rotationCheckFailures: client.Counter;
  /** Access tokens issued at POST /oauth/token, by grant type (never by client: labels must not grow with data). */
  oauthTokensIssued: client.Counter<'grant_type'>;
  /** OAuth error responses, by endpoint and `error` code. */
  oauthErrors: client.Counter<'endpoint' | 'error'>;
  /** Time to answer POST /oauth/token, by outcome (`success` or the error code). */
  oauthTokenDuration: client.Histogram<'outcome'>;
  /** Lets the key gauges read the live key state at scrape time. */
  watchKeys(source: () => KeySnapshot | undefined, rotationIntervalMs: number): void;
  /** This process's metrics in the exposition format. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

export function createMetrics(): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  let source: (() => KeySnapshot | undefined) | undefined;
  let intervalMs = 0;

  new client.Gauge({
    name: 'idp_signing_key_age_seconds',
    help: 'Seconds since the current signing key started signing',
    registers: [registry],
    // Across cluster workers: the oldest view (a worker that missed a change shows up).
    aggregator: 'max',
    collect() {
      const signing = source?.()?.signing;
      if (signing) this.set((Date.now() - signing.activatedAt.getTime()) / 1000);
    },
  });
  new client.Gauge({
    name: 'idp_seconds_to_next_rotation',
    help: 'Seconds until the current key has signed for IDP_KEY_ROTATION_INTERVAL (negative: overdue)',
    registers: [registry],
    aggregator: 'min',
    collect() {
      const signing = source?.()?.signing;
      if (signing) this.set((signing.activatedAt.getTime() + intervalMs - Date.now()) / 1000);
    },
  });
  new client.Gauge({
    name: 'idp_published_keys',
    help: 'Keys in the JWKS',
    registers: [registry],
    aggregator: 'max',
    collect() {
      const snapshot = source?.();
      if (snapshot) this.set(snapshot.jwks.document.keys.length);
    },
  });
  return {
    registry,
    jwksRequests: new client.Counter({
      name: 'idp_jwks_requests_total',
      help: 'JWKS requests by status code',
      labelNames: ['status'],
      registers: [registry],
    }),
    keyTransitions: new client.Counter({
      name: 'idp_key_transitions_total',
      help: 'Signing key transitions made by this process, by action',
      labelNames: ['action'],
      registers: [registry],
    }),
    alreadyRotated: new client.Counter({
      name: 'idp_key_rotation_already_done_total',
      help: 'Rotation checks that found the work already done by another instance',
      registers: [registry],
    }),
    rotationCheckFailures: new client.Counter({
      name: 'idp_key_rotation_check_failures_total',
      help: 'Rotation checks that failed (database unreachable, ...)',
      registers: [registry],
    }),
    oauthTokensIssued: new client.Counter({
      name: 'idp_oauth_tokens_issued_total',
      help: 'Access tokens issued at the token endpoint, by grant type',
      labelNames: ['grant_type'],
      registers: [registry],
    }),
    oauthErrors: new client.Counter({
      name: 'idp_oauth_errors_total',
      help: 'OAuth error responses by endpoint and error code',
      labelNames: ['endpoint', 'error'],
      registers: [registry],
    }),
    oauthTokenDuration: new client.Histogram({
      name: 'idp_oauth_token_duration_seconds',
      help: 'Token endpoint latency, from request to response, by outcome',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    watchKeys(next, rotationIntervalMs) {
      source = next;
      intervalMs = rotationIntervalMs;
    },
    async scrape() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/**
 * With IDP_WORKERS > 1 the primary owns the management listener and collects every worker's
 * registry over cluster IPC (prom-client's AggregatorRegistry): counters are summed, gauges use
 * the aggregator declared with them. Each worker only makes its registry collectable.
 */
export function joinClusterMetrics(metrics: Metrics): void {
  if (!cluster.isWorker) return;
  client.AggregatorRegistry.setRegistries([metrics.registry]);
  new client.AggregatorRegistry(); // registers prom-client's worker-side listener
}

/** In the primary: the text of every worker's metrics together. */
export function clusterScraper(): () => Promise<{ contentType: string; body: string }> {
  const aggregator = new client.AggregatorRegistry();
  return async () => ({ contentType: aggregator.contentType, body: await aggregator.clusterMetrics() });
}

/**
 * The management listener (docs/http-api.md "HTTP": `GET /metrics` on `IDP_METRICS_HOST:IDP_METRICS_PORT`, never on
 * the public port, so metrics are not one more thing the internet can read or load. Port 0 picks a
 * free port, which is logged. Anything else is 404.
 */
export async function startMetricsListener(
  settings: { port: number; host: string },
  scrape: () => Promise<{ contentType: string; body: string }>,
  logger: Logger,
): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the management listener serves GET /metrics\n');
      return;
    }
    scrape().then(
      ({ contentType, body }) => res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body),
      (error: Error) => {
        logger.warn({ err: error.message }, 'metrics scrape failed');
        res.writeHead(503, { 'Content-Type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : settings.port;
  logger.info({ host: settings.host, port }, `metrics on http://${settings.host.includes(':') ? `[${settings.host}]` : settings.host}:${port}/metrics`);
  return server;
}
