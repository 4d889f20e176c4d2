import crypto from 'node:crypto';
import type { Client } from '../../clients/repository';
import { parseScope } from '../../clients/service';
import { InvalidRequest, InvalidScope, InvalidTarget } from '../errors';
import type { Grant, TokenResponse } from './index';
import { quoted } from '../../text';

/** The claims of a client-credentials access token (RFC 9068, README: "tokens"). */
export interface ClientAccessTokenClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  client_id: string;
  scope: string;
  tenant_id?: string;
}

/** `scope` (RFC 6749 §3.3): a subset of the allowed scopes; absent means all of them. */
export function grantedScopes(client: Client, requested: string | undefined): readonly string[] {
  if (requested === undefined) return client.scopes;
  const scopes = parseScope(requested);
  if (scopes === undefined) throw new InvalidRequest('malformed scope parameter');
  if (scopes.length === 0) return client.scopes;
  const refused = scopes.filter((s) => !client.scopes.includes(s));
  if (refused.length > 0) throw new InvalidScope(`scope not allowed for this client: ${quoted(refused.join(' '))}`);
  return scopes;
}

/** `aud`: the `resource` (RFC 8707) or `audience` parameter when allowed; otherwise the default audience. */
export function grantedAudience(client: Client, resource: string | undefined, audience: string | undefined): string {
  if (resource !== undefined && audience !== undefined && resource !== audience) {
    throw new InvalidTarget('resource and audience name different targets; give one');
  }
  const requested = resource ?? audience;
  if (requested === undefined) return client.audiences[0] as string;
  if (!client.audiences.includes(requested)) throw new InvalidTarget('the requested resource is not allowed for this client');
  return requested;
}

export const clientCredentialsGrant: Grant = {
  grantType: 'client_credentials',
  parameters: ['scope', 'resource', 'audience'],
  clientAuthentication: 'required',
  async handler({ params, client, services }): Promise<TokenResponse> {
    const owner = client as Client;
    const scopes = grantedScopes(owner, params.get('scope'));
    const aud = grantedAudience(owner, params.get('resource'), params.get('audience'));
    const iat = Math.floor(services.now().getTime() / 1000);
    // A per-client TTL never exceeds IDP_CLIENT_TOKEN_TTL, which sizes the key retention.
    const ttl = Math.min(owner.tokenTtlSeconds ?? Infinity, Math.floor(services.config.clientTokenTtlMs / 1000));
    const scope = scopes.join(' ');
    const claims: ClientAccessTokenClaims = {
      iss: services.config.issuer,
      sub: owner.id,
      aud,
      exp: iat + ttl,
      iat,
      nbf: iat,
      jti: crypto.randomBytes(16).toString('base64url'),
      client_id: owner.id,
      scope,
      ...(owner.tenantId !== null && { tenant_id: owner.tenantId }),
    };
    const accessToken = await services.sign({ ...claims }, 'at+jwt');
    return { access_token: accessToken, token_type: 'Bearer', expires_in: ttl, scope };
  },
};
