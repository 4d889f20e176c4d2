import { narrowAudience, narrowScopes } from '../oauth/narrowing';
import type { Config } from '../config';
import type { AbuseLimits } from '../ratelimit/policies';
import type { Grant, TokenResponse } from '../oauth/types';
import type { Signer } from '../tokens/sign';
import { InvalidGrant, InvalidRequest, InvalidScope, TemporarilyUnavailable, TooManyFailures } from '../oauth/errors';
import { readFormParams } from '../oauth/schemas';
import type { ApiKeyRecord } from './repository';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT, tokenExchangeRequest } from './schemas';
import type { ApiKeys, Presentation } from './service';
import { createJtiSource } from '../tokens/jti';

export { TOKEN_EXCHANGE_GRANT, ACCESS_TOKEN_TYPE };

/** What the API-key exchange needs. */
export interface TokenExchangeDeps {
  apiKeys: ApiKeys;
  limits: Pick<AbuseLimits, 'apiKeyPresentationFailed'>;
  settings: Pick<Config, 'issuer' | 'userAudience' | 'accessTokenTtlMs'>;
  sign: Signer;
  now(): Date;
}

/** The claims of an exchanged access token (docs/tokens.md "Tokens". */
export interface ExchangedAccessTokenClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  scope: string;
  api_key_id: string;
  client_id?: string;
  tenant_id?: string;
}

/** RFC 8693 §2.2.1 success body. */
export interface ExchangeResponse extends TokenResponse {
  issued_token_type: typeof ACCESS_TOKEN_TYPE;
}

/** The `aud` values the key's owner may have: a client's allowed audiences (the first the default), a user's IDP_USER_AUDIENCE. */
export function ownerAudiences(key: ApiKeyRecord, config: Pick<Config, 'userAudience'>): readonly string[] {
  return key.owner.kind === 'user' ? [config.userAudience] : (key.ownerState.clientAudiences ?? []);
}

/** Checks a presented key, turning an unreachable store (a key not in memory) into 503 rather than 500. */
export async function presentKey(apiKeys: ApiKeys, text: string): Promise<Presentation> {
  try {
    return await apiKeys.present(text);
  } catch (error) {
    throw new TemporarilyUnavailable('the API key store is unreachable; retry shortly', `API key lookup failed: ${(error as Error).message}`);
  }
}

function refusal(presented: Exclude<Presentation, { status: 'active' }>): InvalidGrant {
  switch (presented.status) {
    case 'malformed':
      return new InvalidGrant('subject_token is not an API key (idpk_<id>_<secret>)');
    case 'unknown':
      return new InvalidGrant('subject_token is not a valid API key');
    case 'revoked':
      return new InvalidGrant('the API key has been revoked', `API key ${presented.key.id} is revoked`);
    case 'expired':
      return new InvalidGrant(`the API key expired at ${presented.key.expiresAt?.toISOString() ?? 'an earlier time'}`, `API key ${presented.key.id} expired`);
    case 'owner_disabled':
      return new InvalidGrant('the owner of this API key (or its tenant) is disabled', `owner of API key ${presented.key.id} is disabled`);
  }
}

/**
 * RFC 8693 token exchange: an API key (the subject token) for a short-lived JWT access token of its
 * owner (docs/tokens.md "Tokens" "exchanged access token"), for resource servers that only verify JWTs offline.
 *
 * No client authentication: the key itself is the credential (RFC 8693 §2.1 leaves client
 * authentication to the server's policy), so a script holding only a key can exchange it; client
 * credentials sent along are refused by the token endpoint. A failed presentation of a well-formed
 * key counts against the per-address limit; a correct key is never checked against it.
 */
export function tokenExchangeGrant(deps: TokenExchangeDeps): Grant {
  const newJti = createJtiSource();
  return {
    grantType: TOKEN_EXCHANGE_GRANT,
    parameters: ['subject_token', 'subject_token_type', 'requested_token_type', 'scope', 'resource', 'audience'],
    clientAuthentication: 'none',
    async handler({ params, ip }): Promise<ExchangeResponse> {
      const { subject_token: subjectToken } = readFormParams(tokenExchangeRequest, params);
      if (params.has('actor_token') || params.has('actor_token_type')) throw new InvalidRequest('actor_token is not supported: a key is exchanged for its own owner only');

      const { apiKeys, settings: config } = deps;
      const presented = await presentKey(apiKeys, subjectToken);
      if (presented.status !== 'active') {
        // A key that does not parse costs nothing (no query, no counter); any other failure is counted.
        if (presented.status !== 'malformed') await presentationFailed(deps.limits, ip);
        throw refusal(presented);
      }
      const { key } = presented;
      if (presented.scopes.length === 0) throw new InvalidScope('the API key grants no scope its owner still has');
      const scopes = narrowScopes(presented.scopes, params.get('scope'), 'not granted by this API key');
      const aud = narrowAudience(ownerAudiences(key, config), params.get('resource'), params.get('audience'), 'the owner of this API key');

      const nowMs = deps.now().getTime();
      const iat = Math.floor(nowMs / 1000);
      // At most IDP_ACCESS_TOKEN_TTL, a client owner's own token TTL, and never past the key's expiry.
      let ttl = Math.floor(config.accessTokenTtlMs / 1000);
      if (key.ownerState.clientTokenTtlSeconds !== null) ttl = Math.min(ttl, key.ownerState.clientTokenTtlSeconds);
      if (key.expiresAt !== null) ttl = Math.min(ttl, Math.floor(key.expiresAt.getTime() / 1000) - iat);
      if (ttl <= 0) {
        await presentationFailed(deps.limits, ip);
        throw refusal({ status: 'expired', key });
      }
      const scope = scopes.join(' ');
      const claims: ExchangedAccessTokenClaims = {
        iss: config.issuer,
        sub: key.owner.id,
        aud,
        exp: iat + ttl,
        iat,
        nbf: iat,
        jti: newJti(),
        scope,
        api_key_id: key.id,
        ...(key.owner.kind === 'client' && { client_id: key.owner.id }),
        ...(key.tenantId !== null && { tenant_id: key.tenantId }),
      };
      apiKeys.recordUse(key);
      const accessToken = await deps.sign({ ...claims }, 'at+jwt');
      return { access_token: accessToken, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: ttl, scope };
    },
  };
}

/** A failed presentation counts per address (docs/security.md "Abuse limits and the threat model"; a blocked address gets 429 and is not counted. */
async function presentationFailed(limits: Pick<AbuseLimits, 'apiKeyPresentationFailed'>, address: string): Promise<void> {
  const wait = await limits.apiKeyPresentationFailed(address);
  if (wait > 0) throw new TooManyFailures(wait);
}
