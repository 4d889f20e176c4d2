import type { JWTPayload } from 'jose';
import { UnauthorizedClient } from '../oauth/errors';
import { withinTenant } from '../oauth/tenant-boundary';
import type { ActiveIntrospection, TokenKind } from '../oauth/types';
import type { TokenVerifier } from '../tokens/verify';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';
import type { ApiKeys } from './service';
import { presentKey } from './exchange';
import { looksLikeApiKey } from './format';
import { accessTokenRevoked, denyAccessToken } from '../tokens/deny-list';
import { peekClaims } from '../tokens/claims';
import { findOwnerState, type ApiKeyOwner } from './repository';
import { plausibleOwnerId } from './service';

/** What API keys and exchanged access tokens need at introspection and revocation. */
export interface ApiKeyTokenDeps {
  db: Kysely<Database>;
  apiKeys: ApiKeys;
  verifier: Pick<TokenVerifier, 'verify'>;
  now(): Date;
}

/**
 * API keys at /oauth/introspect and /oauth/revoke, recognised by their `idpk_` prefix.
 * Introspection answers exactly docs/api-keys.md "API keys"'s members; a revoked, expired, malformed or unknown key,
 * one whose owner or tenant is disabled, or one of another tenant, is `{"active": false}`.
 * Revocation: only the client that owns a key may revoke it (`unauthorized_client` otherwise, and
 * nothing changes); a key that is not valid needs no revocation (RFC 7009 §2.2).
 */
export function apiKeyTokens(deps: ApiKeyTokenDeps): TokenKind {
  return {
    name: 'api_key',

    async introspect(token, context) {
      if (!looksLikeApiKey(token)) return undefined;
      const { apiKeys } = deps;
      const presented = await presentKey(apiKeys, token);
      if (presented.status !== 'active') return null;
      const { key } = presented;
      // Tenants are a boundary (docs/http-api.md "HTTP"; the key's tenant is its owner's, kept in step by a trigger.
      if (!withinTenant(context.client, key.tenantId)) return null;
      apiKeys.recordUse(key);
      const answer: ActiveIntrospection = {
        active: true,
        token_type: 'api_key',
        sub: key.owner.id,
        scope: presented.scopes.join(' '),
      };
      if (key.owner.kind === 'client') answer.client_id = key.owner.id;
      if (key.tenantId !== null) answer.tenant_id = key.tenantId;
      if (key.expiresAt !== null) answer.exp = Math.floor(key.expiresAt.getTime() / 1000);
      answer.iat = Math.floor(key.createdAt.getTime() / 1000);
      return answer;
    },

    async revoke(token, { client }) {
      if (!looksLikeApiKey(token)) return false;
      const presented = await presentKey(deps.apiKeys, token);
      if (presented.status === 'malformed' || presented.status === 'unknown') return true;
      const { owner, id } = presented.key;
      if (owner.kind !== 'client' || owner.id !== client.id) throw new UnauthorizedClient('the API key is not owned by this client', `client ${client.id} tried to revoke API key ${id}`);
      await deps.apiKeys.revoke(id, { actor: `client:${client.id}`, reason: 'revoked at /oauth/revoke' });
      return true;
    },
  };
}

/** An exchanged access token (docs/tokens.md "Tokens": `typ: at+jwt` with an `api_key_id` claim. */
function exchangedClaims(token: string): JWTPayload | undefined {
  const payload = peekClaims(token, 'at+jwt');
  return payload && typeof payload.api_key_id === 'string' && typeof payload.sub === 'string' ? payload : undefined;
}

async function verifiedExchanged(token: string, deps: ApiKeyTokenDeps): Promise<JWTPayload | undefined> {
  const claims = exchangedClaims(token);
  if (!claims) return undefined;
  if (claims.aud === undefined) return undefined;
  try {
    // Whatever audience it names: introspection answers for every resource server.
    return await deps.verifier.verify(token, { audience: claims.aud, typ: 'at+jwt', now: deps.now() });
  } catch {
    return undefined;
  }
}

function ownerOfToken(payload: JWTPayload): ApiKeyOwner {
  return typeof payload.client_id === 'string' ? { kind: 'client', id: payload.client_id } : { kind: 'user', id: payload.sub as string };
}

/**
 * Exchanged access tokens at /oauth/introspect and /oauth/revoke, whoever owns the key (a client's
 * carry `client_id` = `sub` too, so the composition root asks this kind before the client-access-token
 * kind: the answer must say `api_key_id`). Active while signed and unexpired, not revoked by
 * `jti`, and while the owner and its tenant are enabled; revoking the key does not end them (docs/tokens.md "Tokens".
 * Only the client owning the key may revoke one.
 */
export function exchangedAccessTokens(deps: ApiKeyTokenDeps): TokenKind {
  return {
    name: 'exchanged_access_token',

    async introspect(token, context) {
      if (!exchangedClaims(token)) return undefined;
      const payload = await verifiedExchanged(token, deps);
      if (!payload || typeof payload.jti !== 'string') return null;
      const { db } = deps;
      if (await accessTokenRevoked(db, payload.jti)) return null;
      const owner = ownerOfToken(payload);
      if (!plausibleOwnerId(owner)) return null;
      const state = await findOwnerState(db, owner);
      if (!state || state.disabled || state.tenantDisabled) return null;
      const tenantId = typeof payload.tenant_id === 'string' ? payload.tenant_id : null;
      // The tenant the token claims and its owner's tenant now must both be the asker's.
      if (!withinTenant(context.client, tenantId, state.tenantId)) return null;
      const answer: ActiveIntrospection = {
        active: true,
        token_type: 'Bearer',
        scope: payload.scope,
        sub: payload.sub,
        aud: payload.aud,
        iss: payload.iss,
        exp: payload.exp,
        iat: payload.iat,
        nbf: payload.nbf,
        jti: payload.jti,
        api_key_id: payload.api_key_id,
      };
      if (owner.kind === 'client') answer.client_id = owner.id;
      if (tenantId !== null) answer.tenant_id = tenantId;
      return answer;
    },

    async revoke(token, context) {
      if (!exchangedClaims(token)) return false;
      const payload = await verifiedExchanged(token, deps);
      if (!payload || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return true;
      const owner = ownerOfToken(payload);
      if (owner.kind !== 'client' || owner.id !== context.client.id) throw new UnauthorizedClient('the token was not issued to this client');
      await denyAccessToken(deps.db, { jti: payload.jti, clientId: context.client.id, expiresAt: new Date(payload.exp * 1000), now: deps.now() });
      return true;
    },
  };
}
