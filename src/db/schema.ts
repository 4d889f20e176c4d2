import type { ColumnType, Generated, Selectable } from 'kysely';

export type KeyState = 'next' | 'current' | 'previous' | 'retired' | 'revoked';

/** Public members of an RSA JWK as stored; the JWKS adds the rest from the row. */
export interface StoredPublicJwk {
  kty: 'RSA';
  n: string;
  e: string;
}

export interface SigningKeysTable {
  kid: string;
  state: KeyState;
  purpose: string;
  alg: 'RS256';
  bits: number;
  public_jwk: ColumnType<StoredPublicJwk, string, string>;
  /** Base64 DER of the self-signed X.509 certificate (the `x5c` member). */
  certificate: string;
  x5t_s256: string;
  encrypted_private_key: Uint8Array | null;
  wrapped_data_key: Uint8Array | null;
  mek_id: string | null;
  envelope_version: number | null;
  created_at: Date;
  published_at: Date | null;
  activated_at: Date | null;
  deactivated_at: Date | null;
  retired_at: Date | null;
}

export interface AuditEventsTable {
  id: Generated<string>;
  occurred_at: Date;
  actor: string;
  action: string;
  target: string | null;
  reason: string | null;
  request_id: string | null;
  details: ColumnType<Record<string, unknown>, string | undefined, string>;
}

export interface UsersTable {
  id: string;
  /** Normalised: trimmed, NFC, lower case. */
  email: string;
  /** argon2id PHC string; never leaves the users module. */
  password_hash: string;
  role: ColumnType<string, string | undefined, string>;
  tenant_id: string | null;
  created_at: Date;
  updated_at: Date;
  last_sign_in_at: Date | null;
  disabled_at: Date | null;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  created_at: Date;
  refreshed_at: Date | null;
  revoked_at: Date | null;
  revoked_reason: string | null;
  /** A session opened for an application (the authorization-code flow): its client; null for /auth/v1. */
  client_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The granted scopes, space-separated; null: the /auth/v1 scope. */
  scope: ColumnType<string | null, string | null | undefined, string | null>;
  /** The tokens' `aud` (the granted resources); null: IDP_USER_AUDIENCE. */
  audience: ColumnType<string[] | null, string | null | undefined, string | null>;
  /** The hosted pages' browser session the application's sign-in came from (its sign-out ends this one too). */
  browser_session_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** When the user signed in (the ID token's `auth_time`). */
  auth_time: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

/** docs/sign-in.md "Sign-in for applications": a browser signed in to the hosted pages (the cookie names it by a token whose hash is here). */
export interface BrowserSessionsTable {
  id: string;
  token_hash: string;
  user_id: string;
  created_at: Date;
  last_seen_at: Date;
  auth_time: Date;
  /** created_at + IDP_SESSION_TTL. */
  expires_at: Date;
  ended_at: Date | null;
  ended_reason: string | null;
}

/** The validated request behind a page that is shown, until its form comes back. */
export interface AuthorizationInteractionsTable {
  id: string;
  kind: 'authorize' | 'logout';
  binding_hash: string;
  csrf_hash: string;
  request: ColumnType<Record<string, unknown>, string, string>;
  created_at: Date;
  expires_at: Date;
}

/** What a user granted a client (remembered consent). */
export interface ConsentsTable {
  user_id: string;
  client_id: string;
  scopes: ColumnType<string[], string, string>;
  resources: ColumnType<string[], string, string>;
  created_at: Date;
  updated_at: Date;
}

/** Authorization codes: only their hash; single use. */
export interface AuthorizationCodesTable {
  code_hash: string;
  client_id: string;
  user_id: string;
  redirect_uri: string;
  /** The authorization request named redirect_uri (else the client's only one was used): the token request must repeat it. */
  redirect_uri_sent: boolean;
  /** RFC 7636 S256 challenge: base64url SHA-256 of the verifier. */
  code_challenge: string;
  scopes: ColumnType<string[], string, string>;
  resources: ColumnType<string[], string, string>;
  nonce: string | null;
  auth_time: Date;
  browser_session_id: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  /** Set at redemption: the session opened, and its first access token, revoked should the code come back. */
  session_id: ColumnType<string | null, string | null | undefined, string | null>;
  access_token_jti: ColumnType<string | null, string | null | undefined, string | null>;
  access_token_expires_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface RefreshTokensTable {
  /** base64url SHA-256 of the opaque token; the token itself is never stored. */
  token_hash: string;
  session_id: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  /**
   * Set at rotation when IDP_REFRESH_REUSE_INTERVAL is positive: the token that replaced this one,
   * sealed under a key derived from this token (src/users/refresh-token.ts); cleared after the interval.
   */
  successor: Uint8Array | null;
}

export interface AdminTokensTable {
  id: string;
  permissions: ColumnType<string[], string, string>;
  is_super_admin: boolean;
  description: string | null;
  created_by: string;
  created_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoked_by: string | null;
}

export interface TenantsTable {
  id: string;
  name: string;
  disabled_at: Date | null;
  created_at: ColumnType<Date, Date | undefined, Date>;
}

export interface OAuthClientsTable {
  id: string;
  name: string;
  /** SHA-256 of the secret (src/clients/secret.ts); null for a client that authenticates with its keys (private_key_jwt). */
  secret_hash: Uint8Array | null;
  /** The secret replaced by the last rotation, valid until `previous_secret_expires_at`. */
  previous_secret_hash: Uint8Array | null;
  previous_secret_expires_at: Date | null;
  scopes: ColumnType<string[], string, string>;
  /** The first one is the default `aud`. */
  audiences: ColumnType<string[], string, string>;
  tenant_id: string | null;
  token_ttl_seconds: number | null;
  disabled_at: Date | null;
  created_at: Date;
  updated_at: Date;
  /** private_key_jwt: the client's public keys (validated, public members only), or null. */
  jwks: ColumnType<StoredClientJwks | null, string | null | undefined, string | null>;
  /** private_key_jwt: where the client publishes its public keys, or null. At most one of jwks and jwks_uri. */
  jwks_uri: ColumnType<string | null, string | null | undefined, string | null>;
  /** The authorization-code flow's registered redirect URIs (src/clients/redirect-uris.ts), exact strings. */
  redirect_uris: ColumnType<string[], string | undefined, string>;
  post_logout_redirect_uris: ColumnType<string[], string | undefined, string>;
  /** The grants the client may use; null: the default by rule (src/clients/grant-types.ts). */
  grant_types: ColumnType<string[] | null, string | null | undefined, string | null>;
  /** A first-party client is never asked for consent. */
  first_party: ColumnType<boolean, boolean | undefined, boolean>;
  registered_by: ColumnType<ClientRegistrar, ClientRegistrar | undefined, ClientRegistrar>;
  /** RFC 7591 name; `none` is a public client (no secret, no keys). */
  token_endpoint_auth_method: ColumnType<TokenEndpointAuthMethod, TokenEndpointAuthMethod | undefined, TokenEndpointAuthMethod>;
  /** What an RFC 7591 registration said beyond the other columns; null for an operator's client. */
  registration_metadata: ColumnType<StoredRegistrationMetadata | null, string | null | undefined, string | null>;
}

/** docs/agents.md "Dynamic client registration": the registered metadata no other column holds. */
export interface StoredRegistrationMetadata {
  logo_uri?: string;
  client_uri?: string;
  contacts?: string[];
  software_id?: string;
  software_version?: string;
}

export type TokenEndpointAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';
export type ClientRegistrar = 'operator' | 'dynamic' | 'metadata_document';

/** docs/oauth.md "Resources": the APIs users may grant applications access to. */
export interface ResourcesTable {
  /** The resource indicator (RFC 8707): an absolute URL, the `aud` of tokens for it. */
  url: string;
  name: string;
  scopes: ColumnType<string[], string, string>;
  created_at: Date;
  updated_at: Date;
}

/** A client's JWKS as stored: only the public members src/clients/jwks.ts keeps. */
export interface StoredClientJwks {
  keys: Array<Record<string, string>>;
}

/**
 * A self-registered client's last use (the sweep of unused clients reads it; an operator's client has
 * none), written at most once an hour per client (src/clients/cache.ts clientUseInterval). A row of
 * its own, not a column of oauth_clients, so that recording a use rewrites 40 bytes in place rather
 * than the client's row (db/migrations/2026-12-13T1000-client-uses.ts).
 * A client never used has none; a trigger removes it with its client. Not announced to the client caches.
 */
export interface OAuthClientUsesTable {
  client_id: string;
  used_at: Date;
}

/** docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`": the `jti` of every accepted client assertion until its `exp` (the replay guard). */
export interface ClientAssertionJtisTable {
  client_id: string;
  jti: string;
  expires_at: Date;
}

export interface RevokedAccessTokensTable {
  jti: string;
  client_id: string;
  expires_at: Date;
  revoked_at: Date;
}

export interface RateLimitCountersTable {
  key: string;
  failures: number;
  /** Attempts reserved (sign-in, sign-up) and not yet counted or released. */
  pending: Generated<number>;
  window_ends_at: Date;
  blocked_until: Date | null;
}

export interface ApiKeysTable {
  /** Public identifier: 16 base62 characters, the `<id>` of `idpk_<id>_<secret>`. */
  id: string;
  name: string;
  /** The owner: exactly one of user_id and client_id. */
  user_id: string | null;
  client_id: string | null;
  /** The owner's tenant, kept in step with it by a trigger. */
  tenant_id: string | null;
  scopes: ColumnType<string[], string, string>;
  /** SHA-256 of the secret (src/api-keys/format.ts); the key itself is never stored. */
  secret_hash: Uint8Array;
  expires_at: Date | null;
  created_at: Date;
  created_by: string;
  last_used_at: Date | null;
  revoked_at: Date | null;
  revoked_by: string | null;
}

export interface Database {
  signing_keys: SigningKeysTable;
  audit_events: AuditEventsTable;
  users: UsersTable;
  sessions: SessionsTable;
  refresh_tokens: RefreshTokensTable;
  admin_tokens: AdminTokensTable;
  tenants: TenantsTable;
  oauth_clients: OAuthClientsTable;
  oauth_client_uses: OAuthClientUsesTable;
  revoked_access_tokens: RevokedAccessTokensTable;
  rate_limit_counters: RateLimitCountersTable;
  api_keys: ApiKeysTable;
  client_assertion_jtis: ClientAssertionJtisTable;
  resources: ResourcesTable;
  browser_sessions: BrowserSessionsTable;
  authorization_interactions: AuthorizationInteractionsTable;
  consents: ConsentsTable;
  authorization_codes: AuthorizationCodesTable;
}

export type SigningKeyRow = Selectable<SigningKeysTable>;
export type AuditEventRow = Selectable<AuditEventsTable>;
export type UserRow = Selectable<UsersTable>;
export type SessionRow = Selectable<SessionsTable>;
export type AdminTokenRow = Selectable<AdminTokensTable>;
export type TenantRow = Selectable<TenantsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
export type ResourceRow = Selectable<ResourcesTable>;
export type BrowserSessionRow = Selectable<BrowserSessionsTable>;
export type AuthorizationCodeRow = Selectable<AuthorizationCodesTable>;
