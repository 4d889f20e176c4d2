import { z } from 'zod';
import { PASSWORD_MAX_BYTES, PASSWORD_MIN_LENGTH } from './passwords';
import { instantBody } from '../http/fields';
import type { PublicUser } from './repository';

/**
 * The requests and responses of /auth/v1 (docs/http-api.md "HTTP" and of the refresh-token grant at /oauth/token,
 * as zod schemas: the routes read their input with them, and the OpenAPI document
 * (src/http/openapi.ts) is generated from them.
 */

/** `{email, password}` of sign-up and sign-in; the address and the password's bounds are checked next (readCredentials). */
export const credentialsBody = z
  .object({
    email: z.string().meta({ description: 'Trimmed and lower-cased; at most 254 characters.', format: 'email' }),
    password: z.string().meta({ description: `At least ${PASSWORD_MIN_LENGTH} characters at sign-up (else 422 weak_password), at most ${PASSWORD_MAX_BYTES} bytes of UTF-8.` }),
  })
  .meta({ id: 'Credentials' });

/** `{refresh_token}` of `POST /auth/v1/token?grant_type=refresh_token`; anything else is `invalid_grant`. */
export const refreshTokenBody = z.object({ refresh_token: z.string().meta({ description: 'The opaque refresh token of the last sign-in or refresh.' }) }).meta({ id: 'RefreshTokenBody' });

/** The query of `POST /auth/v1/token`. */
export const tokenQuery = z.object({
  grant_type: z.enum(['password', 'refresh_token'], { error: 'grant_type must be "password" (the default) or "refresh_token"' }).default('password'),
});

/** A user as the API shows it: never the password hash. */
export const publicUserBody = z
  .object({
    id: z.uuid(),
    email: z.string(),
    role: z.string(),
    tenant_id: z.string().nullable(),
    created_at: instantBody,
    updated_at: instantBody,
    last_sign_in_at: instantBody.nullable(),
    disabled_at: instantBody.nullable(),
  })
  .meta({ id: 'User' });

/** The session of sign-up, sign-in and refresh (the shape Supabase's GoTrue clients read). */
export const sessionBody = z
  .object({
    access_token: z.string().meta({ description: 'An RS256 JWT (typ at+jwt, token_type "user", scope "user").' }),
    token_type: z.literal('bearer'),
    expires_in: z.number().int().positive(),
    expires_at: z.number().int().meta({ description: 'Unix time, seconds.' }),
    refresh_token: z.string().meta({ description: 'Opaque, single use: rotated on every refresh.' }),
    user: publicUserBody,
  })
  .meta({ id: 'Session' });

/** `grant_type=refresh_token` at /oauth/token: no client authentication (the refresh token is the credential). */
export const refreshTokenGrantRequest = z
  .object({ grant_type: z.literal('refresh_token'), refresh_token: z.string() })
  .meta({
    id: 'RefreshTokenGrantRequest',
    description:
      'RFC 6749 §6, for a user session: the same rotation and reuse rules as /auth/v1/token. A /auth/v1 session\'s refresh token takes no client ' +
      'authentication; one issued to an application (the authorization-code flow) only that client\'s (a public client sends its client_id).',
  });

export const refreshTokenGrantResponse = z
  .object({
    access_token: z.string(),
    token_type: z.literal('Bearer'),
    expires_in: z.number().int().positive(),
    refresh_token: z.string(),
    scope: z.string().meta({ description: '"user" for a /auth/v1 session; the granted scopes for an application\'s.' }),
  })
  .meta({ id: 'RefreshTokenGrantResponse' });

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const check: Same<z.output<typeof publicUserBody>, PublicUser> = true;
void check;
