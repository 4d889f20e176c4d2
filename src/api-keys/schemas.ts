import { z } from 'zod';
import { instantBody, pageQuery, scopesField, targetFields } from '../http/fields';
import { ISSUED_CLIENT_ID } from '../clients/client-id';
import { API_KEY_ID } from './format';
import type { ApiKeyView } from './view';

/**
 * The requests and responses of /auth/v1/api-keys, /admin/v1/api-keys and the token-exchange grant
 * (docs/api-keys.md "API keys", as zod schemas: the routes and the grant read their input with them, and the OpenAPI
 * document (src/http/openapi.ts) is generated from them.
 */

/** RFC 8693 §2.1 grant type, and the one token type it takes and issues (docs/api-keys.md "API keys": the key is presented as an access token). */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';


/** The creation fields both surfaces share: a name, optional scopes, and at most one of `expires_in` (`90d`) and `expires_at`. */
export const creationFields = {
  name: z.string().max(1000),
  scopes: scopesField.optional().meta({ description: 'A subset of the scopes its owner may have; absent means all of them.' }),
  expires_in: z.string().max(20).optional().meta({ description: 'A duration such as 30d or 12h (at most IDP_API_KEY_MAX_TTL); not with expires_at.' }),
  expires_at: z.iso.datetime({ offset: true }).optional().meta({ description: 'An RFC 3339 instant; not with expires_in.' }),
};


const UUID = z.uuid();
const CLIENT_ID = z.string().regex(ISSUED_CLIENT_ID, 'a client id');
const TENANT_ID = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'a tenant id');

/** `POST /auth/v1/api-keys`: a key for the caller. */
export const userCreateApiKeyBody = z.object(creationFields).strict().meta({ id: 'CreateOwnApiKey' });

/** `GET /auth/v1/api-keys`. */
export const userListApiKeysQuery = z.object(pageQuery).strict();

/** `GET /admin/v1/api-keys`. */
export const adminListApiKeysQuery = z.object({ user_id: UUID.optional(), client_id: CLIENT_ID.optional(), tenant_id: TENANT_ID.optional(), ...pageQuery }).strict();

/** `POST /admin/v1/api-keys`: exactly one owner. */
export const adminCreateApiKeyBody = z
  .object({ user_id: UUID.optional(), client_id: CLIENT_ID.optional(), ...creationFields })
  .strict()
  .meta({ id: 'CreateApiKey', description: 'Exactly one of user_id and client_id.' });

/** `POST /admin/v1/api-keys/{id}/revoke`. */
export const revokeApiKeyBody = z.object({ reason: z.string().min(1).max(500).optional() }).strict().meta({ id: 'RevokeApiKey' });

/** The `{id}` path parameter (anything else is a 404 without a query). */
export const apiKeyIdParam = z.object({ id: z.string().regex(API_KEY_ID) });


/** An API key as every list and show prints it: never the key, never its hash. */
export const apiKeyViewBody = z
  .object({
    id: z.string(),
    name: z.string(),
    user_id: z.string().nullable(),
    client_id: z.string().nullable(),
    tenant_id: z.string().nullable(),
    scopes: z.array(z.string()),
    status: z.enum(['active', 'expired', 'revoked']).meta({ description: "From the key alone; a disabled owner makes an active key inactive too." }),
    expires_at: instantBody.nullable(),
    created_at: instantBody,
    created_by: z.string(),
    last_used_at: instantBody.nullable(),
    revoked_at: instantBody.nullable(),
    revoked_by: z.string().nullable(),
  })
  .meta({ id: 'ApiKey' });

/** What creation answers, once: the view and the key. */
export const createdApiKeyBody = apiKeyViewBody
  .extend({ key: z.string().meta({ description: 'idpk_<id>_<secret>: shown here only; only its hash is stored.' }) })
  .meta({ id: 'CreatedApiKey' });

export const apiKeyPageBody = z.object({ api_keys: z.array(apiKeyViewBody), next_cursor: z.string().nullable() }).meta({ id: 'ApiKeyPage' });

/** RFC 8693 token exchange of an API key at /oauth/token; no client authentication (the key is the credential). */
export const tokenExchangeRequest = z
  .object({
    grant_type: z.literal(TOKEN_EXCHANGE_GRANT),
    subject_token: z.string({ error: 'missing subject_token (the API key)' }).meta({ description: 'The API key, idpk_<id>_<secret>.' }),
    subject_token_type: z.literal(ACCESS_TOKEN_TYPE, {
      error: (issue) => (issue.input === undefined ? 'missing subject_token_type' : `subject_token_type must be ${ACCESS_TOKEN_TYPE} (an API key)`),
    }),
    requested_token_type: z.literal(ACCESS_TOKEN_TYPE, { error: `requested_token_type: only ${ACCESS_TOKEN_TYPE} is issued` }).optional(),
    ...targetFields,
  })
  .meta({ id: 'TokenExchangeRequest', description: 'RFC 8693: an API key for a short-lived JWT of its owner. Client credentials and actor_token are refused.' });

/** RFC 8693 §2.2.1 success body. */
export const tokenExchangeResponse = z
  .object({
    access_token: z.string(),
    issued_token_type: z.literal(ACCESS_TOKEN_TYPE),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().positive(),
    scope: z.string(),
  })
  .meta({ id: 'TokenExchangeResponse' });

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const check: Same<z.output<typeof apiKeyViewBody>, ApiKeyView> = true;
void check;
