import crypto from 'node:crypto';
import { peekClaims } from '../tokens/claims';
import { denyAccessToken } from '../tokens/deny-list';
import { ServiceError } from '../errors';
import { ApiError, fromServiceError } from '../http/api-error';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';
import { InvalidGrant, InvalidRequest, TemporarilyUnavailable, TooManyFailures, UnauthorizedClient } from '../oauth/errors';
import { withinTenant } from '../oauth/tenant-boundary';
import type { Grant, TokenKind } from '../oauth/types';
import { USER_SCOPE, USER_TOKEN_TYPE } from './access-token';
import { hashRefreshToken, looksLikeRefreshToken } from './refresh-token';
import { findRefreshToken, findSessionWithUser } from './repository';
import type { AuthenticatedUser, UserAccounts } from './service';

/** What the user tokens need at the OAuth endpoints. */
export interface UserTokenDeps {
  db: Kysely<Database>;
  users: Pick<UserAccounts, 'refresh' | 'authenticateAnyAudience' | 'revokeSession'>;
  issuer: string;
  now(): Date;
}

/**
 * The user service's refusals in RFC 6749 §5.2 terms: a refresh token that cannot be used is
 * `invalid_grant`, a limit or an overloaded hashing queue keeps its status and Retry-After; anything
 * else is not the caller's doing and stays an internal error.
 */
function asOAuthError(thrown: unknown): unknown {
  const error = thrown instanceof ServiceError ? fromServiceError(thrown) : thrown;
  if (!(error instanceof ApiError)) return thrown;
  const retryAfter = Number(error.options.headers?.['Retry-After'] ?? 1);
  switch (error.code) {
    case 'invalid_grant':
    case 'invalid_token':
    case 'token_expired':
    case 'unauthorized':
      return new InvalidGrant(error.message);
    case 'invalid_request':
      return new InvalidRequest(error.message);
    case 'too_many_requests':
      return new TooManyFailures(retryAfter);
    case 'temporarily_unavailable':
      return new TemporarilyUnavailable(error.message);
    default:
      return thrown;
  }
}

/**
 * User tokens at the OAuth endpoints: `grant_type=refresh_token` at /oauth/token, and user access
 * tokens and refresh tokens at /oauth/introspect and /oauth/revoke. Those of /auth/v1 belong to a
 * user session, not to a client: their refresh takes no client authentication; a client of the
 * user's tenant, or a client without a tenant, may introspect them (docs/http-api.md "HTTP"; no client may
 * revoke them (`unauthorized_client`, nothing changes). Those of an application (docs/sign-in.md "Sign-in for applications" are bound to its client: only it refreshes and revokes them.
 */

/**
 * RFC 6749 §6 over the same rotation and reuse detection as /auth/v1/token?grant_type=refresh_token.
 * A /auth/v1 session's refresh token takes no client authentication; an application's (the
 * authorization-code flow) only that application's, as registered (a public client: its client_id).
 */
export function refreshTokenGrant(deps: UserTokenDeps): Grant {
  return {
    grantType: 'refresh_token',
    parameters: ['refresh_token'],
    clientAuthentication: 'optional',
    publicClients: true,
    async handler({ params, ip, client }) {
      try {
        const session = await deps.users.refresh(params.get('refresh_token'), { ip, requestId: crypto.randomUUID() }, { clientId: client?.id });
        return {
          access_token: session.accessToken,
          token_type: 'Bearer',
          expires_in: session.expiresIn,
          refresh_token: session.refreshToken,
          scope: session.scope,
        };
      } catch (error) {
        throw asOAuthError(error);
      }
    },
  };
}

function isUserAccessToken(token: string): boolean {
  return peekClaims(token, 'at+jwt')?.token_type === USER_TOKEN_TYPE;
}

/**
 * A /auth/v1 token is issued to a user's session, never to a client: no client may revoke it (RFC
 * 7009 §2.1). Sessions end through /auth/v1/logout or the admin API. An application's token (the
 * authorization-code flow) is its client's to revoke, and no other's.
 */
function notIssuedToClient(what: string): UnauthorizedClient {
  return new UnauthorizedClient(`a ${what} is not issued to a client; the user signs out at /auth/v1/logout, or an administrator revokes the session`);
}

/**
 * The caller a user access token stands for when it is live (signed, unexpired, not revoked, session
 * open, user and tenant enabled), whatever resource it is for.
 */
async function liveUserAccess(token: string, deps: UserTokenDeps): Promise<AuthenticatedUser | undefined> {
  try {
    return await deps.users.authenticateAnyAudience(token);
  } catch (error) {
    if (error instanceof ApiError || error instanceof ServiceError) return undefined;
    throw error;
  }
}

/** User access tokens: active while signed, unexpired, their session open, user and tenant enabled. */
export function userAccessTokens(deps: UserTokenDeps): TokenKind {
  return {
    name: 'user_access_token',
    async introspect(token, { client }) {
      if (!isUserAccessToken(token)) return undefined;
      const live = await liveUserAccess(token, deps);
      if (!live) return null;
      const { claims, user } = live;
      // The tenant the token claims and the user's tenant now must both be the asking client's.
      if (!withinTenant(client, claims.tenant_id, user.tenant_id)) return null;
      return {
        active: true,
        scope: claims.scope,
        token_type: 'Bearer',
        exp: claims.exp,
        iat: claims.iat,
        nbf: claims.nbf,
        sub: claims.sub,
        aud: claims.aud,
        iss: claims.iss,
        jti: claims.jti,
        sid: claims.sid,
        email: claims.email,
        role: claims.role,
        ...(claims.client_id !== undefined ? { client_id: claims.client_id } : {}),
        ...(claims.tenant_id !== undefined ? { tenant_id: claims.tenant_id } : {}),
      };
    },
    // A live one of /auth/v1 or of another client is refused and nothing changes; an invalid one needs
    // no revocation (RFC 7009 §2.2). The client's own goes on the jti deny-list until it expires.
    async revoke(token, { client }) {
      if (!isUserAccessToken(token)) return false;
      const live = await liveUserAccess(token, deps);
      if (!live) return true;
      const { claims } = live;
      if (claims.client_id === undefined) throw notIssuedToClient('user access token');
      if (claims.client_id !== client.id) throw new UnauthorizedClient('the token was not issued to this client');
      await denyAccessToken(deps.db, { jti: claims.jti as string, clientId: client.id, expiresAt: new Date((claims.exp as number) * 1000), now: deps.now() });
      return true;
    },
  };
}

/** A refresh token that can still be used: known, unused, unexpired, its session open, user and tenant enabled. */
async function liveRefreshToken(token: string, deps: UserTokenDeps) {
  const { db } = deps;
  const row = await findRefreshToken(db, hashRefreshToken(token));
  if (!row || row.used_at || row.expires_at <= deps.now()) return undefined;
  const found = await findSessionWithUser(db, row.session_id);
  if (!found || found.session.revoked_at || found.user.disabled_at || found.tenantDisabled) return undefined;
  return { row, ...found };
}

/** Refresh tokens: opaque, so recognised by shape and looked up by hash. */
export function userRefreshTokens(deps: UserTokenDeps): TokenKind {
  return {
    name: 'user_refresh_token',
    async introspect(token, { client }) {
      if (!looksLikeRefreshToken(token)) return undefined;
      const live = await liveRefreshToken(token, deps);
      if (!live || !withinTenant(client, live.user.tenant_id)) return null;
      const { row, session, user } = live;
      return {
        active: true,
        token_type: 'refresh_token',
        scope: session.scope ?? USER_SCOPE,
        ...(session.client_id !== null ? { client_id: session.client_id } : {}),
        sub: user.id,
        sid: session.id,
        exp: Math.floor(row.expires_at.getTime() / 1000),
        iat: Math.floor(row.created_at.getTime() / 1000),
        iss: deps.issuer,
        ...(user.tenant_id ? { tenant_id: user.tenant_id } : {}),
      };
    },
    // Never a reuse: revocation only looks. A spent, expired or unknown token is a 200 (RFC 7009 §2.2).
    // An application's own refresh token ends its session (RFC 7009 §2.1: the refresh token and the
    // access tokens of the same grant).
    async revoke(token, { client }) {
      if (!looksLikeRefreshToken(token)) return false;
      const live = await liveRefreshToken(token, deps);
      if (!live) return true;
      if (live.session.client_id === null) throw notIssuedToClient('refresh token');
      if (live.session.client_id !== client.id) throw new UnauthorizedClient('the token was not issued to this client');
      await deps.users.revokeSession(live.session.id, `client:${client.id}`, 'refresh token revoked by its client');
      return true;
    },
  };
}

