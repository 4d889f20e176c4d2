import { callIdp, IdpUnreachable, isObject } from './http';
import type { FetchFunction } from './options';

/** What the verifier needs from the RFC 8414 metadata. */
export interface IdpMetadata {
  jwksUri: string;
  introspectionEndpoint: string | undefined;
}

/** After a failed discovery, requests fail fast for this long before the next attempt, ms. */
export const DISCOVERY_RETRY_MS = 1_000;

/**
 * The metadata at `${issuer}/.well-known/oauth-authorization-server`, fetched once (single flight)
 * and kept. Its `issuer` must equal the configured issuer exactly (RFC 8414 §3.3): otherwise
 * another server's keys could be trusted. While it fails, callers fail fast and one attempt is
 * made per DISCOVERY_RETRY_MS.
 */
export class Discovery {
  private metadata: IdpMetadata | undefined;
  private pending: Promise<IdpMetadata> | undefined;
  private failure: { error: Error; at: number } | undefined;

  constructor(
    private readonly issuer: string,
    private readonly fetchFn: FetchFunction,
    private readonly timeout: number,
  ) {}

  get(): Promise<IdpMetadata> {
    if (this.metadata) return Promise.resolve(this.metadata);
    if (this.pending) return this.pending;
    if (this.failure && Date.now() - this.failure.at < DISCOVERY_RETRY_MS) return Promise.reject(this.failure.error);
    this.pending = this.discover().then(
      (metadata) => {
        this.metadata = metadata;
        this.failure = undefined;
        this.pending = undefined;
        return metadata;
      },
      (error: Error) => {
        this.failure = { error, at: Date.now() };
        this.pending = undefined;
        throw error;
      },
    );
    return this.pending;
  }

  /** The metadata if discovery already succeeded (no I/O). */
  get known(): IdpMetadata | undefined {
    return this.metadata;
  }

  private async discover(): Promise<IdpMetadata> {
    const url = `${this.issuer}/.well-known/oauth-authorization-server`;
    const answer = await callIdp(this.fetchFn, url, { timeout: this.timeout, retryNetworkError: true });
    if (answer.status !== 200 || !isObject(answer.body)) throw new IdpUnreachable(`${url} answered ${answer.status}, not the metadata document`);
    const { issuer, jwks_uri: jwksUri, introspection_endpoint: introspectionEndpoint } = answer.body;
    if (issuer !== this.issuer) {
      throw new IdpMisconfigured(`the identity provider's metadata names issuer "${String(issuer)}", not "${this.issuer}"`);
    }
    if (typeof jwksUri !== 'string' || !/^https?:\/\//.test(jwksUri)) throw new IdpMisconfigured(`the identity provider's metadata has no usable jwks_uri`);
    if (introspectionEndpoint !== undefined && (typeof introspectionEndpoint !== 'string' || !/^https?:\/\//.test(introspectionEndpoint))) {
      throw new IdpMisconfigured(`the identity provider's metadata has an unusable introspection_endpoint`);
    }
    return { jwksUri, introspectionEndpoint };
  }
}

/** The identity provider answered, but not as this verifier's configuration expects (its message is safe to show). */
export class IdpMisconfigured extends Error {
  readonly code = 'ERR_IDP_MISCONFIGURED';
  constructor(message: string) {
    super(message);
    this.name = 'IdpMisconfigured';
  }
}
