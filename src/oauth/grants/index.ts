import type { Client } from '../../clients/repository';
import type { Services } from '../../services';
import type { FormParams } from '../form';
import { clientCredentialsGrant } from './client-credentials';

/** RFC 6749 §5.1 success body; a grant may add members (refresh_token, ...). */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope?: string;
  refresh_token?: string;
  /** OpenID Connect: the authorization-code grant with scope openid. */
  id_token?: string;
}

export interface GrantContext {
  /** Every form parameter of the request (each at most once, empty ones dropped). */
  params: FormParams;
  /** The authenticated client; undefined for a grant with `clientAuthentication: 'none'`, or 'optional' without credentials. */
  client: Client | undefined;
  services: Services;
  /** Address of the peer, for the grant's own abuse limits. */
  ip: string;
}

/**
 * A grant type of POST /oauth/token, after node-oidc-provider's `{ grantType, parameters, handler }`.
 * The endpoint reads and checks the form, authenticates the client as `clientAuthentication` says,
 * then calls `handler`; the handler returns the response body or throws an OAuthError.
 */
export interface Grant {
  grantType: string;
  /** The parameters the grant reads (documentation, and the metadata of what it accepts). */
  parameters: readonly string[];
  /**
   * `required`: the client must authenticate (client_credentials). `none`: the grant authenticates
   * the request itself (e.g. a user session's refresh token) and client credentials are refused.
   * `optional`: credentials, when presented, must authenticate a client, which the handler then
   * checks (refresh tokens: /auth/v1 ones take none, an application's its own client's).
   */
  clientAuthentication: 'required' | 'none' | 'optional';
  handler(context: GrantContext): Promise<TokenResponse>;
}

const grants = new Map<string, Grant>();

/** The registration point: adds a grant type to POST /oauth/token and to the discovery metadata. */
export function registerGrant(grant: Grant): void {
  if (grants.has(grant.grantType)) throw new Error(`grant type ${grant.grantType} is already registered`);
  grants.set(grant.grantType, grant);
}

export function findGrant(grantType: string): Grant | undefined {
  return grants.get(grantType);
}

/** `grant_types_supported`. */
export function grantTypes(): string[] {
  return [...grants.keys()];
}

registerGrant(clientCredentialsGrant);
