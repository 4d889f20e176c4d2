import cluster from 'node:cluster';
import client from 'prom-client';
import type { KeySnapshot } from '../keys/cache';

/** Every metric of the service, on a registry of its own (no global state, one per app in tests). */
export interface Metrics {
  registry: client.Registry;
  jwksRequests: client.Counter<'status'>;
  keyTransitions: client.Counter<'action'>;
  alreadyRotated: client.Counter;
  rotationCheckFailures: client.Counter;
  /** Access tokens issued at POST /oauth/token, by client and grant type. */
  oauthTokensIssued: client.Counter<'client_id' | 'grant_type'>;
  /** OAuth error responses, by endpoint and `error` code. */
  oauthErrors: client.Counter<'endpoint' | 'error'>;
  /** Time to answer POST /oauth/token, by outcome (`success` or the error code). */
  oauthTokenDuration: client.Histogram<'outcome'>;
  /** Lets the key gauges read the live key state at scrape time. */
  watchKeys(source: () => KeySnapshot | undefined, rotationIntervalMs: number): void;
  /** The text of GET /metrics: in a cluster worker, every worker's metrics aggregated by the primary. */
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
      help: 'Access tokens issued at the token endpoint, by client and grant type',
      labelNames: ['client_id', 'grant_type'],
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
      if (cluster.isWorker) {
        const body = await clusterScrape();
        if (body !== undefined) return { contentType: registry.contentType, body };
      }
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/*
 * With IDP_WORKERS > 1 a scrape reaches one worker at random, so each worker asks the primary,
 * which collects every worker's registry (prom-client's AggregatorRegistry over cluster IPC):
 * counters are summed, gauges use the aggregator declared with them.
 */
const SCRAPE_REQUEST = 'idp:metrics-request';
const SCRAPE_RESPONSE = 'idp:metrics-response';
let scrapeCounter = 0;
const pendingScrapes = new Map<number, (body: string | undefined) => void>();

/** In a worker: answers the primary's collection requests from `registry`, and sends scrapes to the primary. */
export function joinClusterMetrics(metrics: Metrics): void {
  if (!cluster.isWorker) return;
  client.AggregatorRegistry.setRegistries([metrics.registry]);
  new client.AggregatorRegistry(); // registers prom-client's worker-side listener
  process.on('message', (message: { type?: string; id?: number; body?: string }) => {
    if (message?.type !== SCRAPE_RESPONSE || message.id === undefined) return;
    pendingScrapes.get(message.id)?.(message.body);
    pendingScrapes.delete(message.id);
  });
}

function clusterScrape(): Promise<string | undefined> {
  if (!process.send) return Promise.resolve(undefined);
  const id = ++scrapeCounter;
  return new Promise((resolve) => {
    // A primary that does not answer in time: fall back to this worker's own metrics.
    const timer = setTimeout(() => {
      pendingScrapes.delete(id);
      resolve(undefined);
    }, 3_000);
    pendingScrapes.set(id, (body) => {
      clearTimeout(timer);
      resolve(body);
    });
    process.send?.({ type: SCRAPE_REQUEST, id });
  });
}

/** In the primary: collects every worker's metrics when one of them is scraped. */
export function serveClusterMetrics(): void {
  const aggregator = new client.AggregatorRegistry();
  cluster.on('message', (worker, message: { type?: string; id?: number }) => {
    if (message?.type !== SCRAPE_REQUEST) return;
    aggregator.clusterMetrics().then(
      (body) => worker.send({ type: SCRAPE_RESPONSE, id: message.id, body }),
      () => worker.send({ type: SCRAPE_RESPONSE, id: message.id, body: undefined }),
    );
  });
}
