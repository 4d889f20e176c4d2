/**
 * The verifier kit (docs/verifier-kit.md "Protecting an API", "Protecting an MCP server"): what a resource server
 * needs to accept this identity provider's access tokens and API keys. Public entry points
 * `<package>/verifier` and the standalone package `@rs256-idp/verifier` (packages/verifier, built
 * from this folder); depends on jose and Node only (Express is needed for types only, by
 * `requireAuth` and `protectedResource`), never on the server.
 *
 * ```ts
 * import { createVerifier, requireAuth } from 'rs256-idp/verifier';
 * const verifier = createVerifier({ issuer: 'https://id.example.com', audience: 'https://api.example.com' });
 * app.get('/invoices', requireAuth({ verifier, scopes: ['invoices:read'] }), (req, res) => res.json(req.auth));
 * ```
 */
export { createVerifier, Verifier, type AuthInfo, type AuthRequirements, type VerifierStatus } from './verifier';
export { requireAuth, type RequireAuthOptions } from './express';
export {
  protectedResource,
  protectedResourceMetadataUrl,
  type ProtectedResourceMetadata,
  type ProtectedResourceOptions,
} from './protected-resource';
export {
  errorResponse,
  InsufficientScope,
  InvalidRequest,
  InvalidToken,
  MissingCredentials,
  TemporarilyUnavailable,
  VerifierError,
  type Challenge,
  type ErrorResponse,
  type InvalidTokenReason,
  type VerifierErrorCode,
} from './errors';
export { API_KEY_PREFIX, type HeaderSource } from './credentials';
export type { FetchFunction, TokenKind, VerifierOptions } from './options';
export type { RoleMap, RoleRule } from './roles';
export type { KeySetStatus } from './key-set';
