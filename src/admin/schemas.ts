import { z } from 'zod';
import { ISSUED_CLIENT_ID } from '../clients/client-id';
import { CLIENT_GRANT_TYPES } from '../clients/grant-types';
import { MAX_REDIRECT_URI_LENGTH, MAX_REDIRECT_URIS } from '../clients/redirect-uris';
import type { ClientView } from '../clients/view';
import type { KeyChange } from '../keys/lifecycle';
import type { KeyView } from '../keys/view';
import type { BlockView } from '../ratelimit/operators';
import { CURSOR_MAX_LENGTH, type CursorKind } from '../http/cursor';
import { instantBody, scopesField } from '../http/fields';
import { TENANT_ID } from '../tenants/repository';
import { publicUserBody } from '../users/schemas';

/**
 * The requests and responses of /admin/v1 (docs/http-api.md "HTTP", as zod schemas: the routes (./routes.ts) read
 * their input with them, and the OpenAPI document (src/http/openapi.ts) is generated from them.
 * The API keys of /admin/v1/api-keys are in src/api-keys/schemas.ts.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The path parameters of the admin API and what each must look like; checked before anything reads
 * the database, so a malformed id is a 400 and a well-formed unknown one a 404. A parameter not
 * listed here must still be printable text.
 */
export const PATH_PARAMETERS = {
  kid: { pattern: /^[A-Za-z0-9_-]{1,128}$/, what: 'a key id (base64url)' },
  clientId: { pattern: ISSUED_CLIENT_ID, what: 'a client id (base64url)' },
  userId: { pattern: UUID, what: 'a user id (a UUID)' },
  tenantId: { pattern: TENANT_ID, what: 'a tenant id (letters, digits, _ . -, at most 64)' },
} as const satisfies Record<string, { pattern: RegExp; what: string }>;

/** The `{name}` path parameter as an OpenAPI parameter object. */
export function pathParameter<N extends keyof typeof PATH_PARAMETERS>(name: N) {
  const { pattern, what } = PATH_PARAMETERS[name];
  return z.object({ [name]: z.string().regex(pattern).meta({ description: what }) } as Record<N, z.ZodString>);
}

/** `DELETE /admin/v1/limits/{key}`: a limit key as GET /admin/v1/limits lists it. */
export const limitKeyParameter = z.object({ key: z.string().meta({ description: 'a limit key such as oauth:ip:203.0.113.7, as GET /admin/v1/limits lists it' }) });

const pageLimit = z.coerce.number().int().min(1).max(500).default(100);
const cursorField = (kind: CursorKind) => z.string().max(CURSOR_MAX_LENGTH[kind]).optional().meta({ description: 'The next_cursor of the previous page, unchanged.' });

/** A date-time with offset (RFC 3339) that is a real instant: `2026-02-31T00:00:00Z` is refused. */
const instant = z.iso.datetime({ offset: true }).transform((text, ctx) => {
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) {
    ctx.addIssue({ code: 'custom', message: 'not a real date and time' });
    return z.NEVER;
  }
  return date;
});

/** `POST /admin/v1/keys/rotate` (the body is optional). */
export const rotateKeysBody = z
  .object({
    force: z.boolean().default(false).meta({ description: 'Promote next whatever its age (verifiers with an old JWKS reject new tokens until they refresh it).' }),
    reason: z.string().max(500).optional(),
  })
  .default({ force: false })
  .meta({ id: 'RotateKeys' });

/** `POST /admin/v1/keys/{kid}/revoke` (the body is optional). */
export const revokeKeyBody = z
  .object({ reason: z.string().min(1).max(500).optional() })
  .default({})
  .meta({ id: 'RevokeKey' });

const authMethod = z.enum(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']);
const uriList = (what: string) =>
  z
    .array(z.string().max(MAX_REDIRECT_URI_LENGTH))
    .max(MAX_REDIRECT_URIS)
    .meta({
      description: `${what}: exact strings (a loopback http://127.0.0.1 or http://[::1] redirect matches on any port); https, http only for loopback (and localhost outside production), or a private-use scheme such as com.example.app:/cb; no fragment, no wildcard.`,
    });
const grantTypesField = z
  .array(z.enum(CLIENT_GRANT_TYPES as [string, ...string[]]))
  .min(1)
  .max(CLIENT_GRANT_TYPES.length)
  .meta({
    description:
      'The grants the client may use at /oauth/token. Default: client_credentials for a client without redirect URIs, authorization_code and refresh_token for one with them. A public client never gets client_credentials.',
  });
const firstPartyField = z.boolean().meta({ description: 'A first-party client is never asked for the user\'s consent.' });
const jwksField = z
  .unknown()
  .optional()
  .meta({ description: 'private_key_jwt: the client\'s public keys, a JWKS {"keys": [...]} of RS256, PS256 or ES256 keys (no private member). Not with jwks_uri.' });
const jwksUriField = z.string().max(2048).optional().meta({ description: 'private_key_jwt: an https URL where the client publishes its JWKS. Not with jwks.' });
const audiencesField = z.array(z.string().max(2048)).max(50).optional().meta({ description: "Allowed audiences, the first the default; never the identity provider's own." });
const tokenTtlField = z.number().int().positive().nullable().optional().meta({ description: 'Seconds; at most IDP_CLIENT_TOKEN_TTL. null: the default.' });

/** `POST /admin/v1/clients`. */
export const createClientBody = z
  .object({
    name: z.string().max(200),
    scopes: scopesField,
    audiences: audiencesField,
    tenant_id: z.string().regex(TENANT_ID, 'a tenant id').nullable().optional(),
    token_ttl_seconds: tokenTtlField,
    token_endpoint_auth_method: authMethod
      .optional()
      .meta({ description: 'private_key_jwt needs jwks or jwks_uri; none makes a public client (no credentials: it needs redirect_uris); otherwise a secret is generated.' }),
    jwks: jwksField,
    jwks_uri: jwksUriField,
    redirect_uris: uriList('Redirect URIs of the authorization-code flow').optional(),
    post_logout_redirect_uris: uriList('Where RP-initiated logout may return to').optional(),
    grant_types: grantTypesField.optional(),
    first_party: firstPartyField.optional(),
  })
  .strict()
  .meta({ id: 'CreateClient' });

/** `PATCH /admin/v1/clients/{clientId}`: jwks or jwks_uri replace the keys (a client with a secret loses it). */
export const patchClientBody = z
  .object({
    name: z.string().max(200).optional(),
    scopes: scopesField.optional(),
    audiences: audiencesField,
    token_ttl_seconds: tokenTtlField,
    disabled: z.boolean().optional(),
    token_endpoint_auth_method: z.literal('private_key_jwt').optional(),
    jwks: jwksField,
    jwks_uri: jwksUriField,
    redirect_uris: uriList('Replaces the redirect URIs').optional(),
    post_logout_redirect_uris: uriList('Replaces the post-logout redirect URIs').optional(),
    grant_types: grantTypesField.nullable().optional().meta({ description: 'Replaces the grant types; null: back to the default by rule.' }),
    first_party: firstPartyField.optional(),
  })
  .strict()
  .meta({ id: 'PatchClient' });

/** `POST /admin/v1/clients/{clientId}/secret`. */
export const rotateSecretBody = z
  .object({ grace: z.string().max(20).optional().meta({ description: 'How long the previous secret keeps working: 0s to 30d; default IDP_CLIENT_SECRET_GRACE.' }) })
  .strict()
  .meta({ id: 'RotateClientSecret' });

/** `GET /admin/v1/clients`: newest first. */
export const listClientsQuery = z.object({ limit: pageLimit, cursor: cursorField('clients') });

/** `GET /admin/v1/users`. */
export const listUsersQuery = z.object({
  email: z.string().max(254).optional(),
  tenant_id: z
    .union([z.literal(''), z.string().regex(TENANT_ID, 'a tenant id')])
    .optional()
    .meta({ description: 'Users of this tenant; empty: users without a tenant.' }),
  limit: pageLimit,
  cursor: cursorField('users'),
});

/** `PATCH /admin/v1/users/{userId}`; `disabled: true` also revokes every session of the user. */
export const patchUserBody = z
  .object({
    role: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'lower-case letters, digits, _ or -, at most 32').optional(),
    tenant_id: z.string().regex(TENANT_ID, 'a tenant id').nullable().optional(),
    disabled: z.boolean().optional(),
  })
  .strict()
  .meta({ id: 'PatchUser' });

/** `POST /admin/v1/tenants`. */
export const createTenantBody = z
  .object({
    id: z.string().regex(TENANT_ID, 'letters, digits, _ . -, at most 64').optional().meta({ description: 'Default: a new UUID.' }),
    name: z.string().max(1000),
  })
  .strict()
  .meta({ id: 'CreateTenant' });

/** `GET /admin/v1/audit`: newest first. */
export const auditQuery = z.object({
  actor: z.string().max(200).optional(),
  action: z.string().max(100).optional(),
  target: z.string().max(300).optional(),
  since: instant.optional().meta({ description: 'RFC 3339; events at or after it.' }),
  until: instant.optional().meta({ description: 'RFC 3339; events before it.' }),
  limit: pageLimit,
  cursor: cursorField('audit'),
});

// Responses.


export const keyViewBody = z
  .object({
    kid: z.string(),
    state: z.enum(['next', 'current', 'previous', 'retired', 'revoked']),
    alg: z.string(),
    bits: z.number().int(),
    created_at: instantBody,
    published_at: instantBody.nullable(),
    activated_at: instantBody.nullable(),
    deactivated_at: instantBody.nullable(),
    retired_at: instantBody.nullable(),
    mek_id: z.string().nullable(),
  })
  .meta({ id: 'SigningKey' });

export const keyListBody = z.object({ keys: z.array(keyViewBody) }).meta({ id: 'SigningKeyList' });

const keyChangeBody = z
  .object({ action: z.enum(['created-current', 'created-next', 'promoted', 'deactivated', 'retired', 'revoked']), kid: z.string() })
  .meta({ id: 'KeyChange' });

export const rotateKeysResponse = z.object({ rotated: z.literal(true), changes: z.array(keyChangeBody) }).meta({ id: 'KeysRotated' });

export const revokeKeyResponse = z
  .object({
    revoked: z.string(),
    previous_state: z.string(),
    changes: z.array(keyChangeBody),
    verifier_cache_seconds: z.number().int().meta({ description: 'How long verifiers honouring the JWKS Cache-Control may still trust the key.' }),
  })
  .meta({ id: 'KeyRevoked' });

export const clientViewBody = z
  .object({
    client_id: z.string(),
    name: z.string(),
    scopes: z.array(z.string()),
    audiences: z.array(z.string()),
    tenant_id: z.string().nullable(),
    token_ttl_seconds: z.number().int().nullable(),
    disabled_at: instantBody.nullable(),
    created_at: instantBody,
    updated_at: instantBody,
    previous_secret_valid_until: instantBody.nullable(),
    token_endpoint_auth_method: authMethod.meta({
      description: 'client_secret_basic, client_secret_post: the client holds a secret (accepted by Basic header or in the form either way); private_key_jwt; none: a public client.',
    }),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.string())) }).optional(),
    jwks_uri: z.string().optional(),
    redirect_uris: z.array(z.string()),
    post_logout_redirect_uris: z.array(z.string()),
    grant_types: z.array(z.string()).meta({ description: 'Resolved: the default by rule when none were set.' }),
    first_party: z.boolean(),
    registered_by: z.enum(['operator', 'dynamic', 'metadata_document']).meta({ description: 'Read-only: an operator, RFC 7591 dynamic registration, or a client ID metadata document.' }),
  })
  .meta({ id: 'Client' });

export const createdClientBody = clientViewBody
  .extend({ client_secret: z.string().optional().meta({ description: 'Shown here only (a client with a secret); only its hash is stored.' }) })
  .meta({ id: 'CreatedClient' });

export const clientPageBody = z.object({ clients: z.array(clientViewBody), next_cursor: z.string().nullable() }).meta({ id: 'ClientPage' });

export const rotatedSecretBody = z
  .object({ client_id: z.string(), client_secret: z.string(), previous_secret_valid_until: instantBody.nullable() })
  .meta({ id: 'ClientSecretRotated' });

export const userPageBody = z.object({ users: z.array(publicUserBody), next_cursor: z.string().nullable() }).meta({ id: 'UserPage' });

export const tenantBody = z
  .object({ id: z.string(), name: z.string(), disabled_at: instantBody.nullable(), created_at: instantBody })
  .meta({ id: 'Tenant', description: 'A tenant is disabled, never deleted.' });

export const tenantListBody = z.object({ tenants: z.array(tenantBody) }).meta({ id: 'TenantList' });

export const auditEventBody = z
  .object({
    id: z.string(),
    occurred_at: instantBody,
    actor: z.string(),
    action: z.string(),
    target: z.string().nullable(),
    reason: z.string().nullable(),
    request_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'AuditEvent' });

export const auditPageBody = z.object({ events: z.array(auditEventBody), next_cursor: z.string().nullable() }).meta({ id: 'AuditPage' });

export const blockBody = z
  .object({ key: z.string(), failures: z.number().int(), blocked_until: instantBody, retry_after_seconds: z.number().int().positive() })
  .meta({ id: 'LimitBlock' });

export const limitsBody = z.object({ blocks: z.array(blockBody) }).meta({ id: 'LimitBlocks' });

export const clearedLimitBody = z.object({ cleared: z.string() }).meta({ id: 'LimitCleared' });

// The schemas and the types the code builds must not drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const checks: [
  Same<z.output<typeof clientViewBody>, ClientView>,
  z.output<typeof keyViewBody> extends KeyView ? true : false,
  Same<z.output<typeof keyChangeBody>, KeyChange>,
  Same<z.output<typeof blockBody>, BlockView>,
] = [true, true, true, true];
void checks;
