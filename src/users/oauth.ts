import crypto from 'node:crypto';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { ApiError } from '../http/api-error';
import { InvalidGrant, registerGrant, registerTokenKind, type Grant, type TokenKind } from '../oauth';
import { USER_SCOPE, USER_TOKEN_TYPE } from './access-token';
import { hashRefreshToken, looksLikeRefreshToken } from './refresh-token';
import { findRefreshToken, findSessionWithUser } from './repository';

/**
 * The user tokens of /auth/v1 at the OAuth endpoints: `grant_type=refresh_token` at /oauth/token,
 * and user access tokens and refresh tokens at /oauth/introspect and /oauth/revoke. These tokens
 * belong to a user session, not to a client: the refresh grant takes no client authentication,
 * and any authenticated client (a resource server) may introspect or revoke them.
 */

/** RFC 6749 §6 over the same rotation and reuse detection as /auth/v1/token?grant_type=refresh_token. */
export const refreshTokenGrant: Grant = {
  grantType: 'refresh_token',
  parameters: ['refresh_token'],
  clientAuthentication: 'none',
  async handler({ params, services, ip }) {
    try {
      const session = await services.users.refresh(params.get('refresh_token'), { ip, requestId: crypto.randomUUID() });
      return {
        access_token: session.accessToken,
        token_type: 'Bearer',
        expires_in: session.expiresIn,
        refresh_token: session.refreshToken,
        scope: USER_SCOPE,
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

/** User access tokens: active while signed, unexpired, their session open, user and tenant enabled. */
export const userAccessTokens: TokenKind = {
  name: 'user_access_token',
  async introspect(token, { services }) {
    if (!isUserAccessToken(token)) return undefined;
    const claims = await services.users.introspect(token);
    if (!claims) return null;
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
      ...(claims.tenant_id !== undefined ? { tenant_id: claims.tenant_id } : {}),
    };
  },
  // Revoking a user access token signs its session out: every token of the session stops at once.
  async revoke(token, { services, client }) {
    if (!isUserAccessToken(token)) return false;
    const claims = await services.users.introspect(token);
    if (claims) await services.users.revokeSession(claims.sid, `client:${client.id}`, 'revoked at /oauth/revoke');
    return true;
  },
};

/** Refresh tokens: opaque, so recognised by shape and looked up by hash. */
export const userRefreshTokens: TokenKind = {
  name: 'user_refresh_token',
  async introspect(token, { services }) {
    if (!looksLikeRefreshToken(token)) return undefined;
    const db = services.handle.db;
    const row = await db
      .selectFrom('refresh_tokens')
      .select(['session_id', 'expires_at', 'used_at', 'created_at'])
      .where('token_hash', '=', hashRefreshToken(token))
      .executeTakeFirst();
    const now = services.now();
    if (!row || row.used_at || row.expires_at <= now) return null;
    const found = await findSessionWithUser(db, row.session_id);
    if (!found || found.session.revoked_at || found.user.disabled_at) return null;
    if (found.tenantDisabled) return null;
    return {
      active: true,
      token_type: 'refresh_token',
      scope: USER_SCOPE,
      sub: found.user.id,
      sid: found.session.id,
      exp: Math.floor(row.expires_at.getTime() / 1000),
      iat: Math.floor(row.created_at.getTime() / 1000),
      iss: services.config.issuer,
      ...(found.user.tenant_id ? { tenant_id: found.user.tenant_id } : {}),
    };
  },
  // RFC 7009 §2.1: revoking a refresh token also ends the access tokens of the same grant — the session.
  async revoke(token, { services, client }) {
    if (!looksLikeRefreshToken(token)) return false;
    const row = await findRefreshToken(services.handle.db, hashRefreshToken(token));
    if (row) await services.users.revokeSession(row.session_id, `client:${client.id}`, 'refresh token revoked at /oauth/revoke');
    return true;
  },
};

registerGrant(refreshTokenGrant);
registerTokenKind(userAccessTokens);
registerTokenKind(userRefreshTokens);
