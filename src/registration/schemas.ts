import { z } from 'zod';
import type { RegistrationResponse } from './routes';

/**
 * POST /oauth/register (RFC 7591) as the OpenAPI document describes it (src/http/openapi.ts). The
 * endpoint reads the body by hand (./metadata.ts): RFC 7591 wants unknown members ignored, unsupported
 * grant types dropped and each refusal named `invalid_redirect_uri` or `invalid_client_metadata`,
 * which a schema's first issue cannot tell apart; these schemas document what it accepts and answers.
 */

const authMethod = z.enum(['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt']);

const metadataFields = {
  client_name: z.string().meta({ description: 'Shown on the consent page (with a warning that nobody vetted the client). Default: the host of the first redirect URI.' }),
  scope: z.string().meta({
    description: 'Space-separated: openid, email, offline_access and the scopes of registered resources. Bounds what the client may request later; without it, the flow\'s rules alone do.',
  }),
  jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).meta({ description: 'private_key_jwt: the public keys (or jwks_uri).' }),
  jwks_uri: z.string().meta({ description: 'private_key_jwt: where the client publishes its public keys (or jwks).' }),
  logo_uri: z.string(),
  client_uri: z.string(),
  contacts: z.array(z.string()).max(10),
  software_id: z.string(),
  software_version: z.string(),
};

export const registrationRequest = z
  .object({
    redirect_uris: z.array(z.string()).min(1).max(32).meta({ description: 'docs/oauth.md "Redirect URIs": exact strings, no fragment, https (http for loopback), or a private-use scheme.' }),
    grant_types: z.array(z.string()).optional().meta({ description: 'authorization_code (required) and refresh_token; any other value is dropped. Default: both.' }),
    response_types: z.array(z.literal('code')).optional(),
    token_endpoint_auth_method: authMethod.optional().meta({ description: 'Default client_secret_basic (RFC 7591 §2).' }),
    ...Object.fromEntries(Object.entries(metadataFields).map(([name, schema]) => [name, schema.optional()])),
  })
  .catchall(z.unknown())
  .meta({ id: 'ClientRegistrationRequest', description: 'RFC 7591 §2 client metadata; members not listed are ignored.' });

export const registrationResponse = z
  .object({
    client_id: z.string(),
    client_id_issued_at: z.number().int(),
    client_secret: z.string().optional().meta({ description: 'client_secret_basic and client_secret_post only; shown once.' }),
    client_secret_expires_at: z.literal(0).optional().meta({ description: 'With client_secret: it does not expire.' }),
    client_name: metadataFields.client_name,
    redirect_uris: z.array(z.string()),
    grant_types: z.array(z.enum(['authorization_code', 'refresh_token'])),
    response_types: z.tuple([z.literal('code')]),
    token_endpoint_auth_method: authMethod,
    scope: metadataFields.scope.optional(),
    jwks: metadataFields.jwks.optional(),
    jwks_uri: metadataFields.jwks_uri.optional(),
    logo_uri: metadataFields.logo_uri.optional(),
    client_uri: metadataFields.client_uri.optional(),
    contacts: metadataFields.contacts.optional(),
    software_id: metadataFields.software_id.optional(),
    software_version: metadataFields.software_version.optional(),
  })
  .strict()
  .meta({ id: 'ClientRegistrationResponse', description: 'RFC 7591 §3.2.1: the client, its secret when it has one, and its metadata as stored.' });

export const registrationErrorBody = z
  .object({
    error: z.enum(['invalid_redirect_uri', 'invalid_client_metadata', 'invalid_request', 'invalid_token', 'insufficient_scope', 'temporarily_unavailable', 'server_error']),
    error_description: z.string(),
  })
  .meta({ id: 'ClientRegistrationError', description: 'RFC 7591 §3.2.2 (and RFC 6750 §3 for the initial access token).' });

// The schema and the type the endpoint builds must not drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const check: Same<keyof z.output<typeof registrationResponse>, keyof RegistrationResponse> = true;
void check;
