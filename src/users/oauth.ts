import crypto from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { ApiError } from '../http/api-error';
import { InvalidGrant, registerGrant, registerTokenKind, UnauthorizedClient, type Grant, type TokenKind, type TokenKindContext } from '../oauth';
import { withinTenant } from '../oauth/tenant-boundary';
import { USER_SCOPE, USER_TOKEN_TYPE } from './access-token';
import { hashRefreshToken, looksLikeRefreshToken } from './refresh-token';
import { findRefreshToken, findSessionWithUser } from './repository';
import type { AuthenticatedUser } from './service';

/**
 * User tokens at the OAuth endpoints: `grant_type=refresh_token` at /oauth/token, and user access
 * tokens and refresh tokens at /oauth/introspect and /oauth/revoke. Those of /auth/v1 belong to a
 * user session, not to a client: their refresh takes no client authentication; a client of the
 * user's tenant, or a client without a tenant, may introspect them (README: "HTTP"); no client may
 * revoke them (`unauthorized_client`, nothing changes). Those of an application (README: "Sign-in
 * for applications") are bound to its client: only it refreshes and revokes them.
 */

/**
 * RFC 6749 §6 over the same rotation and reuse detection as /auth/v1/token?grant_type=refresh_token.
 * A /auth/v1 session's refresh token takes no client authentication; an application's (the
 * authorization-code flow) only that application's, as registered (a public client: its client_id).
 */
export const refreshTokenGrant: Grant = {
  grantType: 'refresh_token',
  parameters: ['refresh_token'],
  clientAuthentication: 'optional',
  async handler({ params, services, ip, client }) {
    try {
      const session = await services.users.refresh(params.get('refresh_token'), { ip, requestId: crypto.randomUUID() }, { clientId: client?.id });
      return {
        access_token: session.accessToken,
        token_type: 'Bearer',
        expires_in: session.expiresIn,
        refresh_token: session.refreshToken,
        scope: session.scope,
      };
    } catch (error) {
      if (error instanceof ApiError && error.code === 'invalid_grant') throw new InvalidGrant(error.message);
      throw error;
    }
  },
};

function isUserAccessToken(token: string): boolean {
  try {
    return decodeProtectedHeader(token).typ === 'at+jwt' && decodeJwt(token).token_type === USER_TOKEN_TYPE;
  } catch {
    return false;
  }
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
async function liveUserAccess(token: string, services: TokenKindContext['services']): Promise<AuthenticatedUser | undefined> {
  try {
    return await services.users.authenticateAnyAudience(token);
  } catch (error) {
    if (error instanceof ApiError) return undefined;
    throw error;
  }
}

/** User access tokens: active while signed, unexpired, their session open, user and tenant enabled. */
export const userAccessTokens: TokenKind = {
  name: 'user_access_token',
  async introspect(token, { services, client }) {
    if (!isUserAccessToken(token)) return undefined;
    const live = await liveUserAccess(token, services);
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
  async revoke(token, { services, client }) {
    if (!isUserAccessToken(token)) return false;
    const live = await liveUserAccess(token, services);
    if (!live) return true;
    const { claims } = live;
    if (claims.client_id === undefined) throw notIssuedToClient('user access token');
    if (claims.client_id !== client.id) throw new UnauthorizedClient('the token was not issued to this client');
    await services.handle.db
      .insertInto('revoked_access_tokens')
      .values({ jti: claims.jti as string, client_id: client.id, expires_at: new Date((claims.exp as number) * 1000), revoked_at: services.now() })
      .onConflict((oc) => oc.column('jti').doNothing())
      .execute();
    return true;
  },
};

/** A refresh token that can still be used: known, unused, unexpired, its session open, user and tenant enabled. */
async function liveRefreshToken(token: string, services: TokenKindContext['services']) {
  const db = services.handle.db;
  const row = await findRefreshToken(db, hashRefreshToken(token));
  if (!row || row.used_at || row.expires_at <= services.now()) return undefined;
  const found = await findSessionWithUser(db, row.session_id);
  if (!found || found.session.revoked_at || found.user.disabled_at || found.tenantDisabled) return undefined;
  return { row, ...found };
}

/** Refresh tokens: opaque, so recognised by shape and looked up by hash. */
export const userRefreshTokens: TokenKind = {
  name: 'user_refresh_token',
  async introspect(token, { services, client }) {
    if (!looksLikeRefreshToken(token)) return undefined;
    const live = await liveRefreshToken(token, services);
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
      iss: services.config.issuer,
      ...(user.tenant_id ? { tenant_id: user.tenant_id } : {}),
    };
  },
  // Never a reuse: revocation only looks. A spent, expired or unknown token is a 200 (RFC 7009 §2.2).
  // An application's own refresh token ends its session (RFC 7009 §2.1: the refresh token and the
  // access tokens of the same grant).
  async revoke(token, { services, client }) {
    if (!looksLikeRefreshToken(token)) return false;
    const live = await liveRefreshToken(token, services);
    if (!live) return true;
    if (live.session.client_id === null) throw notIssuedToClient('refresh token');
    if (live.session.client_id !== client.id) throw new UnauthorizedClient('the token was not issued to this client');
    await services.users.revokeSession(live.session.id, `client:${client.id}`, 'refresh token revoked by its client');
    return true;
  },
};

registerGrant(refreshTokenGrant);
registerTokenKind(userAccessTokens);
registerTokenKind(userRefreshTokens);
