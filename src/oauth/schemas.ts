import { z } from 'zod';
import { CLIENT_ASSERTION_ALGORITHMS } from '../clients/jwks';
import type { PublicJwk } from '../keys/jwks';
import { JWT_BEARER_ASSERTION_TYPE } from './client-assertion';
import { PUBLIC_CLIENT_AUTH_METHODS, type ClientAuthMethod } from './client-auth';
import { targetFields } from '../http/fields';
import { InvalidRequest, OAUTH_ERROR_CODES } from './errors';
import type { FormParams, TokenResponse } from './types';

/**
 * The OAuth endpoints' requests and responses (RFC 6749, 7662, 7009, 8414; docs/http-api.md "HTTP", as zod schemas:
 * the OpenAPI document is generated from them (src/http/openapi.ts), and the endpoints check the
 * parameters they require with them (`readFormParams`). The form is read by hand (./form.ts): each
 * parameter at most once, empty values dropped, so every value is a non-empty string.
 *
 * POST /oauth/token with grant_type=client_credentials does not parse its form with zod: it is the
 * route services call thousands of times a second, and it has no required parameter beyond
 * grant_type (checked by the endpoint). A safeParse of its form costs about 0.5 µs against 20 ns for
 * the three Map reads (measured on the development machine) and would check nothing more, so its
 * schema only documents it; the grant reads the three optional parameters it needs.
 * Other grants add their request schemas beside their handlers (src/users/schemas.ts,
 * src/api-keys/schemas.ts).
 */


/** RFC 6749 §5.2 error body of /oauth/* (and of the JWKS before the keys are loaded). */
export const oauthErrorBody = z
  .object({
    error: z.enum(OAUTH_ERROR_CODES),
    error_description: z.string().meta({ description: 'Never a secret or an internal detail; the precise cause of a refused client is logged only.' }),
  })
  .meta({ id: 'OAuthError', description: 'RFC 6749 §5.2 error response. Sent with Cache-Control: no-store and Pragma: no-cache.' });

/**
 * Client authentication in the form (RFC 6749 §2.3.1 `client_secret_post`, RFC 7523 `private_key_jwt`).
 * Exactly one method per request: these members, or the Basic header (`client_secret_basic`).
 */
export const clientAuthenticationFields = {
  client_id: z.string().optional().meta({ description: 'client_secret_post: the client id. private_key_jwt: optional, must be the assertion\'s sub.' }),
  client_secret: z.string().optional().meta({ description: 'client_secret_post: the secret (never together with the Basic header).' }),
  client_assertion_type: z.literal(JWT_BEARER_ASSERTION_TYPE).optional().meta({ description: 'private_key_jwt.' }),
  client_assertion: z
    .string()
    .optional()
    .meta({ description: `private_key_jwt: a JWT (${CLIENT_ASSERTION_ALGORITHMS.join(', ')}) signed by one of the client's registered keys; iss = sub = client_id, aud the issuer or the endpoint's URL, exp at most 5 minutes ahead, a unique jti.` }),
};


/** `grant_type=client_credentials` (documentation only; see the module comment). */
export const clientCredentialsTokenRequest = z
  .object({ grant_type: z.literal('client_credentials'), ...targetFields, ...clientAuthenticationFields })
  .meta({ id: 'ClientCredentialsTokenRequest', description: 'RFC 6749 §4.4. The client authenticates with exactly one method (Basic header, client_secret_post or private_key_jwt).' });

/** RFC 6749 §5.1 success body of the client-credentials grant. */
export const clientCredentialsTokenResponse = z
  .object({
    access_token: z.string().meta({ description: 'An RS256 JWT (typ at+jwt, RFC 9068).' }),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().positive(),
    scope: z.string(),
  })
  .meta({ id: 'ClientCredentialsTokenResponse' });

/** POST /oauth/introspect (RFC 7662 §2.1). */
export const introspectionRequest = z
  .object({
    token: z.string({ error: 'missing token' }),
    token_type_hint: z.string().optional().meta({ description: 'Accepted and ignored: every kind of token is recognised by its shape.' }),
    ...clientAuthenticationFields,
  })
  .meta({ id: 'IntrospectionRequest' });

/** POST /oauth/revoke (RFC 7009 §2.1). */
export const revocationRequest = z
  .object({
    token: z.string({ error: 'missing token' }),
    token_type_hint: z.string().optional().meta({ description: 'Accepted and ignored.' }),
    ...clientAuthenticationFields,
  })
  .meta({ id: 'RevocationRequest' });

/** RFC 7662 §2.2: the members an active answer may carry, by kind of token (client, user, exchanged access tokens, refresh tokens, API keys). */
export const activeIntrospection = z
  .object({
    active: z.literal(true),
    token_type: z.enum(['Bearer', 'refresh_token', 'api_key']),
    scope: z.string().optional(),
    client_id: z.string().optional(),
    sub: z.string().optional(),
    aud: z.union([z.string(), z.array(z.string())]).optional(),
    iss: z.string().optional(),
    exp: z.number().int().optional(),
    iat: z.number().int().optional(),
    nbf: z.number().int().optional(),
    jti: z.string().optional(),
    sid: z.string().optional().meta({ description: 'user tokens: the session' }),
    email: z.string().optional().meta({ description: 'user access tokens' }),
    role: z.string().optional().meta({ description: 'user access tokens' }),
    tenant_id: z.string().optional().meta({ description: 'absent: the token has no tenant' }),
    api_key_id: z.string().optional().meta({ description: 'exchanged access tokens: the API key exchanged' }),
    act: z
      .object({ sub: z.string() })
      .catchall(z.unknown())
      .optional()
      .meta({ description: 'delegated tokens (RFC 8693 §4.1): the current actor\'s client id, the one before it nested in act, and so on' }),
  })
  .meta({ id: 'ActiveIntrospection' });

/** Expired, revoked, forged, foreign and unknown tokens alike: this and nothing else. */
export const inactiveIntrospection = z.object({ active: z.literal(false) }).meta({ id: 'InactiveIntrospection' });

export const introspectionResponse = z.union([activeIntrospection, inactiveIntrospection]);

/**
 * The parameters `schema` describes, read from the form: the first problem is `invalid_request` with
 * the schema's own message (e.g. "missing token").
 */
export function readFormParams<T>(schema: z.ZodType<T>, params: FormParams): T {
  const result = schema.safeParse(Object.fromEntries(params));
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new InvalidRequest(issue?.message ?? 'invalid parameters');
  }
  return result.data;
}

/** One public key of the JWKS: exactly these members (an allow-list). */
export const publicJwk = z
  .object({
    kty: z.literal('RSA'),
    use: z.literal('sig'),
    alg: z.literal('RS256'),
    kid: z.string().meta({ description: 'RFC 7638 thumbprint (base64url SHA-256)' }),
    n: z.string(),
    e: z.string(),
    x5c: z.tuple([z.string()]).meta({ description: 'a self-signed certificate of the key (DER, base64)' }),
    'x5t#S256': z.string(),
  })
  .meta({ id: 'PublicJwk' });

/** GET /.well-known/jwks.json: current, then next, then previous keys. */
export const jwksBody = z.object({ keys: z.array(publicJwk) }).meta({ id: 'Jwks' });

const authMethods = z.array(z.enum(PUBLIC_CLIENT_AUTH_METHODS as [ClientAuthMethod, ...ClientAuthMethod[]]));
const assertionAlgorithms = z.array(z.enum(CLIENT_ASSERTION_ALGORITHMS));

/** RFC 8414 metadata, at /.well-known/oauth-authorization-server and /.well-known/openid-configuration. */
export const authorizationServerMetadataBody = z
  .object({
    issuer: z.string(),
    jwks_uri: z.string(),
    token_endpoint: z.string(),
    introspection_endpoint: z.string(),
    revocation_endpoint: z.string(),
    grant_types_supported: z.array(z.string()),
    token_endpoint_auth_methods_supported: authMethods,
    token_endpoint_auth_signing_alg_values_supported: assertionAlgorithms,
    introspection_endpoint_auth_methods_supported: authMethods,
    introspection_endpoint_auth_signing_alg_values_supported: assertionAlgorithms,
    revocation_endpoint_auth_methods_supported: authMethods,
    revocation_endpoint_auth_signing_alg_values_supported: assertionAlgorithms,
    scopes_supported: z
      .array(z.string())
      .max(100)
      .meta({ description: 'openid, email, offline_access, the scopes of registered resources and of enabled clients without a tenant, in code-point order, at most 100' }),
    client_id_metadata_document_supported: z.boolean().meta({ description: 'A client_id that is an https URL names its client ID metadata document (IDP_CLIENT_ID_METADATA_DOCUMENTS).' }),
    response_types_supported: z.array(z.literal('code')),
    authorization_endpoint: z.string(),
    userinfo_endpoint: z.string(),
    end_session_endpoint: z.string(),
    response_modes_supported: z.array(z.literal('query')),
    code_challenge_methods_supported: z.array(z.literal('S256')),
    authorization_response_iss_parameter_supported: z.literal(true),
    subject_types_supported: z.array(z.literal('public')),
    id_token_signing_alg_values_supported: z.array(z.literal('RS256')),
    claims_supported: z.array(z.string()),
    prompt_values_supported: z.array(z.string()),
    request_parameter_supported: z.literal(false),
    request_uri_parameter_supported: z.literal(false),
    registration_endpoint: z.string().optional().meta({ description: 'RFC 7591 dynamic client registration, when IDP_DYNAMIC_REGISTRATION is token or open.' }),
  })
  .meta({ id: 'AuthorizationServerMetadata', description: 'RFC 8414, and OpenID Connect Discovery 1.0 (the same document at both addresses).' });

// The schemas and the types the code builds must not drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const checks: [Same<z.output<typeof publicJwk>, PublicJwk>, z.output<typeof clientCredentialsTokenResponse> extends TokenResponse ? true : false] = [true, true];
void checks;
