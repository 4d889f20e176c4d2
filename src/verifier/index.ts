/**
 * The verifier kit (README: "Protecting an API"): what a resource server needs to accept this identity provider's
 * access tokens and API keys. Public entry point `<package>/verifier`; depends on jose and Node
 * only (Express is needed for types only, by `requireAuth`), never on the server.
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
  errorResponse,
  InsufficientScope,
  InvalidRequest,
  InvalidToken,
  MissingCredentials,
  TemporarilyUnavailable,
  VerifierError,
  type ErrorResponse,
  type InvalidTokenReason,
  type VerifierErrorCode,
} from './errors';
export { API_KEY_PREFIX, type HeaderSource } from './credentials';
export type { FetchFunction, TokenKind, VerifierOptions } from './options';
export type { RoleMap, RoleRule } from './roles';
export type { KeySetStatus } from './key-set';
