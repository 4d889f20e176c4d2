import type { ZodOpenApiOperationObject, ZodOpenApiResponseObject } from 'zod-openapi';
import { z } from 'zod';
import { apiErrors, json, noStore, ok, type OpenApiFragment } from '../http/openapi-kit';
import { authorizationCodeTokenRequest, authorizationCodeTokenResponse, bearerErrorBody, grantClientParam, grantListBody, userinfoBody } from './schemas';

const challenge = z.object({ 'WWW-Authenticate': z.string().meta({ description: 'RFC 6750 §3: Bearer, with error and error_description when a token was presented.' }) });

function bearerError(description: string, withChallenge: boolean): ZodOpenApiResponseObject {
  return { description, headers: withChallenge ? noStore.extend(challenge.shape) : noStore, content: json(bearerErrorBody) };
}

function userinfo(operationId: string): ZodOpenApiOperationObject {
  return {
    tags: ['OAuth'],
    operationId,
    summary: 'OpenID Connect UserInfo: sub, and email and email_verified with scope email',
    security: [{ applicationAccessToken: [] }],
    responses: {
      200: { description: 'The claims.', headers: noStore, content: json(userinfoBody) },
      400: bearerError('invalid_request: the Authorization header is not "Bearer <token>".', true),
      401: bearerError('invalid_request (no token: a challenge without error) or invalid_token (bad, expired, revoked, signed out).', true),
      403: bearerError('insufficient_scope: the token was not granted openid.', true),
      500: bearerError('server_error.', false),
    },
  };
}

const userToken = [{ userAccessToken: [] }];

/**
 * The JSON surfaces of the authorization-code flow in the OpenAPI document (src/http/openapi.ts):
 * its grant at the token endpoint, /oauth/userinfo and /auth/v1/grants. The hosted pages
 * (/oauth/authorize, /oauth/logout) are HTML for people, described in docs/sign-in.md instead.
 */
export const authorizationOpenApi: OpenApiFragment = {
  tags: ['OAuth', 'User accounts'],
  tokenGrants: [
    {
      request: authorizationCodeTokenRequest,
      response: authorizationCodeTokenResponse,
      description: '`authorization_code` (RFC 6749 §4.1.3 with PKCE: the client authenticates as registered, a public client by client_id alone)',
    },
  ],
  paths: {
    '/oauth/userinfo': { get: userinfo('getUserInfo'), post: userinfo('postUserInfo') },
    '/auth/v1/grants': {
      get: {
        tags: ['User accounts'],
        security: userToken,
        operationId: 'listGrants',
        summary: "The caller's remembered consents: what each application was granted",
        responses: { 200: ok('The consents, most recently changed first.', grantListBody), ...apiErrors(401) },
      },
    },
    '/auth/v1/grants/{clientId}': {
      delete: {
        tags: ['User accounts'],
        security: userToken,
        operationId: 'withdrawGrant',
        summary: "Withdraws a consent; the application's sessions from this user end with it (refresh tokens included)",
        requestParams: { path: grantClientParam },
        responses: { 204: ok('Withdrawn.'), ...apiErrors(401, 404) },
      },
    },
  },
};
