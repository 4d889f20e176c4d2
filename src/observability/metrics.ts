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
    collect() {
      const signing = source?.()?.signing;
      if (signing) this.set((Date.now() - signing.activatedAt.getTime()) / 1000);
    },
  });
  new client.Gauge({
    name: 'idp_seconds_to_next_rotation',
    help: 'Seconds until the current key has signed for IDP_KEY_ROTATION_INTERVAL (negative: overdue)',
    registers: [registry],
    collect() {
      const signing = source?.()?.signing;
      if (signing) this.set((signing.activatedAt.getTime() + intervalMs - Date.now()) / 1000);
    },
  });
  new client.Gauge({
    name: 'idp_published_keys',
    help: 'Keys in the JWKS',
    registers: [registry],
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
  };
}
