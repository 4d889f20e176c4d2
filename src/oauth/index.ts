import { sql } from 'kysely';
import { ClientCache, clientUseInterval } from '../clients/cache';
import { MetadataDocumentClients, MetadataDocumentRefused, type DocumentRequestOrigin } from '../clients/metadata-documents';
import { listAllowedScopes, type Client } from '../clients/repository';
import type { Config } from '../config';
import type { DatabaseHandle } from '../db';
import { deleteInBatches } from '../db/sweep';
import type { Logger } from '../observability/logger';
import type { FailureLimiter } from '../ratelimit';
import type { AbuseLimits } from '../ratelimit/policies';
import { CLIENT_ASSERTION_ALGORITHMS } from '../clients/jwks';
import { AssertionJtiStore, sweepAssertionJtis } from './assertion-jtis';
import { ClientAssertionVerifier } from './client-assertion';
import { CLIENT_AUTH_METHODS, ClientAuthenticator, PUBLIC_CLIENT_AUTH_METHODS } from './client-auth';
import { ClientKeys } from './client-keys';
import { INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH } from './endpoints';

/** How often expired deny-list entries and passed failure counters are deleted (every instance; idempotent). */
const SWEEP_INTERVAL_MS = 5 * 60_000;

/** The OAuth part of the services: the client cache and client authentication (over the shared failure limiter). */
export interface OAuthServices {
  clients: ClientCache;
  /** Parsed public keys of private_key_jwt clients (inline, or fetched from their jwks_uri). */
  clientKeys: ClientKeys;
  authenticator: ClientAuthenticator;
  /**
   * A client by id: a client id URL through its metadata document (docs/oauth.md "Client ID Metadata Documents", when on), any other from the client cache. A document that cannot be had or does
   * not qualify gives undefined, like an unknown id (the cause is logged). `origin`: the request asking
   * (its address is the actor of the audit event when a document's client is first made).
   */
  client(id: string, origin?: DocumentRequestOrigin): Promise<Client | undefined>;
  /** Deletes expired `jti` deny-list entries, expired client-assertion `jti`s and failure counters whose window has passed. */
  sweep(): Promise<void>;
  /** Stops the sweep and writes the client uses still waiting (the database must still be open). */
  stop(): Promise<void>;
}

export interface OAuthDeps {
  config: Config;
  logger: Logger;
  handle: DatabaseHandle;
  /** The shared failure counter (started by the caller), swept here. */
  limiter: FailureLimiter;
  /** The abuse-limit policies over it (docs/security.md "Abuse limits and the threat model": client authentication failures per client_id and per address. */
  limits: AbuseLimits;
  now: () => Date;
}

export async function startOAuth(deps: OAuthDeps): Promise<OAuthServices> {
  const { config, logger, handle, limiter, limits, now } = deps;
  const clients = new ClientCache({ handle, logger, maxEntries: config.clientCacheSize, useIntervalMs: clientUseInterval(config.dynamicClientTtlMs), now });
  await clients.start();
  const clientKeys = new ClientKeys({ maxEntries: config.clientCacheSize, production: config.production, logger, now });
  // An assertion's aud may name the issuer, the token endpoint (OpenID Connect Core §9 says so for every endpoint) or the endpoint called.
  const audiences = new Map(
    [TOKEN_PATH, INTROSPECTION_PATH, REVOCATION_PATH].map((path) => [path, Object.freeze([...new Set([config.issuer, `${config.issuer}${TOKEN_PATH}`, `${config.issuer}${path}`])])]),
  );
  const assertions = new ClientAssertionVerifier({
    keys: clientKeys,
    audiences: (path) => audiences.get(path) ?? (audiences.get(TOKEN_PATH) as readonly string[]),
    now,
  });
  const documents = config.clientIdMetadataDocuments
    ? new MetadataDocumentClients({ db: handle.db, clients, defaultAudience: config.clientDefaultAudience, maxEntries: config.clientCacheSize, production: config.production, logger, now })
    : undefined;
  const documentClient = documents && ((id: string, origin?: DocumentRequestOrigin) => documents.resolve(id, origin));
  const client = async (id: string, origin?: DocumentRequestOrigin) => {
    if (!documents?.isClientIdUrl(id)) return clients.get(id);
    return documents.resolve(id, origin).catch((error: unknown) => {
      if (error instanceof MetadataDocumentRefused) return undefined;
      throw error;
    });
  };
  const jtis = new AssertionJtiStore(handle, now);
  const authenticator = new ClientAuthenticator({
    clients,
    limits,
    assertions,
    recordJti: (clientId, jti, until) => jtis.record(clientId, jti, until),
    now,
    ...(documentClient && { documentClient }),
  });
  const sweep = async () => {
    await deleteInBatches(handle.db, { table: 'revoked_access_tokens', key: 'jti', where: sql`expires_at < ${now()}` });
    await sweepAssertionJtis(handle.db, now());
    await limiter.sweep();
  };
  const timer = setInterval(() => {
    sweep().catch((error: Error) => logger.warn({ err: error.message }, 'sweep of expired revocations and counters failed'));
  }, SWEEP_INTERVAL_MS);
  timer.unref();
  return {
    clients,
    clientKeys,
    authenticator,
    client,
    sweep,
    async stop() {
      clearInterval(timer);
      await clients.stop();
    },
  };
}

/** The OAuth members of the RFC 8414 metadata (merged into `authorizationServerMetadata`). */
export function oauthMetadata(issuer: string, scopesSupported: readonly string[], grantTypes: readonly string[], metadataDocuments = false): Record<string, unknown> {
  return {
    token_endpoint: `${issuer}${TOKEN_PATH}`,
    introspection_endpoint: `${issuer}${INTROSPECTION_PATH}`,
    revocation_endpoint: `${issuer}${REVOCATION_PATH}`,
    grant_types_supported: grantTypes,
    token_endpoint_auth_methods_supported: PUBLIC_CLIENT_AUTH_METHODS,
    token_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGORITHMS,
    introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    introspection_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGORITHMS,
    revocation_endpoint_auth_methods_supported: PUBLIC_CLIENT_AUTH_METHODS,
    revocation_endpoint_auth_signing_alg_values_supported: CLIENT_ASSERTION_ALGORITHMS,
    scopes_supported: scopesSupported,
    // docs/oauth.md "Client ID Metadata Documents".
    client_id_metadata_document_supported: metadataDocuments,
    // RFC 8414 requires the member; there is no authorization endpoint, so no response type is supported.
    response_types_supported: [],
  };
}

/** The most scopes discovery lists: it is public and fetched often, so it stays small. */
export const SCOPES_SUPPORTED_LIMIT = 100;

/** The OpenID Connect scopes every authorization-code client may ask for (docs/oauth.md "Resources", always listed. */
export const OIDC_SCOPES: readonly string[] = ['openid', 'email', 'offline_access'];

/**
 * `scopes_supported` (docs/http-api.md "Discovery: `scopes_supported`": `openid email offline_access`, the scopes of the registered
 * resources and those enabled clients without a tenant may request (never a tenant's), distinct, in
 * code-point order, at most 100 in all.
 */
export async function scopesSupported(handle: DatabaseHandle, resourceScopes: (limit: number) => Promise<readonly string[]> = async () => []): Promise<string[]> {
  // Each source's first `limit` in order holds every one of its scopes that can make the overall first `limit`.
  const [clients, resources] = await Promise.all([listAllowedScopes(handle.db, SCOPES_SUPPORTED_LIMIT), resourceScopes(SCOPES_SUPPORTED_LIMIT)]);
  const fixed = new Set(OIDC_SCOPES);
  const byCodePoint = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const others = [...new Set([...clients, ...resources])].filter((s) => !fixed.has(s)).sort(byCodePoint);
  return [...OIDC_SCOPES, ...others.slice(0, SCOPES_SUPPORTED_LIMIT - OIDC_SCOPES.length)].sort(byCodePoint);
}
