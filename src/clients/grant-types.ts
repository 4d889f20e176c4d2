/**
 * The grants a client may be allowed at POST /oauth/token (docs/oauth.md "Grant types". A client's
 * `grant_types` is either a list an operator (or a registration) set, or null: the default by rule,
 * resolved at read time so that it follows the client's redirect URIs.
 */
export const CLIENT_CREDENTIALS = 'client_credentials';
export const AUTHORIZATION_CODE = 'authorization_code';
export const REFRESH_TOKEN = 'refresh_token';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** Every grant a client may be given; full URNs for extension grants. */
export const CLIENT_GRANT_TYPES: readonly string[] = [CLIENT_CREDENTIALS, AUTHORIZATION_CODE, REFRESH_TOKEN, TOKEN_EXCHANGE];

/** `client_credentials` for a client without redirect URIs; `authorization_code refresh_token` for one with them. */
export function defaultGrantTypes(redirectUris: readonly string[]): readonly string[] {
  return redirectUris.length === 0 ? [CLIENT_CREDENTIALS] : [AUTHORIZATION_CODE, REFRESH_TOKEN];
}

/** The grants a client may use: what is stored, or the default when nothing is. */
export function resolveGrantTypes(stored: readonly string[] | null, redirectUris: readonly string[]): readonly string[] {
  return stored ?? defaultGrantTypes(redirectUris);
}
