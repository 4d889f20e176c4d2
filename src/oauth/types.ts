import type { Client } from '../clients/repository';

/**
 * The shapes the OAuth endpoints and the capabilities that plug into them share (docs/oauth.md "OAuth 2.0 client credentials". A leaf module: it imports nothing of the rest but the client's type, so a
 * grant or token kind in any capability folder can declare itself without importing the endpoints.
 */

/** Form parameters of one request: each name at most once, empty values dropped (RFC 6749 §3.1). */
export type FormParams = ReadonlyMap<string, string>;

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

export interface GrantRequest {
  /** Every form parameter of the request (each at most once, empty ones dropped). */
  params: FormParams;
  /** The authenticated client; undefined for a grant with `clientAuthentication: 'none'`, or 'optional' without credentials. */
  client: Client | undefined;
  /** Address of the peer, for the grant's own abuse limits. */
  ip: string;
}

/**
 * A grant type of POST /oauth/token, after node-oidc-provider's `{ grantType, parameters, handler }`.
 * The endpoint reads and checks the form, authenticates the client as `clientAuthentication` says,
 * then calls `handler`; the handler returns the response body or throws an OAuthError. A grant is
 * built by its capability's factory, which captures the dependencies it needs.
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
  /**
   * With `required` or `optional`: whether a public client (docs/oauth.md "Public clients": its `client_id`
   * alone) may use the grant, e.g. authorization_code, whose PKCE verifier is the proof. Default false:
   * client_credentials is never for a client without credentials (`unauthorized_client`).
   */
  publicClients?: boolean;
  /**
   * A grant type served by several grants (RFC 8693 token exchange: an API key, or a user's access
   * token to delegate): the one for this request, chosen from its form before anything else, whose
   * `clientAuthentication`, `publicClients` and `handler` then apply. See `grantPerRequest`.
   */
  select?(params: FormParams): Grant;
  handler(request: GrantRequest): Promise<TokenResponse>;
}

/** RFC 7662 §2.2 body of an active token; an inactive one is exactly `{"active": false}`. */
export interface ActiveIntrospection {
  active: true;
  [member: string]: unknown;
}

export interface TokenKindRequest {
  /** The authenticated client making the introspection or revocation request. */
  client: Client;
}

/**
 * One kind of token this server can introspect and revoke. The composition root lists the kinds in
 * an explicit order; the first that recognises the token answers. A kind's active answer must say the
 * token's tenant in `tenant_id` (absent: no tenant) and should check it with `withinTenant`
 * (./tenant-boundary) itself.
 */
export interface TokenKind {
  name: string;
  /** `undefined`: not a token of this kind. `null`: this kind, but inactive. Never throws for bad input. */
  introspect(token: string, request: TokenKindRequest): Promise<ActiveIntrospection | null | undefined>;
  /**
   * `false`: not a token of this kind. `true`: handled (revoked, or invalid and so nothing to do, RFC 7009 §2.2).
   * Throws an OAuthError (`unauthorized_client`) when the token is valid but was not issued to the
   * requesting client (another client's token, a user's token), and then changes nothing.
   */
  revoke(token: string, request: TokenKindRequest): Promise<boolean>;
}
