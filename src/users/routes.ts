import { Router, type Request, type Response } from 'express';
import { ApiError, apiErrorHandler } from '../http/api-error';
import { requestId, withRequestId } from '../http/request';
import { bearerToken, checkQueryText } from '../http/input';
import { jsonBody } from '../http/json-body';
import type { Logger } from '../observability/logger';
import { readCredentials } from './credentials';
import { publicUser } from './repository';
import { refreshTokenBody, tokenQuery } from './schemas';
import type { RequestOrigin, UserAccounts, UserSession } from './service';

/** The session response of sign-up, sign-in and refresh (the shape Supabase's GoTrue clients read). */
function sessionBody(session: UserSession): Record<string, unknown> {
  return {
    access_token: session.accessToken,
    token_type: 'bearer',
    expires_in: session.expiresIn,
    expires_at: Math.floor(session.expiresAt.getTime() / 1000),
    refresh_token: session.refreshToken,
    user: session.user,
  };
}

function origin(req: Request): RequestOrigin {
  return { ip: req.ip ?? req.socket.remoteAddress ?? 'unknown', requestId: requestId(req) };
}

/** `/auth/v1` (docs/http-api.md "HTTP": sign up, sign in, refresh, sign out, who am I. `accounts()` is undefined until start-up is done. */
export function userRoutes(options: { accounts: () => UserAccounts | undefined; logger: Logger }): Router {
  // Exact routes (docs/security.md "Abuse limits and the threat model": `/auth/v1/user/` and `/auth/v1/USER` are 404.
  const router = Router({ caseSensitive: true, strict: true });
  router.use(withRequestId);
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  router.use(checkQueryText);
  const accounts = () => {
    const service = options.accounts();
    if (!service) throw new ApiError('temporarily_unavailable', 'the service is starting; retry in a second', { headers: { 'Retry-After': '1' } });
    return service;
  };
  const send = (res: Response, status: number, session: UserSession) => res.status(status).json(sessionBody(session));

  router.post('/signup', jsonBody(), async (req, res) => {
    const service = accounts();
    send(res, 201, await service.signUp(readCredentials(req.body, 'signup'), origin(req)));
  });

  router.post('/token', jsonBody(), async (req, res) => {
    const service = accounts();
    const query = tokenQuery.safeParse(req.query);
    if (!query.success) throw new ApiError('invalid_request', query.error.issues[0]?.message ?? 'invalid grant_type');
    if (query.data.grant_type === 'password') {
      send(res, 200, await service.signIn(readCredentials(req.body, 'signin'), origin(req)));
    } else {
      // A body without a string refresh_token is refused by the service as invalid_grant, like a wrong one.
      send(res, 200, await service.refresh(refreshTokenBody.safeParse(req.body).data?.refresh_token, origin(req)));
    }
  });

  router.post('/logout', async (req, res) => {
    const service = accounts();
    // Any access token of the session signs it out: one from /auth/v1, or an application's from the
    // authorization-code flow (docs/delegation.md "Delegation": every token delegated from the session ends with it).
    await service.logout(await service.authenticateAnyAudience(bearerToken(req)), origin(req));
    res.status(204).end();
  });

  router.get('/user', async (req, res) => {
    const service = accounts();
    const caller = await service.authenticate(bearerToken(req));
    res.json(publicUser(caller.user));
  });

  router.use((_req: Request, _res: Response) => {
    throw new ApiError('not_found', 'no such endpoint under /auth/v1 (signup, token, logout, user)');
  });
  router.use(apiErrorHandler(options.logger));
  return router;
}
