import type { StoredClientJwks } from '../db/schema';
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
  /** RFC 7591 names: `client_secret_basic` (a secret, by Basic or in the form) or `private_key_jwt`. */
  token_endpoint_auth_method: 'client_secret_basic' | 'private_key_jwt';
  jwks?: StoredClientJwks;
  jwks_uri?: string;
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
    token_endpoint_auth_method: client.authMethod === 'private_key_jwt' ? 'private_key_jwt' : 'client_secret_basic',
    ...(client.jwks !== null && { jwks: client.jwks }),
    ...(client.jwksUri !== null && { jwks_uri: client.jwksUri }),
  };
}
