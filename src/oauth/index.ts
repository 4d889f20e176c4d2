import { sql } from 'kysely';
import { ClientCache } from '../clients/cache';
import { listAllowedScopes } from '../clients/repository';
import type { Config } from '../config';
import type { DatabaseHandle } from '../db';
import { deleteInBatches } from '../db/sweep';
import type { Logger } from '../observability/logger';
import type { FailureLimiter } from '../ratelimit';
import type { AbuseLimits } from '../ratelimit/policies';
import { CLIENT_AUTH_METHODS, ClientAuthenticator } from './client-auth';
import { INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH } from './endpoints';
import { grantTypes } from './grants';

export { registerGrant, findGrant, grantTypes, type Grant, type GrantContext, type TokenResponse } from './grants';
export { registerTokenKind, introspect, revoke, type TokenKind, type TokenKindContext, type ActiveIntrospection } from './token-kinds';
export * from './errors';

/** How often expired deny-list entries and passed failure counters are deleted (every instance; idempotent). */
const SWEEP_INTERVAL_MS = 5 * 60_000;

/** The OAuth part of the services: the client cache and client authentication (over the shared failure limiter). */
export interface OAuthServices {
  clients: ClientCache;
  authenticator: ClientAuthenticator;
  /** Deletes expired `jti` deny-list entries and failure counters whose window has passed. */
  sweep(): Promise<void>;
  stop(): void;
}

export interface OAuthDeps {
  config: Config;
  logger: Logger;
  handle: DatabaseHandle;
  /** The shared failure counter (started by the caller), swept here. */
  limiter: FailureLimiter;
  /** The SPEC §7 policies over it: client authentication failures per client_id and per address. */
  limits: AbuseLimits;
  now: () => Date;
}

export async function startOAuth(deps: OAuthDeps): Promise<OAuthServices> {
  const { config, logger, handle, limiter, limits, now } = deps;
  const clients = new ClientCache({ handle, logger, maxEntries: config.clientCacheSize });
  await clients.start();
  const authenticator = new ClientAuthenticator({ clients, limits, now });
  const sweep = async () => {
    await deleteInBatches(handle.db, { table: 'revoked_access_tokens', key: 'jti', where: sql`expires_at < ${now()}` });
    await limiter.sweep();
  };
  const timer = setInterval(() => {
    sweep().catch((error: Error) => logger.warn({ err: error.message }, 'sweep of expired revocations and counters failed'));
  }, SWEEP_INTERVAL_MS);
  timer.unref();
  return {
    clients,
    authenticator,
    sweep,
    stop() {
      clearInterval(timer);
      clients.stop();
    },
  };
}

/** The OAuth members of the RFC 8414 metadata (merged into `authorizationServerMetadata`). */
export function oauthMetadata(issuer: string, scopesSupported: readonly string[]): Record<string, unknown> {
  return {
    token_endpoint: `${issuer}${TOKEN_PATH}`,
    introspection_endpoint: `${issuer}${INTROSPECTION_PATH}`,
    revocation_endpoint: `${issuer}${REVOCATION_PATH}`,
    grant_types_supported: grantTypes(),
    token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    introspection_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
    scopes_supported: scopesSupported,
    // RFC 8414 requires the member; there is no authorization endpoint, so no response type is supported.
    response_types_supported: [],
  };
}

/** The most scopes discovery lists: it is public and fetched often, so it stays small. */
export const SCOPES_SUPPORTED_LIMIT = 100;

/** `scopes_supported`: the scopes enabled clients without a tenant may request (never a tenant's), at most 100. */
export function scopesSupported(handle: DatabaseHandle): Promise<string[]> {
  return listAllowedScopes(handle.db, SCOPES_SUPPORTED_LIMIT);
}
