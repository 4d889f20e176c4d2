import crypto from 'node:crypto';
import type { Client } from '../clients/repository';
import { parseScope } from '../clients/service';
import { InvalidRequest, InvalidScope, InvalidTarget } from './errors';
import type { Signer } from '../tokens/sign';
import type { Grant, TokenResponse } from './types';

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
  if (refused.length > 0) throw new InvalidScope(`scope not allowed for this client: ${refused.join(' ').slice(0, 200)}`);
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

/** What the client-credentials grant needs: the signer, the issuer and the lifetime bound. */
export interface ClientCredentialsDeps {
  issuer: string;
  /** IDP_CLIENT_TOKEN_TTL: a per-client TTL never exceeds it (it sizes the key retention). */
  clientTokenTtlMs: number;
  sign: Signer;
  now(): Date;
}

export function clientCredentialsGrant(deps: ClientCredentialsDeps): Grant {
  const maxTtl = Math.floor(deps.clientTokenTtlMs / 1000);
  return {
    grantType: 'client_credentials',
    parameters: ['scope', 'resource', 'audience'],
    clientAuthentication: 'required',
    async handler({ params, client }): Promise<TokenResponse> {
      const owner = client as Client;
      const scopes = grantedScopes(owner, params.get('scope'));
      const aud = grantedAudience(owner, params.get('resource'), params.get('audience'));
      const iat = Math.floor(deps.now().getTime() / 1000);
      const ttl = Math.min(owner.tokenTtlSeconds ?? Infinity, maxTtl);
      const scope = scopes.join(' ');
      const claims: ClientAccessTokenClaims = {
        iss: deps.issuer,
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
      const accessToken = await deps.sign({ ...claims }, 'at+jwt');
      return { access_token: accessToken, token_type: 'Bearer', expires_in: ttl, scope };
    },
  };
}
