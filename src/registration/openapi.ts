import { z } from 'zod';
import type { ZodOpenApiResponseObject } from 'zod-openapi';
import { json, noStore, retryAfter, type OpenApiFragment } from '../http/openapi-kit';
import { apiErrorBody } from '../http/schemas';
import { registrationErrorBody, registrationRequest, registrationResponse } from './schemas';
import { REGISTER_PATH } from './routes';

function refusal(description: string, headers?: z.ZodObject): ZodOpenApiResponseObject {
  return { description, headers: headers ? noStore.extend(headers.shape) : noStore, content: json(registrationErrorBody) };
}

const challenge = z.object({ 'WWW-Authenticate': z.string().meta({ description: 'RFC 6750 §3: Bearer, with error and error_description when a token was presented.' }) });

/**
 * POST /oauth/register in the OpenAPI document (src/http/openapi.ts): only when registration is on
 * (IDP_DYNAMIC_REGISTRATION `token` or `open`), and with the initial access token's answers in
 * `token` mode.
 */
export function registrationOpenApi(mode: 'off' | 'token' | 'open'): OpenApiFragment {
  if (mode === 'off') return {};
  const token = mode === 'token';
  return {
    tags: ['OAuth'],
    paths: {
      [REGISTER_PATH]: {
        post: {
          tags: ['OAuth'],
          operationId: 'registerClient',
          summary: 'RFC 7591 dynamic client registration of an authorization-code client',
          description:
            'Registers a third-party client of the authorization-code flow (never client_credentials, never first-party). ' +
            `At most IDP_REGISTRATIONS_PER_IP registrations per address per IDP_REGISTRATION_WINDOW (20 an hour). ${
              token ? 'Needs an initial access token: an admin token with the permission `clients:register`.' : 'Open: no initial access token.'
            } A client unused for IDP_DYNAMIC_CLIENT_TTL is deleted.`,
          security: token ? [{ adminToken: [] }] : [],
          requestBody: { required: true, content: json(registrationRequest) },
          responses: {
            201: { description: 'Registered.', headers: noStore, content: json(registrationResponse) },
            400: refusal('invalid_redirect_uri, invalid_client_metadata (malformed body or metadata)' + (token ? ', or invalid_request (a malformed Authorization header)' : '') + '. Nothing was registered.'),
            ...(token && {
              401: refusal('invalid_request (no initial access token: a challenge without error) or invalid_token.', challenge),
              403: refusal('insufficient_scope: the admin token lacks clients:register.', challenge),
            }),
            413: refusal('invalid_request: the body is over 64 KiB; the connection is closed.'),
            415: refusal('invalid_request: the body must be UTF-8 JSON sent with Content-Type: application/json.'),
            429: refusal('temporarily_unavailable: too many registrations from this address.', retryAfter),
            500: refusal('server_error: the request id is in X-Request-Id, the detail in the log.'),
            503: { description: 'temporarily_unavailable: the service is starting (as every route then, {error, message}).', headers: retryAfter, content: json(apiErrorBody) },
          },
        },
      },
    },
  };
}
