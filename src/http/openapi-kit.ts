import { z } from 'zod';
import type { ZodOpenApiOperationObject, ZodOpenApiPathsObject, ZodOpenApiRequestBodyObject, ZodOpenApiResponseObject, ZodOpenApiResponsesObject } from 'zod-openapi';
import { oauthErrorBody } from '../oauth/schemas';
import { apiErrorBody } from './schemas';

/**
 * The pieces every capability's OpenAPI fragment is written with (the model of Logto's per-route
 * OpenAPI files): the error responses of the OAuth endpoints and of the JSON APIs, the admin
 * operation (one permission, 401/403), bodies and successes. src/http/openapi.ts assembles the served
 * document from the fragments of the capabilities the composition root mounts.
 */

/** What one capability adds to the document. */
export interface OpenApiFragment {
  /** Tags its operations use, in the order they are listed. */
  tags?: readonly string[];
  paths?: ZodOpenApiPathsObject;
  /** Its grants at POST /oauth/token: the form (a `grant_type` literal) and the success body. */
  tokenGrants?: ReadonlyArray<{ request: z.ZodObject; response: z.ZodType; description: string }>;
}

export const OPENAPI_PATH = '/openapi.json';

export const FORM = 'application/x-www-form-urlencoded';

export const json = (schema: z.ZodType) => ({ 'application/json': { schema } });

export const retryAfter = z.object({ 'Retry-After': z.string().meta({ description: 'seconds' }) });

// ---- /oauth/*: RFC 6749 §5.2 errors, Cache-Control: no-store on every answer.

export const noStore = z.object({
  'Cache-Control': z.literal('no-store'),
  Pragma: z.literal('no-cache'),
});

export function oauthError(id: string, description: string, headers?: z.ZodObject): ZodOpenApiResponseObject {
  return { id, description, headers: headers ? noStore.extend(headers.shape) : noStore, content: json(oauthErrorBody) };
}

export const OAUTH_ERRORS = {
  400: oauthError('OAuthBadRequest', 'invalid_request, invalid_grant, invalid_scope, invalid_target, unauthorized_client or unsupported_grant_type.'),
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
export const METHOD_NOT_ALLOWED = oauthError('OAuthMethodNotAllowed', 'invalid_request: any method but POST at /oauth/*.', z.object({ Allow: z.literal('POST') }));

export const CLIENT_AUTHENTICATION =
  'Client authentication: exactly one of the Basic header (`client_secret_basic`, id and secret form-urlencoded then Base64, RFC 6749 §2.3.1), ' +
  '`client_id` and `client_secret` in the form (`client_secret_post`), or `client_assertion_type` and `client_assertion` (`private_key_jwt`, RFC 7523).';

export function formBody(schema: z.ZodType): ZodOpenApiRequestBodyObject {
  return { required: true, content: { [FORM]: { schema } } };
}

export function oauthOperation(operation: Omit<ZodOpenApiOperationObject, 'responses' | 'tags'>, ok: ZodOpenApiResponseObject): ZodOpenApiOperationObject {
  return {
    tags: ['OAuth'],
    // Basic, or credentials in the form (described by the body), or none (grants that take none).
    security: [{ clientSecretBasic: [] }, {}],
    ...operation,
    responses: { 200: ok, ...OAUTH_ERRORS },
  };
}

// ---- /auth/v1 and /admin/v1: {"error", "message"}.

export const API_ERRORS = {
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
export function apiErrors(...statuses: Array<keyof typeof API_ERRORS>): ZodOpenApiResponsesObject {
  const responses: ZodOpenApiResponsesObject = {};
  for (const status of [...new Set([400, ...statuses, 500, 503] as const)].sort((a, b) => a - b)) {
    responses[`${status}`] = API_ERRORS[status];
  }
  return responses;
}

export function ok(description: string, schema?: z.ZodType): ZodOpenApiResponseObject {
  return schema ? { description, content: json(schema) } : { description };
}

export function jsonBody(schema: z.ZodType, required = true): ZodOpenApiRequestBodyObject {
  return { required, content: json(schema) };
}

/** An admin operation: one permission, 401 and 403, and a body read only once the caller is known. */
export function admin(
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

