import { BoundedCache } from './cache';
import { IdpMisconfigured, type Discovery } from './discovery';
import { callIdp, IdpUnreachable, isObject } from './http';
import type { FetchFunction } from './options';

/** An RFC 7662 answer: exactly `{active: false}`, or the active credential's members. */
export type Introspection = { readonly active: false } | ActiveIntrospection;

export interface ActiveIntrospection {
  readonly active: true;
  readonly [member: string]: unknown;
}

const INACTIVE: Introspection = Object.freeze({ active: false });

export interface IntrospectorOptions {
  fetch: FetchFunction;
  timeout: number;
  credentials: { clientId: string; clientSecret: string };
  maxEntries: number;
  /** ms an active answer is reused (never past its `exp`). */
  activeTtl: number;
  /** ms an inactive answer is reused. */
  inactiveTtl: number;
}

/**
 * RFC 7662 client: asks `introspection_endpoint` with the resource server's own client credentials
 * (client_secret_basic, RFC 6749 §2.3.1), behind a bounded cache keyed by the credential's SHA-256.
 * Concurrent questions about one credential share one request. Failures (network, timeout, 5xx,
 * 429) are never cached and throw IdpUnreachable: the caller fails closed.
 */
export class Introspector {
  private readonly cache: BoundedCache<Introspection>;
  private readonly inflight = new Map<string, Promise<Introspection>>();
  private readonly authorization: string;

  constructor(
    private readonly discovery: Discovery,
    private readonly options: IntrospectorOptions,
  ) {
    this.cache = new BoundedCache(options.maxEntries);
    const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
    const { clientId, clientSecret } = options.credentials;
    this.authorization = `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
  }

  /** The answer for `credential` (whose SHA-256 is `hash`), from the cache or the identity provider. */
  introspect(credential: string, hash: string): Promise<Introspection> {
    const cached = this.cache.get(hash, Date.now());
    if (cached !== undefined) return Promise.resolve(cached);
    let pending = this.inflight.get(hash);
    if (pending === undefined) {
      pending = this.ask(credential).then(
        (answer) => {
          this.inflight.delete(hash);
          const now = Date.now();
          const exp = answer.active && typeof answer.exp === 'number' ? answer.exp * 1000 : Infinity;
          const expiresAt = answer.active ? Math.min(now + this.options.activeTtl, exp) : now + this.options.inactiveTtl;
          if (expiresAt > now) this.cache.set(hash, answer, expiresAt);
          return answer;
        },
        (error: unknown) => {
          this.inflight.delete(hash);
          throw error;
        },
      );
      this.inflight.set(hash, pending);
    }
    return pending;
  }

  private async ask(credential: string): Promise<Introspection> {
    const { introspectionEndpoint } = await this.discovery.get();
    if (introspectionEndpoint === undefined) throw new IdpMisconfigured('the identity provider publishes no introspection_endpoint');
    const answer = await callIdp(this.options.fetch, introspectionEndpoint, {
      method: 'POST',
      headers: { authorization: this.authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(credential)}`,
      timeout: this.options.timeout,
      // Introspection changes nothing: safe to repeat on a connection the server had closed.
      retryNetworkError: true,
    });
    if (answer.status === 401 || (answer.status === 400 && isObject(answer.body) && answer.body.error === 'invalid_client')) {
      throw new IdpMisconfigured(`the identity provider refused this resource server's client credentials (${answer.status})`);
    }
    if (answer.status !== 200) throw new IdpUnreachable(`${introspectionEndpoint} answered ${answer.status}`);
    const body = answer.body;
    if (!isObject(body) || typeof body.active !== 'boolean') throw new IdpUnreachable(`${introspectionEndpoint} did not answer an introspection response`);
    if (!body.active) return INACTIVE;
    return Object.freeze({ ...body, active: true });
  }
}
