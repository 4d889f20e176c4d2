import { z } from 'zod';
import { apiErrors, jsonBody, ok, type OpenApiFragment } from '../http/openapi-kit';
import { credentialsBody, publicUserBody, refreshTokenBody, refreshTokenGrantRequest, refreshTokenGrantResponse, sessionBody, tokenQuery } from './schemas';

const userApi = { tags: ['User accounts'] };
const userToken = [{ userAccessToken: [] }];

/** /auth/v1 and the refresh grant at the token endpoint, in the OpenAPI document (src/http/openapi.ts). */
export const usersOpenApi: OpenApiFragment = {
  tags: ['User accounts'],
  tokenGrants: [{ request: refreshTokenGrantRequest, response: refreshTokenGrantResponse, description: "`refresh_token` (a /auth/v1 session: no client authentication; an application's: its client's)" }],
  paths: {
    '/auth/v1/signup': {
      post: {
        ...userApi,
        operationId: 'signUp',
        summary: 'Creates an account and signs it in',
        requestBody: jsonBody(credentialsBody),
        responses: { 201: ok('A session.', sessionBody), ...apiErrors(409, 413, 415, 422, 429) },
      },
    },
    '/auth/v1/token': {
      post: {
        ...userApi,
        operationId: 'signIn',
        summary: 'Signs in (grant_type=password, the default) or refreshes a session (grant_type=refresh_token)',
        description: 'The same body for an unknown email and a wrong password (400 invalid_credentials). A used refresh token presented again revokes the session.',
        requestParams: { query: tokenQuery },
        requestBody: jsonBody(z.union([credentialsBody, refreshTokenBody])),
        responses: { 200: ok('A session, with a new refresh token.', sessionBody), ...apiErrors(403, 413, 415, 429) },
      },
    },
    '/auth/v1/logout': {
      post: {
        ...userApi,
        security: userToken,
        operationId: 'signOut',
        summary: "Revokes the caller's session",
        responses: { 204: ok('Signed out.'), ...apiErrors(401) },
      },
    },
    '/auth/v1/user': {
      get: { ...userApi, security: userToken, operationId: 'getUser', summary: 'The caller', responses: { 200: ok('The user.', publicUserBody), ...apiErrors(401) } },
    },
  },
};
