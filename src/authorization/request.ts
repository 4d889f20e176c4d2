import { OIDC_SCOPES } from '../oauth';
import { PageError, RedirectError } from './errors';

export type Prompt = 'none' | 'login' | 'consent';

/** A client as the authorization endpoint sees it (the client cache's `Client` has these members). */
export interface AuthorizationClient {
  id: string;
  name: string;
  scopes: readonly string[];
  audiences: readonly string[];
  tenantId: string | null;
  tenantDisabled: boolean;
  disabledAt: Date | null;
  redirectUris: readonly string[];
  postLogoutRedirectUris: readonly string[];
  grantTypes: readonly string[];
  firstParty: boolean;
  registeredBy: 'operator' | 'dynamic' | 'metadata_document';
}

/** A registered resource (docs/oauth.md "Resources". */
export interface Resource {
  url: string;
  name: string;
  scopes: readonly string[];
}

/**
 * A validated authorization request: everything the pages, the consent and the code need, kept
 * server-side between the page shown and its form (never in hidden fields).
 */
export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  /** The request named redirect_uri (else the client's only one is used): the token request must repeat it. */
  redirectUriSent: boolean;
  /** The scopes to grant: the requested ones, each allowed. */
  scopes: string[];
  /** The resources the token will be for (`aud`): each requested one for which a scope is granted. */
  resources: string[];
  state?: string;
  nonce?: string;
  codeChallenge: string;
  prompt: Prompt[];
  /** Seconds; a sign-in older than this must be repeated. */
  maxAge?: number;
  loginHint?: string;
}

export interface RequestLookups {
  /** `origin`: the request asking (a metadata document's client first made is audited as its address's doing). */
  client(id: string, origin?: { ip: string; requestId?: string }): Promise<AuthorizationClient | undefined>;
  /** Whether `requested` matches one of `registered` (exact, loopback on any port: docs/oauth.md "Redirect URIs". */
  redirectUriMatches(registered: readonly string[], requested: string): boolean;
  resource(url: string): Promise<Resource | undefined>;
}

/** The authorization request's parameters: each at most once, but `resource` (RFC 8707) may repeat. */
export interface RequestParams {
  get(name: string): string | undefined;
  getAll(name: string): string[];
  names(): string[];
}

export function requestParams(search: URLSearchParams): RequestParams {
  return {
    get: (name) => {
      const value = search.get(name);
      return value === null || value === '' ? undefined : value;
    },
    getAll: (name) => search.getAll(name).filter((v) => v !== ''),
    names: () => [...new Set(search.keys())],
  };
}

const REPEATABLE = new Set(['resource']);
// RFC 6749 §3.3 scope-token.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
// RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
const S256_CHALLENGE = /^[A-Za-z0-9_-]{43}$/;
const MAX = { clientId: 2048, state: 2048, nonce: 512, loginHint: 254, resource: 2048, scope: 4096, resources: 10 };

function clipped(text: string): string {
  return text.length > 64 ? `${text.slice(0, 64)}…` : text;
}

/**
 * Reads and checks an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707, OpenID Connect
 * Core §3.1.2.1). The client and the redirect URI first: until both are established, an error is a
 * `PageError` (never redirected, RFC 6749 §4.1.2.1); after, a `RedirectError`.
 */
export async function readAuthorizationRequest(params: RequestParams, lookups: RequestLookups, origin?: { ip: string; requestId?: string }): Promise<{ client: AuthorizationClient; request: AuthorizationRequest }> {
  // Which client and where to: ambiguous is never redirected anywhere.
  if (params.getAll('client_id').length > 1 || params.getAll('redirect_uri').length > 1) throw new PageError('client_id and redirect_uri may each appear once.');
  const clientId = params.get('client_id');
  if (clientId === undefined) throw new PageError('The application did not say who it is (client_id is missing).');
  if (clientId.length > MAX.clientId) throw new PageError('The application is not known here (client_id).');
  const client = await lookups.client(clientId, origin);
  if (!client) throw new PageError('The application is not known here (unknown client_id, or its client metadata document could not be used).', 400, `unknown client`);
  if (client.disabledAt !== null || client.tenantDisabled) throw new PageError('This application has been disabled.', 400, `client ${client.id} disabled`);
  const sentRedirect = params.get('redirect_uri');
  let redirectUri: string;
  if (sentRedirect !== undefined) {
    if (!lookups.redirectUriMatches(client.redirectUris, sentRedirect)) {
      throw new PageError('The address the application asked to return to is not registered for it (redirect_uri).', 400, `redirect_uri not registered for ${client.id}`);
    }
    redirectUri = sentRedirect;
  } else if (client.redirectUris.length === 1) {
    redirectUri = client.redirectUris[0] as string;
  } else {
    throw new PageError(
      client.redirectUris.length === 0 ? 'This application cannot sign users in: it has no registered redirect URI.' : 'The application did not say where to return to (redirect_uri is missing).',
    );
  }
  // The redirect URI is established: from here on, errors go back to it.
  const state = params.get('state');
  if (state !== undefined && state.length > MAX.state) throw new PageError(`state is over ${MAX.state} characters.`);
  try {
    return { client, request: await readRest(params, client, redirectUri, sentRedirect !== undefined, state, lookups) };
  } catch (error) {
    if (error instanceof RedirectError) error.target = { redirectUri, state };
    throw error;
  }
}

async function readRest(
  params: RequestParams,
  client: AuthorizationClient,
  redirectUri: string,
  redirectUriSent: boolean,
  state: string | undefined,
  lookups: RequestLookups,
): Promise<AuthorizationRequest> {
  for (const name of params.names()) {
    if (!REPEATABLE.has(name) && params.getAll(name).length > 1) throw new RedirectError('invalid_request', `parameter ${clipped(name)} appears more than once`);
  }
  if (params.get('request') !== undefined) throw new RedirectError('request_not_supported', 'request objects are not supported');
  if (params.get('request_uri') !== undefined) throw new RedirectError('request_uri_not_supported', 'request_uri is not supported');
  const responseType = params.get('response_type');
  if (responseType === undefined) throw new RedirectError('invalid_request', 'response_type is missing; use response_type=code');
  if (responseType !== 'code') throw new RedirectError('unsupported_response_type', 'only response_type=code is supported (the authorization code flow with PKCE)');
  const responseMode = params.get('response_mode');
  if (responseMode !== undefined && responseMode !== 'query') throw new RedirectError('invalid_request', 'only response_mode=query is supported');
  if (!client.grantTypes.includes('authorization_code')) throw new RedirectError('unauthorized_client', 'this client may not use the authorization code grant');

  const challenge = params.get('code_challenge');
  const method = params.get('code_challenge_method');
  if (challenge === undefined) throw new RedirectError('invalid_request', 'code_challenge is required (PKCE, RFC 7636, with code_challenge_method=S256)');
  if (method === undefined || method === 'plain') throw new RedirectError('invalid_request', 'code_challenge_method must be S256; plain is not accepted');
  if (method !== 'S256') throw new RedirectError('invalid_request', 'code_challenge_method must be S256');
  if (!S256_CHALLENGE.test(challenge)) throw new RedirectError('invalid_request', 'code_challenge must be the base64url SHA-256 of the code verifier (43 characters)');

  const nonce = params.get('nonce');
  if (nonce !== undefined && nonce.length > MAX.nonce) throw new RedirectError('invalid_request', `nonce is over ${MAX.nonce} characters`);
  const loginHint = params.get('login_hint');
  const prompt = readPrompt(params.get('prompt'));
  const maxAgeText = params.get('max_age');
  let maxAge: number | undefined;
  if (maxAgeText !== undefined) {
    if (!/^\d{1,9}$/.test(maxAgeText)) throw new RedirectError('invalid_request', 'max_age must be a whole number of seconds');
    maxAge = Number(maxAgeText);
  }

  const resources = await readResources(params.getAll('resource'), client, lookups);
  const scopes = readScopes(params.get('scope'), client, resources);
  return {
    clientId: client.id,
    redirectUri,
    redirectUriSent,
    scopes,
    // RFC 8707 with docs/oauth.md "Resources": a resource is in `aud` when at least one of its scopes is granted.
    resources: resources.filter((r) => r.scopes.some((s) => scopes.includes(s))).map((r) => r.url),
    codeChallenge: challenge,
    prompt,
    ...(state !== undefined && { state }),
    ...(nonce !== undefined && { nonce }),
    ...(maxAge !== undefined && { maxAge }),
    ...(loginHint !== undefined && loginHint.length <= MAX.loginHint && { loginHint }),
  };
}

function readPrompt(text: string | undefined): Prompt[] {
  if (text === undefined) return [];
  const values = [...new Set(text.split(' ').filter((v) => v !== ''))];
  for (const value of values) {
    if (value !== 'none' && value !== 'login' && value !== 'consent') {
      throw new RedirectError('invalid_request', `prompt ${clipped(value)} is not supported (none, login, consent)`);
    }
  }
  if (values.includes('none') && values.length > 1) throw new RedirectError('invalid_request', 'prompt=none cannot be combined with another prompt');
  return values as Prompt[];
}

/** Each requested resource (RFC 8707): an absolute URL without fragment, registered, and allowed to this client. */
async function readResources(requested: string[], client: AuthorizationClient, lookups: RequestLookups): Promise<Resource[]> {
  const unique = [...new Set(requested)];
  if (unique.length > MAX.resources) throw new RedirectError('invalid_target', `at most ${MAX.resources} resources per request`);
  const found: Resource[] = [];
  for (const url of unique) {
    if (url.length > MAX.resource || !isAbsoluteWithoutFragment(url)) throw new RedirectError('invalid_target', `resource ${clipped(url)} is not an absolute URI without a fragment`);
    const resource = await lookups.resource(url);
    if (!resource) throw new RedirectError('invalid_target', `resource ${clipped(url)} is not registered here`);
    // An operator-created client is held to its allowed audiences (docs/oauth.md "Resources".
    if (client.registeredBy === 'operator' && client.audiences.length > 0 && !client.audiences.includes(url)) {
      throw new RedirectError('invalid_target', `resource ${clipped(url)} is not allowed for this client`);
    }
    found.push(resource);
  }
  return found;
}

function isAbsoluteWithoutFragment(text: string): boolean {
  if (text.includes('#')) return false;
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The scopes to grant. The OpenID Connect scopes may be asked for; any other must belong to a
 * requested resource and, for an operator-created client, be among its allowed scopes. A client
 * that registered itself with a `scope` (docs/agents.md "Dynamic client registration", "Client ID Metadata
 * Documents") is held to it, the
 * OpenID Connect scopes included; without one, to these rules alone. Without `scope`, the requested
 * resources' scopes that the client may have.
 */
function readScopes(text: string | undefined, client: AuthorizationClient, resources: Resource[]): string[] {
  const offered = new Set(resources.flatMap((r) => [...r.scopes]));
  const registered = client.registeredBy !== 'operator';
  const clientAllows = (scope: string) => (registered && client.scopes.length === 0) || client.scopes.includes(scope);
  if (text === undefined) return [...offered].filter(clientAllows);
  if (text.length > MAX.scope) throw new RedirectError('invalid_scope', `scope is over ${MAX.scope} characters`);
  const scopes = [...new Set(text.split(' ').filter((s) => s !== ''))];
  for (const scope of scopes) {
    if (!SCOPE_TOKEN.test(scope)) throw new RedirectError('invalid_scope', 'scope is malformed (RFC 6749 §3.3)');
    if (OIDC_SCOPES.includes(scope)) {
      if (registered && !clientAllows(scope)) throw new RedirectError('invalid_scope', `scope ${clipped(scope)} is not among the scopes this client registered`);
      continue;
    }
    if (!offered.has(scope)) {
      throw new RedirectError('invalid_scope', `scope ${clipped(scope)} is not a scope of a requested resource (ask for it with resource=<the API's URL>)`);
    }
    if (!clientAllows(scope)) throw new RedirectError('invalid_scope', `scope ${clipped(scope)} is not ${registered ? 'among the scopes this client registered' : 'allowed for this client'}`);
  }
  return scopes;
}
