import type { Client } from '../clients/repository';
import { narrowAudience, narrowScopes } from './narrowing';
import { createJtiSource } from '../tokens/jti';
import type { Signer } from '../tokens/sign';
import type { Grant, TokenResponse } from './types';

/** The claims of a client-credentials access token (RFC 9068, docs/tokens.md "Tokens". */
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
  const newJti = createJtiSource();
  return {
    grantType: 'client_credentials',
    parameters: ['scope', 'resource', 'audience'],
    clientAuthentication: 'required',
    async handler({ params, client }): Promise<TokenResponse> {
      const owner = client as Client;
      const scopes = narrowScopes(owner.scopes, params.get('scope'), 'not allowed for this client');
      const aud = narrowAudience(owner.audiences, params.get('resource'), params.get('audience'), 'this client');
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
        jti: newJti(),
        client_id: owner.id,
        scope,
        ...(owner.tenantId !== null && { tenant_id: owner.tenantId }),
      };
      const accessToken = await deps.sign({ ...claims }, 'at+jwt');
      return { access_token: accessToken, token_type: 'Bearer', expires_in: ttl, scope };
    },
  };
}
