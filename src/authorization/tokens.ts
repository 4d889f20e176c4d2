import crypto from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { recordAudit } from '../audit';
import type { AuthorizationCodeRow, Database, UserRow } from '../db/schema';
import type { Logger } from '../observability/logger';
import { InvalidGrant, InvalidRequest } from '../oauth/errors';
import type { Grant, TokenResponse } from '../oauth/types';
import type { Signer } from '../tokens/sign';
import { revokeSession, type ApplicationSession } from '../users/repository';
import { looksLikeToken, tokenHash } from './cookies';
import * as repo from './repository';

/** The users module as the token endpoint uses it (UserAccounts has these members). */
export interface TokenUsers {
  openApplicationSession(trx: Transaction<Database>, user: UserRow, application: ApplicationSession, options: { offline: boolean; now: Date }): Promise<{ sessionId: string; refreshToken?: string }>;
  signApplicationToken(user: UserRow, sessionId: string, application: ApplicationSession, now: Date, jti: string): Promise<{ token: string; expiresIn: number }>;
  readonly accessTokenTtlMs: number;
}

export interface CodeGrantDeps {
  db: Kysely<Database>;
  logger: Logger;
  now(): Date;
  sign: Signer;
  users: TokenUsers;
  settings: { issuer: string; idTokenTtlMs: number };
}

/** RFC 7636 §4.1: 43 to 128 unreserved characters. */
const CODE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;

/** RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge, compared in constant time. */
export function pkceMatches(verifier: string, challenge: string): boolean {
  const computed = Buffer.from(crypto.createHash('sha256').update(verifier, 'ascii').digest('base64url'));
  const expected = Buffer.from(challenge);
  return computed.length === expected.length && crypto.timingSafeEqual(computed, expected);
}

/** OpenID Connect Core §3.1.3.6: the left half of the SHA-256 of the access token, base64url. */
export function atHash(accessToken: string): string {
  return crypto.createHash('sha256').update(accessToken, 'ascii').digest().subarray(0, 16).toString('base64url');
}

/** The token response of this grant: RFC 6749 §5.1 plus OpenID Connect's `id_token`. */
export interface CodeTokenResponse extends TokenResponse {
  scope: string;
  id_token?: string;
}

type Redemption =
  | { kind: 'unknown' }
  | { kind: 'refused'; description: string; detail?: string }
  | { kind: 'replayed'; sessionId: string | null }
  | { kind: 'ok'; user: UserRow; application: ApplicationSession; sessionId: string; refreshToken?: string; jti: string; nonce: string | null; scopes: string[] };

/**
 * `grant_type=authorization_code` at POST /oauth/token (RFC 6749 §4.1.3, RFC 7636 §4.5, OpenID
 * Connect Core §3.1.3): the client authenticates as registered (a public client by its client_id
 * alone: PKCE is then its only proof). The code must be this client's, unexpired, unused, for the
 * same redirect URI, and the verifier must hash to its challenge. A code presented a second time
 * revokes everything issued from it (RFC 6749 §10.5): its session (refresh tokens, and the access
 * tokens at introspection and userinfo) and its access token's `jti`.
 */
export function authorizationCodeGrant(deps: CodeGrantDeps): Grant {
  return {
    grantType: 'authorization_code',
    parameters: ['code', 'redirect_uri', 'code_verifier'],
    clientAuthentication: 'required',
    // A public client's proof is PKCE (authorization_code), or holding the refresh token it was issued.
    publicClients: true,
    async handler({ params, client, ip }): Promise<CodeTokenResponse> {
      const clientId = (client as { id: string }).id;
      const code = params.get('code');
      const verifier = params.get('code_verifier');
      if (code === undefined) throw new InvalidRequest('code is missing');
      if (verifier === undefined) throw new InvalidRequest('code_verifier is missing: PKCE (RFC 7636, S256) is required for every client');
      if (!looksLikeToken(code)) throw new InvalidGrant('the authorization code is not valid');
      if (!CODE_VERIFIER.test(verifier)) throw new InvalidGrant('code_verifier is malformed (RFC 7636 §4.1: 43 to 128 characters of A-Z a-z 0-9 - . _ ~)');
      const now = deps.now();
      const jti = crypto.randomUUID();
      const outcome = await deps.db.transaction().execute((trx) => redeem(trx, deps, { code, verifier, clientId, redirectUri: params.get('redirect_uri'), ip, now, jti }));
      switch (outcome.kind) {
        case 'unknown':
          throw new InvalidGrant('the authorization code is not valid');
        case 'refused':
          throw new InvalidGrant(outcome.description, outcome.detail);
        case 'replayed':
          deps.logger.warn({ client_id: clientId, sid: outcome.sessionId, ip }, 'authorization code presented again: the tokens issued from it are revoked');
          throw new InvalidGrant('the authorization code was already used; the tokens issued from it have been revoked');
      }
      const { user, application, sessionId } = outcome;
      const access = await deps.users.signApplicationToken(user, sessionId, application, now, jti);
      const response: CodeTokenResponse = { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope: application.scope };
      if (outcome.refreshToken) response.refresh_token = outcome.refreshToken;
      if (outcome.scopes.includes('openid')) {
        response.id_token = await idToken(deps, { user, clientId, sessionId, authTime: application.authTime, nonce: outcome.nonce, accessToken: access.token, scopes: outcome.scopes, now });
      }
      return response;
    },
  };
}

async function redeem(
  trx: Transaction<Database>,
  deps: CodeGrantDeps,
  input: { code: string; verifier: string; clientId: string; redirectUri: string | undefined; ip: string; now: Date; jti: string },
): Promise<Redemption> {
  const { now } = input;
  const hash = tokenHash(input.code);
  const locked = await repo.lockCode(trx, hash);
  if (!locked) return { kind: 'unknown' };
  const row = locked.code;
  if (row.used_at) return replayed(trx, row, input);
  // Nothing below spends the code: a refused presentation leaves it to its rightful client.
  if (row.client_id !== input.clientId) return { kind: 'refused', description: 'the authorization code was not issued to this client', detail: `code of ${row.client_id} presented by ${input.clientId}` };
  if (row.expires_at <= now) return { kind: 'refused', description: 'the authorization code has expired (IDP_AUTH_CODE_TTL); start the sign-in again' };
  if (input.redirectUri === undefined ? row.redirect_uri_sent : input.redirectUri !== row.redirect_uri) {
    return { kind: 'refused', description: 'redirect_uri must be the one of the authorization request' };
  }
  if (!pkceMatches(input.verifier, row.code_challenge)) return { kind: 'refused', description: 'code_verifier does not match the code_challenge of the authorization request' };
  const { user, tenantDisabled, browserSessionEnded } = locked;
  if (!user) return { kind: 'unknown' };
  if (user.disabled_at) return { kind: 'refused', description: 'this account is disabled' };
  if (tenantDisabled) return { kind: 'refused', description: 'the tenant of this account is disabled' };
  if (browserSessionEnded) return { kind: 'refused', description: 'the user signed out after this code was issued' };

  const application: ApplicationSession = {
    clientId: row.client_id,
    scope: row.scopes.join(' '),
    resources: row.resources,
    browserSessionId: row.browser_session_id,
    authTime: row.auth_time,
  };
  const opened = await deps.users.openApplicationSession(trx, user, application, { offline: row.scopes.includes('offline_access'), now });
  await repo.markCodeRedeemed(trx, hash, { now, sessionId: opened.sessionId, jti: input.jti, accessTokenExpiresAt: new Date(now.getTime() + deps.users.accessTokenTtlMs) });
  return { kind: 'ok', user, application, sessionId: opened.sessionId, refreshToken: opened.refreshToken, jti: input.jti, nonce: row.nonce, scopes: row.scopes };
}

/** RFC 6749 §10.5: the second presentation of a code revokes what the first one got; audited. */
async function replayed(trx: Transaction<Database>, row: AuthorizationCodeRow, input: { clientId: string; ip: string; now: Date }): Promise<Redemption> {
  const { now } = input;
  if (row.session_id) await revokeSession(trx, row.session_id, 'authorization code replay', now);
  if (row.access_token_jti && row.access_token_expires_at && row.access_token_expires_at > now) {
    await trx
      .insertInto('revoked_access_tokens')
      .values({ jti: row.access_token_jti, client_id: row.client_id, expires_at: row.access_token_expires_at, revoked_at: now })
      .onConflict((oc) => oc.column('jti').doNothing())
      .execute();
  }
  await recordAudit(trx, {
    at: now,
    actor: `client:${input.clientId}`,
    action: 'authorization_code.replayed',
    target: row.session_id ?? row.client_id,
    reason: 'authorization code presented again: its tokens are revoked',
    details: { client_id: row.client_id, presented_by: input.clientId, user_id: row.user_id, session_id: row.session_id, ip: input.ip },
  });
  return { kind: 'replayed', sessionId: row.session_id };
}

/**
 * The ID token (OpenID Connect Core §2, §3.1.3.6): RS256 with `kid`, `typ: JWT`; `aud` the client;
 * `sid` the session its access and refresh tokens share; `email` and `email_verified` with scope
 * email (`email_verified` is false: this provider does not verify addresses).
 */
async function idToken(
  deps: Pick<CodeGrantDeps, 'sign' | 'settings'>,
  input: { user: UserRow; clientId: string; sessionId: string; authTime: Date; nonce: string | null; accessToken: string; scopes: string[]; now: Date },
): Promise<string> {
  const iat = Math.floor(input.now.getTime() / 1000);
  const claims: Record<string, unknown> = {
    iss: deps.settings.issuer,
    sub: input.user.id,
    aud: input.clientId,
    exp: iat + Math.floor(deps.settings.idTokenTtlMs / 1000),
    iat,
    nbf: iat,
    jti: crypto.randomUUID(),
    auth_time: Math.floor(input.authTime.getTime() / 1000),
    ...(input.nonce !== null && { nonce: input.nonce }),
    sid: input.sessionId,
    at_hash: atHash(input.accessToken),
    ...(input.scopes.includes('email') && { email: input.user.email, email_verified: false }),
  };
  return deps.sign(claims, 'JWT');
}
