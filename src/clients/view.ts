import type { ClientRegistrar, StoredClientJwks, TokenEndpointAuthMethod } from '../db/schema';
import type { Client } from './repository';

/** `clients list` / `clients show` JSON shape: everything but the secret hashes (public keys are not secret). */
export interface ClientView {
  client_id: string;
  name: string;
  scopes: string[];
  audiences: string[];
  tenant_id: string | null;
  token_ttl_seconds: number | null;
  disabled_at: string | null;
  created_at: string;
  updated_at: string;
  previous_secret_valid_until: string | null;
  /**
   * RFC 7591 names: `client_secret_basic` or `client_secret_post` (a secret, accepted by Basic or in
   * the form either way), `private_key_jwt`, or `none` (a public client).
   */
  token_endpoint_auth_method: TokenEndpointAuthMethod;
  jwks?: StoredClientJwks;
  jwks_uri?: string;
  redirect_uris: string[];
  post_logout_redirect_uris: string[];
  /** Resolved: the default by rule when none were set. */
  grant_types: string[];
  first_party: boolean;
  registered_by: ClientRegistrar;
}

export function clientView(client: Client): ClientView {
  return {
    client_id: client.id,
    name: client.name,
    scopes: [...client.scopes],
    audiences: [...client.audiences],
    tenant_id: client.tenantId,
    token_ttl_seconds: client.tokenTtlSeconds,
    disabled_at: client.disabledAt?.toISOString() ?? null,
    created_at: client.createdAt.toISOString(),
    updated_at: client.updatedAt.toISOString(),
    previous_secret_valid_until: client.previousSecretExpiresAt?.toISOString() ?? null,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    ...(client.jwks !== null && { jwks: client.jwks }),
    ...(client.jwksUri !== null && { jwks_uri: client.jwksUri }),
    redirect_uris: [...client.redirectUris],
    post_logout_redirect_uris: [...client.postLogoutRedirectUris],
    grant_types: [...client.grantTypes],
    first_party: client.firstParty,
    registered_by: client.registeredBy,
  };
}
