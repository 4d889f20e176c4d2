import type { JWTPayload } from 'jose';
import { peekClaims } from '../tokens/claims';
import { accessTokenRevoked, denyAccessToken } from '../tokens/deny-list';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';
import type { Client } from '../clients/repository';
import type { TokenVerifier } from '../tokens/verify';
import { UnauthorizedClient } from './errors';
import { withinTenant } from './tenant-boundary';
import type { ActiveIntrospection, TokenKind } from './types';

/** What client access tokens need at introspection and revocation. */
export interface ClientAccessTokenDeps {
  db: Kysely<Database>;
  verifier: Pick<TokenVerifier, 'verify'>;
  /** The client as the cache knows it now (disabled, tenant). */
  findClient(id: string): Client | undefined | Promise<Client | undefined>;
  now(): Date;
}

/** Client-credentials access tokens: `typ: at+jwt`, `sub` = `client_id`, no session. */
function claimsOf(token: string): JWTPayload | undefined {
  const payload = peekClaims(token, 'at+jwt');
  const isClientToken = payload && typeof payload.client_id === 'string' && payload.sub === payload.client_id && payload.sid === undefined && payload.token_type === undefined;
  return isClientToken ? payload : undefined;
}

/** Signature, issuer, typ, expiry and key checked against the published keys; undefined if any fails. */
async function verified(token: string, claims: JWTPayload, deps: ClientAccessTokenDeps): Promise<JWTPayload | undefined> {
  if (claims.aud === undefined) return undefined;
  try {
    // The audience is whatever the token names: introspection answers for every resource server.
    return await deps.verifier.verify(token, { audience: claims.aud, typ: 'at+jwt', now: deps.now() });
  } catch {
    return undefined;
  }
}

function claimedTenant(payload: JWTPayload): string | undefined {
  return typeof payload.tenant_id === 'string' ? payload.tenant_id : undefined;
}

export function clientAccessTokens(deps: ClientAccessTokenDeps): TokenKind {
  return {
    name: 'client_access_token',

    async introspect(token, context) {
      const claims = claimsOf(token);
      if (!claims) return undefined;
      const payload = await verified(token, claims, deps);
      if (!payload || typeof payload.jti !== 'string') return null;
      if (await accessTokenRevoked(deps.db, payload.jti)) return null;
      const owner = await deps.findClient(payload.client_id as string);
      if (!owner || owner.disabledAt !== null || owner.tenantDisabled) return null;
      // The tenant the token claims and the tenant its client is in now must both be the asker's.
      if (!withinTenant(context.client, claimedTenant(payload), owner.tenantId)) return null;
      const result: ActiveIntrospection = {
        active: true,
        scope: payload.scope,
        client_id: payload.client_id,
        token_type: 'Bearer',
        exp: payload.exp,
        iat: payload.iat,
        nbf: payload.nbf,
        sub: payload.sub,
        aud: payload.aud,
        iss: payload.iss,
        jti: payload.jti,
      };
      const tenantId = claimedTenant(payload);
      if (tenantId !== undefined) result.tenant_id = tenantId;
      return result;
    },

    async revoke(token, context) {
      const claims = claimsOf(token);
      if (!claims) return false;
      const payload = await verified(token, claims, deps);
      // RFC 7009 §2.2: an invalid (forged, expired) token needs no revocation and is no error.
      if (!payload || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return true;
      // RFC 7009 §2.1: a valid token of another client is refused, and nothing changes.
      if (payload.client_id !== context.client.id) throw new UnauthorizedClient('the token was not issued to this client');
      await denyAccessToken(deps.db, { jti: payload.jti, clientId: context.client.id, expiresAt: new Date(payload.exp * 1000), now: deps.now() });
      return true;
    },
  };
}
