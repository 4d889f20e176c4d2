import type { Request, Response } from 'express';
import type { UserRow } from '../db/schema';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import type { UserAccessClaims } from '../users/access-token';

export const USERINFO_PATH = '/oauth/userinfo';

export interface UserinfoUsers {
  /** A live user access token whatever its audience; a ServiceError (invalid_token, token_expired) otherwise. */
  authenticateAnyAudience(token: string): Promise<{ claims: UserAccessClaims; user: UserRow }>;
}

/** The claims of GET|POST /oauth/userinfo (OpenID Connect Core §5.3): `sub`, and with scope email `email`, `email_verified`. */
export interface UserinfoClaims {
  sub: string;
  email?: string;
  email_verified?: boolean;
}

/** RFC 6750 §3: a quoted-string value; the descriptions are ours, but quotes and backslashes are kept out all the same. */
function quoted(text: string): string {
  return `"${text.replace(/["\\]/g, "'")}"`;
}

function refuse(res: Response, status: number, error: string, description: string, extra = ''): void {
  const challenge = status === 401 && error === 'invalid_request' ? 'Bearer realm="userinfo"' : `Bearer realm="userinfo", error="${error}", error_description=${quoted(description)}${extra}`;
  res.status(status).set({ 'Cache-Control': 'no-store', Pragma: 'no-cache', 'WWW-Authenticate': challenge }).json({ error, error_description: description });
}

/**
 * GET|POST /oauth/userinfo with `Authorization: Bearer <access token>`: an application's access token
 * with scope openid. Errors per RFC 6750 §3: no token 401 (a challenge without an error code),
 * a malformed header 400 invalid_request, a bad, expired or revoked token 401 invalid_token, a
 * token without scope openid 403 insufficient_scope.
 */
export function userinfoHandler(users: UserinfoUsers, logger: Logger) {
  return async (req: Request, res: Response): Promise<void> => {
    const header = req.get('authorization');
    if (header === undefined) {
      refuse(res, 401, 'invalid_request', 'send the access token as "Authorization: Bearer <access token>"');
      return;
    }
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
    if (!match) {
      refuse(res, 400, 'invalid_request', 'the Authorization header must be "Bearer <access token>"');
      res.status(400);
      return;
    }
    let caller: { claims: UserAccessClaims; user: UserRow };
    try {
      caller = await users.authenticateAnyAudience(match[1] as string);
    } catch (error) {
      if (!(error instanceof ServiceError)) throw error;
      if (error.refusal.logDetail) logger.info({ detail: error.refusal.logDetail }, 'userinfo refused a token');
      refuse(res, 401, 'invalid_token', error.message);
      return;
    }
    const scopes = caller.claims.scope.split(' ');
    if (caller.claims.client_id === undefined || !scopes.includes('openid')) {
      refuse(res, 403, 'insufficient_scope', 'the access token was not granted the openid scope', ', scope="openid"');
      return;
    }
    const body: UserinfoClaims = { sub: caller.user.id };
    if (scopes.includes('email')) {
      body.email = caller.user.email;
      // This provider does not verify addresses.
      body.email_verified = false;
    }
    res.set({ 'Cache-Control': 'no-store', Pragma: 'no-cache' }).json(body);
  };
}
