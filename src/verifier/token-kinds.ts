/** The kinds of credential the identity provider issues (docs/verifier-kit.md "Protecting an API". A leaf module: options and roles both read it. */
export type TokenKind = 'user' | 'client' | 'admin' | 'exchanged' | 'api_key';

export const TOKEN_KINDS: readonly TokenKind[] = ['user', 'client', 'admin', 'exchanged', 'api_key'];
