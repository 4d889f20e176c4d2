import type { StoredRegistrationMetadata, TokenEndpointAuthMethod } from '../db/schema';
import { AUTHORIZATION_CODE, REFRESH_TOKEN } from '../clients/grant-types';
import { InvalidRedirectUri, validateRedirectUris, MAX_REDIRECT_URIS } from '../clients/redirect-uris';
import { parseScope } from '../clients/service';
import { OIDC_SCOPES } from '../oauth';
import { checkName, InvalidNameError, NAME_MAX_LENGTH, quoted } from '../text';

/**
 * The client metadata of an RFC 7591 registration request (docs/agents.md "Dynamic client registration":
 * what is accepted, checked and normalised; anything else in the request is ignored. Pure but for
 * the lookup of registered resources' scopes.
 */

/** An RFC 7591 §3.2.2 refusal: `error` is the code, `message` the `error_description`. */
export class RegistrationError extends Error {
  constructor(
    readonly error: 'invalid_client_metadata' | 'invalid_redirect_uri',
    message: string,
  ) {
    super(message);
    this.name = 'RegistrationError';
  }
}

/** The grants a registered client may have: the authorization-code flow and its refresh, nothing else. */
export const REGISTRABLE_GRANT_TYPES: readonly string[] = [AUTHORIZATION_CODE, REFRESH_TOKEN];
export const REGISTRABLE_AUTH_METHODS: readonly TokenEndpointAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'];

const MAX_CONTACTS = 10;
const MAX_URL_LENGTH = 2048;
const MAX_TEXT_LENGTH = 255;
const MAX_GRANT_TYPES = 16;
const MAX_SCOPE_LENGTH = 4096;

/** A registration, checked: what the clients service creates. */
export interface Registration {
  /** Absent when the request named none: the client is then named after its first redirect URI. */
  clientName?: string;
  redirectUris: string[];
  grantTypes: string[];
  method: TokenEndpointAuthMethod;
  /** private_key_jwt only: exactly one of them (checked by the clients service). */
  jwks?: unknown;
  jwksUri?: string;
  /** The registered `scope`; empty when none was (docs/agents.md "Dynamic client registration": the client is then bounded by the flow's rules). */
  scopes: string[];
  metadata: StoredRegistrationMetadata;
}

export interface MetadataPolicy {
  /** NODE_ENV=production: redirect URIs as docs/oauth.md "Redirect URIs" says, logo_uri and client_uri https only. */
  production: boolean;
  /** Of the given scopes, those a registered resource has. */
  knownResourceScopes(scopes: readonly string[]): Promise<readonly string[]>;
}

const invalid = (message: string) => new RegistrationError('invalid_client_metadata', message);

/** Absent, or JSON null (read as absent). */
function given(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function text(body: Record<string, unknown>, name: string, max = MAX_TEXT_LENGTH): string | undefined {
  const value = body[name];
  if (!given(value)) return undefined;
  if (typeof value !== 'string') throw invalid(`${name} must be a string`);
  try {
    return checkName(value, name, max);
  } catch (error) {
    if (error instanceof InvalidNameError) throw invalid(error.message);
    throw error;
  }
}

function strings(body: Record<string, unknown>, name: string, max: number): string[] | undefined {
  const value = body[name];
  if (!given(value)) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw invalid(`${name} must be an array of strings`);
  if (value.length > max) throw invalid(`${name} has more than ${max} entries`);
  return value as string[];
}

/** A web page or image the client names (logo_uri, client_uri): https (http too outside production). */
function webUrl(body: Record<string, unknown>, name: string, production: boolean): string | undefined {
  const value = text(body, name, MAX_URL_LENGTH);
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(`${name} ${quoted(value)} is not an absolute URL`);
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && !production)) throw invalid(`${name} must be an https URL`);
  if (url.username !== '' || url.password !== '') throw invalid(`${name} may not hold user information`);
  return value;
}

/**
 * Reads a registration request's body. Refusals are RegistrationErrors: `invalid_redirect_uri` for
 * a redirect URI the rules of docs/oauth.md "Redirect URIs" refuse, `invalid_client_metadata` for anything
 * else malformed or unsupported.
 */
export async function readRegistration(body: unknown, policy: MetadataPolicy): Promise<Registration> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalid('the registration request must be a JSON object of client metadata (RFC 7591 §2)');
  const fields = body as Record<string, unknown>;

  const uris = fields.redirect_uris;
  if (!Array.isArray(uris) || uris.length === 0 || !uris.every((u) => typeof u === 'string')) {
    throw invalid('redirect_uris is required: an array of at least one redirect URI');
  }
  if (uris.length > MAX_REDIRECT_URIS) throw new RegistrationError('invalid_redirect_uri', `at most ${MAX_REDIRECT_URIS} redirect URIs may be registered`);
  const redirectUris = validateRedirectUris(uris as string[], { production: policy.production });
  if (redirectUris instanceof InvalidRedirectUri) throw new RegistrationError('invalid_redirect_uri', redirectUris.message);

  const clientName = text(fields, 'client_name', NAME_MAX_LENGTH);

  // RFC 7591 §2: grant types this server does not give such a client (client_credentials among them) are dropped.
  const asked = strings(fields, 'grant_types', MAX_GRANT_TYPES);
  const grantTypes = asked === undefined ? [...REGISTRABLE_GRANT_TYPES] : REGISTRABLE_GRANT_TYPES.filter((g) => asked.includes(g));
  if (!grantTypes.includes(AUTHORIZATION_CODE)) {
    throw invalid('grant_types must include authorization_code: it is the one flow a registered client can use (with refresh_token)');
  }

  const responseTypes = strings(fields, 'response_types', MAX_GRANT_TYPES);
  if (responseTypes !== undefined && (responseTypes.length === 0 || responseTypes.some((t) => t !== 'code'))) {
    throw invalid('response_types may only be ["code"] (the authorization code flow)');
  }

  const methodText = fields.token_endpoint_auth_method;
  const method = !given(methodText) ? 'client_secret_basic' : (methodText as TokenEndpointAuthMethod);
  if (typeof method !== 'string' || !REGISTRABLE_AUTH_METHODS.includes(method)) {
    throw invalid(`token_endpoint_auth_method must be one of ${REGISTRABLE_AUTH_METHODS.join(', ')}`);
  }
  let keys: { jwks?: unknown; jwksUri?: string } = {};
  if (method === 'private_key_jwt') {
    const jwks = fields.jwks;
    const jwksUri = text(fields, 'jwks_uri', MAX_URL_LENGTH);
    if (given(jwks) === (jwksUri !== undefined)) throw invalid('private_key_jwt needs exactly one of jwks and jwks_uri');
    keys = jwksUri !== undefined ? { jwksUri } : { jwks };
  }

  const scopes = await registeredScopes(fields.scope, policy);

  const contacts = strings(fields, 'contacts', MAX_CONTACTS)?.map((contact, index) => {
    try {
      return checkName(contact, `contacts[${index}]`, 254);
    } catch (error) {
      if (error instanceof InvalidNameError) throw invalid(error.message);
      throw error;
    }
  });
  const metadata: StoredRegistrationMetadata = {};
  const logoUri = webUrl(fields, 'logo_uri', policy.production);
  const clientUri = webUrl(fields, 'client_uri', policy.production);
  const softwareId = text(fields, 'software_id');
  const softwareVersion = text(fields, 'software_version');
  if (logoUri !== undefined) metadata.logo_uri = logoUri;
  if (clientUri !== undefined) metadata.client_uri = clientUri;
  if (contacts !== undefined && contacts.length > 0) metadata.contacts = [...new Set(contacts)];
  if (softwareId !== undefined) metadata.software_id = softwareId;
  if (softwareVersion !== undefined) metadata.software_version = softwareVersion;

  return { ...(clientName !== undefined && { clientName }), redirectUris, grantTypes, method, ...keys, scopes, metadata };
}

/** `scope` (RFC 7591 §2): OpenID Connect scopes and the scopes of registered resources only. */
async function registeredScopes(value: unknown, policy: MetadataPolicy): Promise<string[]> {
  if (!given(value)) return [];
  if (typeof value !== 'string') throw invalid('scope must be a string of space-separated scopes');
  if (value.length > MAX_SCOPE_LENGTH) throw invalid(`scope is over ${MAX_SCOPE_LENGTH} characters`);
  const scopes = parseScope(value);
  if (scopes === undefined) throw invalid('scope is malformed (RFC 6749 §3.3: space-separated printable ASCII, no quote or backslash)');
  const others = scopes.filter((s) => !OIDC_SCOPES.includes(s));
  const known = new Set(await policy.knownResourceScopes(others));
  const unknown = others.find((s) => !known.has(s));
  if (unknown !== undefined) {
    throw invalid(`scope ${quoted(unknown)} is not offered here: a client may register openid, email, offline_access and the scopes of registered resources (scopes_supported)`);
  }
  return scopes;
}

/** The name of a client registered without one: the host of its first redirect URI (or its scheme, for a private-use one). */
export function defaultClientName(redirectUri: string): string {
  const url = new URL(redirectUri);
  return (url.host !== '' ? url.host : url.protocol).slice(0, NAME_MAX_LENGTH);
}
