import { errors, type JWTPayload } from 'jose';
import type { Kysely } from 'kysely';
import type { Client } from '../clients/repository';
import type { Database } from '../db/schema';
import { UnauthorizedClient } from '../oauth/errors';
import { withinTenant } from '../oauth/tenant-boundary';
import type { ActiveIntrospection, TokenKind } from '../oauth/types';
import { anyAccessTokenRevoked, denyAccessToken } from '../tokens/deny-list';
import type { TokenVerifier } from '../tokens/verify';
import { asDelegated, peekDelegated, type DelegatedAccessClaims } from './claims';

/** A user's session as it is now, with its user and tenant (the users' `findSessionWithUser`). */
export interface SessionState {
  session: { revoked_at: Date | null };
  user: { id: string; disabled_at: Date | null; tenant_id: string | null };
  tenantDisabled: boolean;
}

/** What delegated tokens need at introspection and revocation, and as the subject of a further exchange. */
export interface DelegatedTokenDeps {
  db: Kysely<Database>;
  verifier: Pick<TokenVerifier, 'verify'>;
  now(): Date;
  /** A client as the cache knows it now (disabled, tenant). */
  client(id: string): Client | undefined | Promise<Client | undefined>;
  /** The session a token names, its user and tenant; undefined when there is none. */
  session(sid: string): Promise<SessionState | undefined>;
}

export type Liveness =
  | { live: true; claims: DelegatedAccessClaims; actors: string[]; userTenantId: string | null }
  /** `reason` completes "the token ...": said to the client that presented it as a subject, never at introspection. */
  | { live: false; reason: string };

/** `2026-11-26T10:00:00Z` */
function isoSeconds(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Signature, issuer, typ and expiry against the published keys, whatever audience it names. */
async function verified(token: string, payload: JWTPayload, deps: Pick<DelegatedTokenDeps, 'verifier' | 'now'>): Promise<JWTPayload | { reason: string }> {
  if (payload.aud === undefined) return { reason: 'is not a valid access token of this provider' };
  try {
    return await deps.verifier.verify(token, { audience: payload.aud, typ: 'at+jwt', now: deps.now() });
  } catch (error) {
    if (error instanceof errors.JWTExpired && typeof error.payload.exp === 'number') return { reason: `expired at ${isoSeconds(error.payload.exp)}` };
    return { reason: 'is not a valid access token of this provider' };
  }
}

/**
 * Whether a delegated token is live (docs/delegation.md "Delegation": signed by us and unexpired; neither it
 * nor any token it was exchanged from revoked by `jti` (one query over `delegated_from`); its user's
 * session open, the user and the tenant enabled; every client in its `act` chain still enabled.
 * Undefined when the token is not a delegated token at all.
 */
export async function liveDelegatedToken(token: string, deps: DelegatedTokenDeps): Promise<Liveness | undefined> {
  const peeked = peekDelegated(token);
  if (!peeked) return undefined;
  const payload = await verified(token, peeked, deps);
  if ('reason' in payload) return { live: false, reason: payload.reason as string };
  const delegated = asDelegated(payload);
  if (!delegated) return { live: false, reason: 'is not a valid access token of this provider' };
  const { claims, actors } = delegated;
  if (await anyAccessTokenRevoked(deps.db, [claims.jti, ...claims.delegated_from])) return { live: false, reason: 'has been revoked, or a token it was delegated from has' };
  const state = await deps.session(claims.sid);
  if (!state || state.user.id !== claims.sub) return { live: false, reason: 'is not a valid access token of this provider' };
  if (state.session.revoked_at !== null) return { live: false, reason: "belongs to a session that has been signed out" };
  if (state.user.disabled_at !== null || state.tenantDisabled) return { live: false, reason: 'belongs to a disabled account or tenant' };
  for (const id of actors) {
    const actor = await deps.client(id);
    if (!actor || actor.disabledAt !== null || actor.tenantDisabled) return { live: false, reason: 'names an actor that is disabled or deleted' };
  }
  return { live: true, claims, actors, userTenantId: state.user.tenant_id };
}

/**
 * Delegated access tokens at /oauth/introspect and /oauth/revoke. Introspection answers the token's
 * members with `act` and `client_id` (the current actor) while it is live, within the asking
 * client's tenant. Only the current actor may revoke one (its `client_id`); revoking it ends every
 * token delegated from it as well.
 */
export function delegatedAccessTokens(deps: DelegatedTokenDeps): TokenKind {
  return {
    name: 'delegated_access_token',

    async introspect(token, { client }) {
      const liveness = await liveDelegatedToken(token, deps);
      if (liveness === undefined) return undefined;
      if (!liveness.live) return null;
      const { claims, userTenantId } = liveness;
      // The tenant the token claims and its user's tenant now must both be the asker's.
      if (!withinTenant(client, claims.tenant_id, userTenantId)) return null;
      const answer: ActiveIntrospection = {
        active: true,
        token_type: 'Bearer',
        scope: claims.scope,
        client_id: claims.client_id,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        jti: claims.jti,
        sid: claims.sid,
        act: claims.act,
      };
      if (claims.tenant_id !== undefined) answer.tenant_id = claims.tenant_id;
      return answer;
    },

    async revoke(token, { client }) {
      const peeked = peekDelegated(token);
      if (!peeked) return false;
      const payload = await verified(token, peeked, deps);
      // RFC 7009 §2.2: an invalid (forged, expired) token needs no revocation and is no error.
      const delegated = 'reason' in payload ? undefined : asDelegated(payload);
      if (!delegated) return true;
      const { claims } = delegated;
      if (claims.client_id !== client.id) throw new UnauthorizedClient('the token was not issued to this client');
      await denyAccessToken(deps.db, { jti: claims.jti, clientId: client.id, expiresAt: new Date(claims.exp * 1000), now: deps.now() });
      return true;
    },
  };
}
