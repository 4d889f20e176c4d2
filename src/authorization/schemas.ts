import { z } from 'zod';
import { instantBody } from '../http/fields';
import { clientAuthenticationFields } from '../oauth/schemas';
import type { GrantView } from './grants';
import type { CodeTokenResponse } from './tokens';
import type { UserinfoClaims } from './userinfo';

/**
 * The JSON surfaces of the authorization-code flow as zod schemas, for the OpenAPI document
 * (src/http/openapi.ts). The hosted pages are HTML and are described in docs/sign-in.md instead.
 */

/** `grant_type=authorization_code` at POST /oauth/token. */
export const authorizationCodeTokenRequest = z
  .object({
    grant_type: z.literal('authorization_code'),
    code: z.string().meta({ description: 'The code of the authorization response; single use, valid IDP_AUTH_CODE_TTL.' }),
    redirect_uri: z.string().optional().meta({ description: 'Required when the authorization request had it, and then equal to it.' }),
    code_verifier: z.string().meta({ description: 'RFC 7636: the verifier whose base64url SHA-256 is the code_challenge; 43 to 128 characters.' }),
    ...clientAuthenticationFields,
  })
  .meta({
    id: 'AuthorizationCodeTokenRequest',
    description: 'RFC 6749 §4.1.3 with PKCE. The client authenticates as registered; a public client (token_endpoint_auth_method none) sends only client_id.',
  });

export const authorizationCodeTokenResponse = z
  .object({
    access_token: z.string().meta({ description: 'A user access token (typ at+jwt) naming client_id; aud the granted resource(s), else IDP_USER_AUDIENCE.' }),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().positive(),
    scope: z.string(),
    refresh_token: z.string().optional().meta({ description: 'With scope offline_access: opaque, rotated on every use.' }),
    id_token: z.string().optional().meta({ description: 'With scope openid: RS256, typ JWT, aud the client.' }),
  })
  .meta({ id: 'AuthorizationCodeTokenResponse' });

/** GET|POST /oauth/userinfo. */
export const userinfoBody = z
  .object({
    sub: z.string(),
    email: z.string().optional().meta({ description: 'With scope email.' }),
    email_verified: z.boolean().optional().meta({ description: 'With scope email; false: addresses are not verified by this provider.' }),
  })
  .meta({ id: 'UserInfo' });

/** RFC 6750 §3 error body of /oauth/userinfo. */
export const bearerErrorBody = z
  .object({
    error: z.enum(['invalid_request', 'invalid_token', 'insufficient_scope', 'server_error']),
    error_description: z.string(),
  })
  .meta({ id: 'BearerError' });

export const grantBody = z
  .object({
    client_id: z.string(),
    client_name: z.string(),
    scopes: z.array(z.string()),
    resources: z.array(z.string()),
    granted_at: instantBody,
    updated_at: instantBody,
  })
  .meta({ id: 'Grant' });

export const grantListBody = z.object({ grants: z.array(grantBody) }).meta({ id: 'GrantList' });

export const grantClientParam = z.object({ clientId: z.string().meta({ description: 'The client whose consent is withdrawn.' }) });

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const checks: [Same<z.output<typeof grantBody>, GrantView>, Same<z.output<typeof userinfoBody>, UserinfoClaims>, z.output<typeof authorizationCodeTokenResponse> extends CodeTokenResponse ? true : false] = [
  true,
  true,
  true,
];
void checks;
