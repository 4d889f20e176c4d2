import type { Capability } from '../capability';
import type { Kysely } from 'kysely';
import type { Database } from '../db/schema';
import type { Logger } from '../observability/logger';
import type { Signer } from '../tokens/sign';
import type { TokenVerifier } from '../tokens/verify';
import { AuthorizationFlow, AUTHORIZE_PATH, type FlowUsers } from './flow';
import { GRANTS_PATH, grantsRouter, type GrantsDeps } from './grants';
import { LOGOUT_PATH, SignOut } from './logout';
import type { AuthorizationClient, Resource } from './request';
import * as repo from './repository';
import { pageRoutes } from './routes';
import { authorizationCodeGrant, type TokenUsers } from './tokens';
import { USERINFO_PATH, type UserinfoUsers } from './userinfo';

export { AUTHORIZE_PATH, LOGOUT_PATH, USERINFO_PATH, GRANTS_PATH };
export type { AuthorizationClient, Resource };

/** What the authorization-code flow needs, and nothing more (docs/sign-in.md "Sign-in for applications". */
export interface AuthorizationDeps {
  db: Kysely<Database>;
  logger: Logger;
  now(): Date;
  sign: Signer;
  /** Verifies our own JWTs (an id_token_hint at sign-out). */
  verifier: Pick<TokenVerifier, 'verify'>;
  settings: {
    issuer: string;
    brandName: string;
    authCodeTtlMs: number;
    sessionTtlMs: number;
    sessionIdleTtlMs: number;
    idTokenTtlMs: number;
  };
  /** A client by id (the in-memory client cache, or a client id URL's metadata document; `origin`: the request asking). */
  client(id: string, origin?: { ip: string; requestId?: string }): Promise<AuthorizationClient | undefined>;
  /** Whether a requested redirect URI matches one registered (exact; loopback on any port). */
  redirectUriMatches(registered: readonly string[], requested: string): boolean;
  /** A registered resource by its URL. */
  resource(url: string): Promise<Resource | undefined>;
  /** Records that a client was given a code (for the sweep of unused self-registered clients, at most once an hour); never waits or fails. */
  recordClientUse?(client: Pick<AuthorizationClient, 'id' | 'registeredBy'>): void;
  /** The user accounts: the shared sign-in check, application sessions and their tokens, token verification. */
  users: FlowUsers & TokenUsers & UserinfoUsers & { authenticate: GrantsDeps['authenticate'] };
}


/** The claims the ID token and userinfo may carry (OpenID Provider Metadata `claims_supported`). */
export const CLAIMS_SUPPORTED = ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'sid', 'at_hash', 'email', 'email_verified'];

/**
 * The authorization-code flow with PKCE and OpenID Connect: /oauth/authorize and its hosted pages,
 * `grant_type=authorization_code`, /oauth/userinfo, /oauth/logout, /auth/v1/grants.
 */
export function authorizationCapability(deps: AuthorizationDeps): Capability {
  const { issuer } = deps.settings;
  const flow = new AuthorizationFlow({
    db: deps.db,
    logger: deps.logger,
    now: () => deps.now(),
    users: deps.users,
    lookups: { client: deps.client, redirectUriMatches: deps.redirectUriMatches, resource: deps.resource },
    settings: deps.settings,
    recordClientUse: deps.recordClientUse,
  });
  const signOut = new SignOut({ db: deps.db, now: () => deps.now(), verifier: deps.verifier, client: deps.client, flow });
  return {
    name: 'authorization',
    grants: [authorizationCodeGrant({ db: deps.db, logger: deps.logger, now: () => deps.now(), sign: deps.sign, users: deps.users, settings: deps.settings })],
    routes: [
      { path: '/', handler: pageRoutes({ flow, signOut, users: deps.users, logger: deps.logger, brandName: deps.settings.brandName }) },
      { path: GRANTS_PATH, handler: grantsRouter({ db: deps.db, logger: deps.logger, now: () => deps.now(), authenticate: (token) => deps.users.authenticate(token) }) },
    ],
    discovery: () => ({
      authorization_endpoint: `${issuer}${AUTHORIZE_PATH}`,
      userinfo_endpoint: `${issuer}${USERINFO_PATH}`,
      end_session_endpoint: `${issuer}${LOGOUT_PATH}`,
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      claims_supported: CLAIMS_SUPPORTED,
      prompt_values_supported: ['none', 'login', 'consent'],
      request_parameter_supported: false,
      request_uri_parameter_supported: false,
    }),
    sweeps: [{ name: 'authorization: expired interactions, codes and browser sessions', run: () => repo.sweepExpired(deps.db, deps.now()) }],
  };
}
