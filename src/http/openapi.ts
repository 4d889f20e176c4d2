import crypto from 'node:crypto';
import { z } from 'zod';
import {
  createDocument,
  type oas31,
  type ZodOpenApiOperationObject,
  type ZodOpenApiPathsObject,
  type ZodOpenApiRequestBodyObject,
  type ZodOpenApiResponseObject,
  type ZodOpenApiResponsesObject,
} from 'zod-openapi';
import {
  auditPageBody,
  auditQuery,
  clearedLimitBody,
  clientListBody,
  clientViewBody,
  createClientBody,
  createdClientBody,
  createTenantBody,
  keyListBody,
  limitKeyParameter,
  limitsBody,
  listUsersQuery,
  patchClientBody,
  patchUserBody,
  pathParameter,
  revokeKeyBody,
  revokeKeyResponse,
  rotatedSecretBody,
  rotateKeysBody,
  rotateKeysResponse,
  rotateSecretBody,
  tenantBody,
  tenantListBody,
  userPageBody,
} from '../admin/schemas';
import {
  adminCreateApiKeyBody,
  adminListApiKeysQuery,
  apiKeyIdParam,
  apiKeyPageBody,
  apiKeyViewBody,
  createdApiKeyBody,
  revokeApiKeyBody,
  tokenExchangeRequest,
  tokenExchangeResponse,
  userCreateApiKeyBody,
  userListApiKeysQuery,
} from '../api-keys/schemas';
import { createResourceBody, resourceBody, resourceListBody, resourceUrlParam } from '../resources/schemas';
import type { Config } from '../config';
import {
  authorizationServerMetadataBody,
  clientCredentialsTokenRequest,
  clientCredentialsTokenResponse,
  introspectionRequest,
  introspectionResponse,
  jwksBody,
  oauthErrorBody,
  revocationRequest,
} from '../oauth/schemas';
import { credentialsBody, publicUserBody, refreshTokenBody, refreshTokenGrantRequest, refreshTokenGrantResponse, sessionBody, tokenQuery } from '../users/schemas';
import { apiErrorBody, healthBody, readinessBody } from './schemas';
import {
  authorizationCodeTokenRequest,
  authorizationCodeTokenResponse,
  bearerErrorBody,
  grantClientParam,
  grantListBody,
  userinfoBody,
} from '../authorization/schemas';

/**
 * The OpenAPI 3.1 document of every route of the public port (GET /openapi.json), generated from the
 * zod schemas the routes validate their input with (src/{oauth,users,admin,api-keys}/schemas.ts,
 * ./schemas.ts) by zod-openapi: nothing is written twice. /metrics is on the management listener and
 * is not part of it. Built once at start-up (createApp); the tests check every response they get
 * against it (test/helpers/openapi.ts).
 */

export const OPENAPI_PATH = '/openapi.json';

const FORM = 'application/x-www-form-urlencoded';

const json = (schema: z.ZodType) => ({ 'application/json': { schema } });

const retryAfter = z.object({ 'Retry-After': z.string().meta({ description: 'seconds' }) });

// ---- /oauth/*: RFC 6749 §5.2 errors, Cache-Control: no-store on every answer.

const noStore = z.object({
  'Cache-Control': z.literal('no-store'),
  Pragma: z.literal('no-cache'),
});

function oauthError(id: string, description: string, headers?: z.ZodObject): ZodOpenApiResponseObject {
  return { id, description, headers: headers ? noStore.extend(headers.shape) : noStore, content: json(oauthErrorBody) };
}

const OAUTH_ERRORS = {
  400: oauthError('OAuthBadRequest', 'invalid_request, invalid_grant, invalid_scope, invalid_target, unauthorized_client, unsupported_grant_type or unsupported_token_type.'),
  401: oauthError(
    'OAuthInvalidClient',
    'invalid_client: client authentication failed (the cause is logged, never returned).',
    z.object({ 'WWW-Authenticate': z.string() }),
  ),
  413: oauthError('OAuthPayloadTooLarge', 'invalid_request: the body is over 64 KiB; refused before it is read, and the connection is closed.'),
  429: oauthError('OAuthTooManyFailures', 'temporarily_unavailable: too many failed client authentications for this client_id or address.', retryAfter),
  500: oauthError('OAuthServerError', 'server_error: the detail is in the log only.'),
  503: oauthError('OAuthUnavailable', 'temporarily_unavailable: starting, or a store the request needs is unreachable.', retryAfter),
} satisfies Record<number, ZodOpenApiResponseObject>;

/** Any other method at /oauth/token, /oauth/introspect or /oauth/revoke (not an operation: listed among the components). */
const METHOD_NOT_ALLOWED = oauthError('OAuthMethodNotAllowed', 'invalid_request: any method but POST at /oauth/*.', z.object({ Allow: z.literal('POST') }));

const CLIENT_AUTHENTICATION =
  'Client authentication: exactly one of the Basic header (`client_secret_basic`, id and secret form-urlencoded then Base64, RFC 6749 §2.3.1), ' +
  '`client_id` and `client_secret` in the form (`client_secret_post`), or `client_assertion_type` and `client_assertion` (`private_key_jwt`, RFC 7523).';

function formBody(schema: z.ZodType): ZodOpenApiRequestBodyObject {
  return { required: true, content: { [FORM]: { schema } } };
}

function oauthOperation(operation: Omit<ZodOpenApiOperationObject, 'responses' | 'tags'>, ok: ZodOpenApiResponseObject): ZodOpenApiOperationObject {
  return {
    tags: ['OAuth'],
    // Basic, or credentials in the form (described by the body), or none (grants that take none).
    security: [{ clientSecretBasic: [] }, {}],
    ...operation,
    responses: { 200: ok, ...OAUTH_ERRORS },
  };
}

// ---- /auth/v1 and /admin/v1: {"error", "message"}.

const API_ERRORS = {
  400: { id: 'BadRequest', description: 'invalid_request (malformed input: nothing was changed), invalid_credentials or invalid_grant.', content: json(apiErrorBody) },
  401: {
    id: 'Unauthorized',
    description: 'unauthorized (no bearer token), invalid_token or token_expired.',
    headers: z.object({ 'WWW-Authenticate': z.string() }),
    content: json(apiErrorBody),
  },
  403: { id: 'Forbidden', description: 'forbidden: the token lacks the permission, or the account or its tenant is disabled.', content: json(apiErrorBody) },
  404: { id: 'NotFound', description: 'not_found.', content: json(apiErrorBody) },
  409: { id: 'Conflict', description: 'conflict or user_already_exists.', content: json(apiErrorBody) },
  413: { id: 'PayloadTooLarge', description: 'payload_too_large: the body is over 64 KiB; the connection is closed.', content: json(apiErrorBody) },
  415: { id: 'UnsupportedMediaType', description: 'unsupported_media_type: a body must be UTF-8 JSON sent with Content-Type: application/json.', content: json(apiErrorBody) },
  422: { id: 'WeakPassword', description: 'weak_password.', content: json(apiErrorBody) },
  429: { id: 'TooManyRequests', description: 'too_many_requests.', headers: retryAfter, content: json(apiErrorBody) },
  500: { id: 'ServerError', description: 'server_error: the request id is in X-Request-Id, the detail in the log.', content: json(apiErrorBody) },
  503: { id: 'Unavailable', description: 'temporarily_unavailable: starting, or password hashing is saturated.', headers: retryAfter, content: json(apiErrorBody) },
} satisfies Record<number, ZodOpenApiResponseObject>;

/** 400, 500 and 503 (every JSON API route may answer them), and `statuses`. */
function apiErrors(...statuses: Array<keyof typeof API_ERRORS>): ZodOpenApiResponsesObject {
  const responses: ZodOpenApiResponsesObject = {};
  for (const status of [...new Set([400, ...statuses, 500, 503] as const)].sort((a, b) => a - b)) {
    responses[`${status}`] = API_ERRORS[status];
  }
  return responses;
}

function ok(description: string, schema?: z.ZodType): ZodOpenApiResponseObject {
  return schema ? { description, content: json(schema) } : { description };
}

function jsonBody(schema: z.ZodType, required = true): ZodOpenApiRequestBodyObject {
  return { required, content: json(schema) };
}

/** An admin operation: one permission, 401 and 403, and a body read only once the caller is known. */
function admin(
  permission: string,
  operation: Omit<ZodOpenApiOperationObject, 'responses' | 'security'> & { success: ZodOpenApiResponsesObject; errors?: Array<keyof typeof API_ERRORS> },
): ZodOpenApiOperationObject {
  const { success, errors = [], description, ...rest } = operation;
  const body = operation.requestBody ? ([413, 415] as const) : [];
  return {
    tags: ['Admin'],
    security: [{ adminToken: [] }],
    description: `${description ? `${description}\n\n` : ''}Permission: \`${permission}\`.`,
    ...rest,
    responses: { ...success, ...apiErrors(401, 403, ...body, ...errors) },
  };
}

function apiKeyRoutes(prefix: '/auth/v1/api-keys' | '/admin/v1/api-keys'): ZodOpenApiPathsObject {
  if (prefix === '/auth/v1/api-keys') {
    const user = { tags: ['API keys'], security: [{ userAccessToken: [] }] };
    return {
      [prefix]: {
        get: {
          ...user,
          operationId: 'listOwnApiKeys',
          summary: "The caller's API keys, newest first",
          requestParams: { query: userListApiKeysQuery },
          responses: { 200: ok('A page of keys.', apiKeyPageBody), ...apiErrors(401) },
        },
        post: {
          ...user,
          operationId: 'createOwnApiKey',
          summary: 'A new API key for the caller; the key is in this response only',
          requestBody: jsonBody(userCreateApiKeyBody),
          responses: { 201: ok('The key, shown once.', createdApiKeyBody), ...apiErrors(401, 409, 413, 415) },
        },
      },
      [`${prefix}/{id}`]: {
        delete: {
          ...user,
          operationId: 'revokeOwnApiKey',
          summary: "Revokes one of the caller's keys",
          requestParams: { path: apiKeyIdParam },
          responses: { 200: ok('The revoked key.', apiKeyViewBody), ...apiErrors(401, 404) },
        },
      },
    };
  }
  const tags = ['Admin: API keys'];
  return {
    [prefix]: {
      get: admin('api-keys:read', {
        tags,
        operationId: 'listApiKeys',
        summary: 'API keys, newest first',
        requestParams: { query: adminListApiKeysQuery },
        success: { 200: ok('A page of keys.', apiKeyPageBody) },
      }),
      post: admin('api-keys:write', {
        tags,
        operationId: 'createApiKey',
        summary: 'A new API key for a user or a client; the key is in this response only',
        requestBody: jsonBody(adminCreateApiKeyBody),
        success: { 201: ok('The key, shown once.', createdApiKeyBody) },
        errors: [404, 409],
      }),
    },
    [`${prefix}/{id}`]: {
      get: admin('api-keys:read', {
        tags,
        operationId: 'getApiKey',
        summary: 'One API key',
        requestParams: { path: apiKeyIdParam },
        success: { 200: ok('The key (never the key itself).', apiKeyViewBody) },
        errors: [404],
      }),
      delete: admin('api-keys:write', {
        tags,
        operationId: 'deleteApiKey',
        summary: 'Revokes an API key',
        requestParams: { path: apiKeyIdParam },
        success: { 200: ok('The revoked key.', apiKeyViewBody) },
        errors: [404, 413, 415],
      }),
    },
    [`${prefix}/{id}/revoke`]: {
      post: admin('api-keys:write', {
        tags,
        operationId: 'revokeApiKey',
        summary: 'Revokes an API key, with a reason',
        requestParams: { path: apiKeyIdParam },
        requestBody: jsonBody(revokeApiKeyBody, false),
        success: { 200: ok('The revoked key.', apiKeyViewBody) },
        errors: [404],
      }),
    },
  };
}

/** GET|POST /oauth/userinfo (OpenID Connect Core §5.3), errors per RFC 6750 §3. */
function userinfoPaths(): ZodOpenApiPathsObject {
  const challenge = z.object({ 'WWW-Authenticate': z.string().meta({ description: 'RFC 6750 §3: Bearer, with error and error_description when a token was presented.' }) });
  const bearerError = (description: string, withChallenge: boolean): ZodOpenApiResponseObject => ({
    description,
    headers: withChallenge ? noStore.extend(challenge.shape) : noStore,
    content: json(bearerErrorBody),
  });
  const operation = (operationId: string): ZodOpenApiOperationObject => ({
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
  });
  return { '/oauth/userinfo': { get: operation('getUserInfo'), post: operation('postUserInfo') } };
}

function paths(): ZodOpenApiPathsObject {
  const jwks: ZodOpenApiOperationObject = {
    tags: ['Discovery'],
    operationId: 'getJwks',
    summary: 'The public signing keys: current, then next, then previous',
    responses: {
      200: {
        description: 'The JWKS, served from memory.',
        headers: z.object({ 'Cache-Control': z.string().meta({ description: 'public, max-age=IDP_JWKS_MAX_AGE' }), ETag: z.string() }),
        content: json(jwksBody),
      },
      304: { description: 'If-None-Match matched the ETag.' },
      503: oauthError('JwksUnavailable', 'temporarily_unavailable: the signing keys are not loaded yet.', retryAfter),
    },
  };
  const metadata = (operationId: string): ZodOpenApiOperationObject => ({
    tags: ['Discovery'],
    operationId,
    summary: 'RFC 8414 authorization server metadata',
    responses: { 200: { description: 'Only what this server offers.', headers: z.object({ 'Cache-Control': z.string() }), content: json(authorizationServerMetadataBody) } },
  });
  const userApi = { tags: ['User accounts'] };
  const userToken = [{ userAccessToken: [] }];
  const keysTags = ['Admin: signing keys'];
  const clientTags = ['Admin: clients'];

  return {
    '/.well-known/jwks.json': { get: jwks, head: { ...jwks, operationId: 'headJwks', summary: 'The JWKS headers' } },
    '/.well-known/oauth-authorization-server': { get: metadata('getAuthorizationServerMetadata') },
    '/.well-known/openid-configuration': { get: metadata('getOpenIdConfiguration') },
    [OPENAPI_PATH]: {
      get: {
        tags: ['Discovery'],
        operationId: 'getOpenApiDocument',
        summary: 'This document',
        responses: {
          200: { description: 'OpenAPI 3.1, generated at start-up.', headers: z.object({ 'Cache-Control': z.string(), ETag: z.string() }), content: json(z.object({ openapi: z.string() }).catchall(z.unknown())) },
          304: { description: 'If-None-Match matched the ETag.' },
        },
      },
    },
    '/healthz': { get: { tags: ['Health'], operationId: 'getHealth', summary: 'Liveness: 200 while the process runs', responses: { 200: ok('Alive.', healthBody) } } },
    '/readyz': {
      get: {
        tags: ['Health'],
        operationId: 'getReadiness',
        summary: 'Readiness: the database answers within 1 s and a current signing key is loaded',
        responses: { 200: ok('Ready.', readinessBody), 503: ok('Not ready; checks says what is missing.', readinessBody) },
      },
    },

    '/oauth/token': {
      post: oauthOperation(
        {
          operationId: 'token',
          summary: 'RFC 6749 token endpoint',
          description:
            'grant_type `client_credentials` (client authentication required), `authorization_code` (RFC 6749 §4.1.3 with PKCE: the client ' +
            'authenticates as registered, a public client by client_id alone), `refresh_token` (a /auth/v1 session: no client authentication; ' +
            "an application's: its client's) or `urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693: an API key for a JWT; no client authentication).\n\n" +
            CLIENT_AUTHENTICATION,
          requestBody: formBody(z.discriminatedUnion('grant_type', [clientCredentialsTokenRequest, authorizationCodeTokenRequest, refreshTokenGrantRequest, tokenExchangeRequest])),
        },
        {
          description: 'The token.',
          headers: noStore,
          content: json(z.union([clientCredentialsTokenResponse, authorizationCodeTokenResponse, refreshTokenGrantResponse, tokenExchangeResponse])),
        },
      ),
    },
    '/oauth/introspect': {
      post: oauthOperation(
        {
          operationId: 'introspect',
          summary: 'RFC 7662 introspection',
          description: `Any authenticated client may introspect, within its tenant. ${CLIENT_AUTHENTICATION}`,
          requestBody: formBody(introspectionRequest),
        },
        { description: 'Active with its members, or exactly {"active": false}.', headers: noStore, content: json(introspectionResponse) },
      ),
    },
    '/oauth/revoke': {
      post: oauthOperation(
        {
          operationId: 'revoke',
          summary: 'RFC 7009 revocation',
          description:
            'A client may revoke its own access tokens and the API keys it owns; anything else valid is 400 unauthorized_client and nothing changes. ' +
            `An invalid or unknown token answers 200. ${CLIENT_AUTHENTICATION}`,
          requestBody: formBody(revocationRequest),
        },
        { description: 'Revoked, or nothing to revoke. Empty body.', headers: noStore },
      ),
    },

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
    ...apiKeyRoutes('/auth/v1/api-keys'),
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
    ...userinfoPaths(),

    '/admin/v1/keys': {
      get: admin('keys:read', { tags: keysTags, operationId: 'listSigningKeys', summary: 'Every signing key', success: { 200: ok('The keys.', keyListBody) } }),
    },
    '/admin/v1/keys/rotate': {
      post: admin('keys:rotate', {
        tags: keysTags,
        operationId: 'rotateSigningKeys',
        summary: 'Promotes next to current',
        description: 'Refused (409, with safe_at) while next has been published for less than IDP_KEY_PREPUBLISH, unless force.',
        requestBody: jsonBody(rotateKeysBody, false),
        success: { 200: ok('What changed.', rotateKeysResponse) },
        errors: [409],
      }),
    },
    '/admin/v1/keys/{kid}/revoke': {
      post: admin('keys:revoke', {
        tags: keysTags,
        operationId: 'revokeSigningKey',
        summary: 'Emergency: removes a key from the JWKS and destroys it',
        requestParams: { path: pathParameter('kid') },
        requestBody: jsonBody(revokeKeyBody, false),
        success: { 200: ok('What changed.', revokeKeyResponse) },
        errors: [404, 409],
      }),
    },
    '/admin/v1/clients': {
      get: admin('clients:read', { tags: clientTags, operationId: 'listClients', summary: 'Every OAuth client', success: { 200: ok('The clients.', clientListBody) } }),
      post: admin('clients:write', {
        tags: clientTags,
        operationId: 'createClient',
        summary: 'Registers a client: with a secret (shown once), private_key_jwt with jwks or jwks_uri, or a public client (none) with redirect_uris',
        requestBody: jsonBody(createClientBody),
        success: { 201: ok('The client.', createdClientBody) },
      }),
    },
    '/admin/v1/clients/{clientId}': {
      get: admin('clients:read', {
        tags: clientTags,
        operationId: 'getClient',
        summary: 'One client',
        requestParams: { path: pathParameter('clientId') },
        success: { 200: ok('The client.', clientViewBody) },
        errors: [404],
      }),
      patch: admin('clients:write', {
        tags: clientTags,
        operationId: 'updateClient',
        summary: 'Changes a client; jwks or jwks_uri replace its keys',
        requestParams: { path: pathParameter('clientId') },
        requestBody: jsonBody(patchClientBody),
        success: { 200: ok('The client.', clientViewBody) },
        errors: [404],
      }),
      delete: admin('clients:write', {
        tags: clientTags,
        operationId: 'deleteClient',
        summary: 'Deletes a client',
        requestParams: { path: pathParameter('clientId') },
        success: { 204: ok('Deleted.') },
        errors: [404, 413, 415],
      }),
    },
    '/admin/v1/clients/{clientId}/secret': {
      post: admin('clients:write', {
        tags: clientTags,
        operationId: 'rotateClientSecret',
        summary: 'A new secret; the previous one keeps working for the grace period',
        requestParams: { path: pathParameter('clientId') },
        requestBody: jsonBody(rotateSecretBody, false),
        success: { 200: ok('The new secret, shown once.', rotatedSecretBody) },
        errors: [404],
      }),
    },
    '/admin/v1/users': {
      get: admin('users:read', {
        tags: ['Admin: users'],
        operationId: 'listUsers',
        summary: 'Users, in pages',
        requestParams: { query: listUsersQuery },
        success: { 200: ok('A page of users.', userPageBody) },
      }),
    },
    '/admin/v1/users/{userId}': {
      patch: admin('users:write', {
        tags: ['Admin: users'],
        operationId: 'updateUser',
        summary: "Changes a user's role, tenant or disabled state (disabling revokes every session)",
        requestParams: { path: pathParameter('userId') },
        requestBody: jsonBody(patchUserBody),
        success: { 200: ok('The user.', publicUserBody) },
        errors: [404],
      }),
    },
    '/admin/v1/tenants': {
      get: admin('tenants:read', { tags: ['Admin: tenants'], operationId: 'listTenants', summary: 'Every tenant', success: { 200: ok('The tenants.', tenantListBody) } }),
      post: admin('tenants:write', {
        tags: ['Admin: tenants'],
        operationId: 'createTenant',
        summary: 'Creates a tenant',
        requestBody: jsonBody(createTenantBody),
        success: { 201: ok('The tenant.', tenantBody) },
        errors: [409],
      }),
    },
    '/admin/v1/tenants/{tenantId}': {
      get: admin('tenants:read', {
        tags: ['Admin: tenants'],
        operationId: 'getTenant',
        summary: 'One tenant',
        requestParams: { path: pathParameter('tenantId') },
        success: { 200: ok('The tenant.', tenantBody) },
        errors: [404],
      }),
      delete: admin('tenants:write', {
        tags: ['Admin: tenants'],
        operationId: 'disableTenant',
        summary: 'Disables a tenant (never deleted): its users and clients get no more tokens',
        requestParams: { path: pathParameter('tenantId') },
        success: { 200: ok('The tenant, disabled.', tenantBody) },
        errors: [404, 413, 415],
      }),
    },
    '/admin/v1/audit': {
      get: admin('audit:read', {
        tags: ['Admin: audit'],
        operationId: 'listAuditEvents',
        summary: 'Audit events, newest first',
        requestParams: { query: auditQuery },
        success: { 200: ok('A page of events.', auditPageBody) },
      }),
    },
    '/admin/v1/limits': {
      get: admin('limits:read', { tags: ['Admin: limits'], operationId: 'listLimitBlocks', summary: 'The abuse-limit blocks in force', success: { 200: ok('The blocks.', limitsBody) } }),
    },
    '/admin/v1/limits/{key}': {
      delete: admin('limits:write', {
        tags: ['Admin: limits'],
        operationId: 'clearLimitBlock',
        summary: 'Lifts a block on every instance and forgets its count',
        requestParams: { path: limitKeyParameter },
        success: { 200: ok('Cleared.', clearedLimitBody) },
        errors: [404, 413, 415],
      }),
    },
    ...apiKeyRoutes('/admin/v1/api-keys'),
    '/admin/v1/resources': {
      get: admin('resources:read', {
        tags: ['Admin: resources'],
        operationId: 'listResources',
        summary: 'Every registered resource, in URL order',
        success: { 200: ok('The resources.', resourceListBody) },
      }),
      post: admin('resources:write', {
        tags: ['Admin: resources'],
        operationId: 'createResource',
        summary: 'Registers a resource (an API users may grant applications access to)',
        requestBody: jsonBody(createResourceBody),
        success: { 201: ok('The resource.', resourceBody) },
        errors: [409],
      }),
    },
    '/admin/v1/resources/{url}': {
      get: admin('resources:read', {
        tags: ['Admin: resources'],
        operationId: 'getResource',
        summary: 'One resource, by its URL percent-encoded as one path segment',
        requestParams: { path: resourceUrlParam },
        success: { 200: ok('The resource.', resourceBody) },
        errors: [404],
      }),
      delete: admin('resources:write', {
        tags: ['Admin: resources'],
        operationId: 'deleteResource',
        summary: 'Deletes a resource; tokens already issued for it keep their aud until they expire',
        requestParams: { path: resourceUrlParam },
        success: { 200: ok('The deleted resource.', resourceBody) },
        errors: [404, 413, 415],
      }),
    },
  };
}

/** The document for a server whose public URL is `config.issuer`. */
export function buildOpenApiDocument(config: Pick<Config, 'issuer'>): oas31.OpenAPIObject {
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'RS256 identity provider',
      version: '1.0.0',
      description:
        'OAuth 2.0 client credentials, token exchange of API keys, introspection and revocation (`/oauth/*`, form-encoded, RFC 6749 §5.2 errors ' +
        '`{error, error_description}`); user accounts and their API keys (`/auth/v1`); the admin API (`/admin/v1`, admin tokens). ' +
        'The JSON APIs answer errors as `{error, message}`, take `Content-Type: application/json` bodies of at most 64 KiB, and match routes exactly ' +
        '(case-sensitive, no trailing slash). Prometheus metrics are served on a separate management listener, not here.',
    },
    servers: [{ url: config.issuer }],
    tags: [
      { name: 'OAuth' },
      { name: 'Discovery' },
      { name: 'Health' },
      { name: 'User accounts' },
      { name: 'API keys' },
      { name: 'Admin' },
      { name: 'Admin: signing keys' },
      { name: 'Admin: clients' },
      { name: 'Admin: users' },
      { name: 'Admin: tenants' },
      { name: 'Admin: audit' },
      { name: 'Admin: limits' },
      { name: 'Admin: API keys' },
      { name: 'Admin: resources' },
    ],
    components: {
      responses: { OAuthMethodNotAllowed: METHOD_NOT_ALLOWED },
      securitySchemes: {
        clientSecretBasic: { type: 'http', scheme: 'basic', description: 'client_secret_basic: client id and secret, each form-urlencoded, then Base64 (RFC 6749 §2.3.1).' },
        userAccessToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A user access token from /auth/v1/signup or /auth/v1/token.' },
        applicationAccessToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token of the authorization-code flow (grant_type=authorization_code or its refresh).' },
        adminToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An admin token (`idp admin-token issue`), checked against its row on every request.' },
      },
    },
    paths: paths(),
  });
}

/** The document as served: its bytes and a strong ETag, computed once. */
export interface OpenApiSnapshot {
  document: oas31.OpenAPIObject;
  body: Buffer;
  etag: string;
}

export function openApiSnapshot(config: Pick<Config, 'issuer'>): OpenApiSnapshot {
  const document = buildOpenApiDocument(config);
  const body = Buffer.from(JSON.stringify(document));
  return { document, body, etag: `"${crypto.createHash('sha256').update(body).digest('base64url')}"` };
}
