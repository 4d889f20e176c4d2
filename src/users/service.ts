import crypto from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import { recordAudit } from '../audit';
import type { Database, SessionRow, UserRow } from '../db/schema';
import { accessTokenRevoked } from '../tokens/deny-list';
import { deleteInBatches } from '../db/sweep';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import type { Attempt, Reservation } from '../ratelimit';
import type { Signer } from '../tokens/sign';
import type { TokenVerifier } from '../tokens/verify';
import { describeExpiry, issueUserAccessToken, USER_SCOPE, verifyUserAccessToken, type UserAccessClaims } from './access-token';
import type { Credentials } from './credentials';
import { MalformedPasswordHash, PasswordHashingBusy, type PasswordHashing } from './passwords';
import { hashRefreshToken, looksLikeRefreshToken, newRefreshToken, openSuccessor, sealSuccessor } from './refresh-token';
import * as repo from './repository';

/** What a successful sign-up, sign-in or refresh hands back. */
export interface UserSession {
  accessToken: string;
  expiresAt: Date;
  expiresIn: number;
  refreshToken: string;
  user: repo.PublicUser;
}

/** The sign-in and sign-up limits of docs/security.md "Abuse limits and the threat model" (implemented by `AbuseLimits` in src/ratelimit). */
export interface AccountLimits {
  /** Reserves a sign-in attempt for this email from this address before its hash, or says how long to wait. */
  signInAttempt(email: string, address: string): Promise<Reservation>;
  /** Reserves a sign-up slot for this address before its hash, or says how long to wait. */
  signUpAttempt(address: string): Promise<Reservation>;
}

/** Whether a tenant may still get tokens (exists and is not disabled); checked at sign-in. */
export type TenantGate = (tenantId: string) => Promise<boolean>;

export interface UserAccountsDeps {
  db: Kysely<Database>;
  sign: Signer;
  verifier: TokenVerifier;
  logger: Logger;
  now: () => Date;
  limits: AccountLimits;
  /** argon2id under a bounded concurrency. */
  passwords: PasswordHashing;
  tenantActive: TenantGate;
  settings: {
    issuer: string;
    audience: string;
    accessTokenTtlMs: number;
    refreshTokenTtlMs: number;
    /**
     * IDP_REFRESH_REUSE_INTERVAL: a refresh token presented again this soon after its own rotation gets
     * the session's current refresh token (and a fresh access token) instead of revoking the session.
     * @default 0 (every reuse revokes the session)
     */
    refreshReuseIntervalMs?: number;
  };
}

/** Where a request came from, for limits and the audit log. */
export interface RequestOrigin {
  ip: string;
  requestId: string;
}

/** Who refreshes: the client authenticated at /oauth/token, if any (none at /auth/v1). */
export interface RefreshCaller {
  clientId?: string;
}

/** The verified caller of the user API: token claims, the live session row and the user. */
export interface AuthenticatedUser {
  claims: UserAccessClaims;
  user: UserRow;
}

const INVALID_CREDENTIALS = 'invalid email or password';

/** How often each instance deletes expired refresh tokens (idempotent; instances may overlap). */
const SWEEP_INTERVAL_MS = 15 * 60_000;

/**
 * The most rotations a tolerated reuse follows from the presented token to the session's current one.
 * Within one reuse interval a well-behaved client rotates once or twice; a longer chain is refused as reuse.
 */
const MAX_CHAIN_HOPS = 8;

/**
 * User accounts (docs/http-api.md "HTTP" /auth/v1, §5): passwords under argon2id, one session per sign-in,
 * refresh tokens rotated on every use with reuse detection (OAuth 2.0 Security BCP §4.14).
 *
 * Session revocation is checked in the database on every user-API request and introspection (one
 * primary-key join): a logout is refused by every instance at once, with no cache to invalidate.
 */
export class UserAccounts {
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: UserAccountsDeps) {
    // Made now, so that the first unknown-email sign-in costs one hash like every other.
    void deps.passwords.dummyHash();
  }

  /** Starts the periodic deletion of expired refresh tokens (one row per refresh would pile up otherwise). */
  startSweeping(): void {
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((error: Error) => {
        this.deps.logger.warn({ err: error.message }, 'sweep of expired refresh tokens failed; retrying at the next interval');
      });
    }, SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  /**
   * Deletes expired refresh tokens, and forgets the sealed successors of tokens rotated more than the
   * reuse interval ago: past it, presenting them is plain reuse, so nothing needs to open them.
   */
  async sweep(): Promise<void> {
    const now = this.deps.now();
    // In bounded batches, each its own short transaction: a backlog of expired tokens is never one long delete.
    await deleteInBatches(this.deps.db, { table: 'refresh_tokens', key: 'token_hash', where: sql`expires_at < ${now}` });
    await repo.clearSuccessors(this.deps.db, new Date(now.getTime() - this.reuseIntervalMs));
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  async signUp(credentials: Credentials, origin: RequestOrigin): Promise<UserSession> {
    // The slot is taken before the hash, so parallel sign-ups cannot pass the limit. It counts
    // whatever the outcome (a 409 too: the limit bounds probing which emails are registered),
    // except a 503: then the password was never hashed and the caller is told to retry.
    const reservation = await this.deps.limits.signUpAttempt(origin.ip);
    if (!reservation.ok) throw tooManyAttempts('sign-ups from this address', reservation.retryAfter);
    let passwordHash: string;
    try {
      // A registered email is refused before any hashing: re-posting one costs a lookup, not argon2.
      if (await repo.findUserByEmail(this.deps.db, credentials.email)) throw userExists();
      passwordHash = await this.hashing(this.deps.passwords.hash(credentials.password));
    } catch (error) {
      if (isShed(error)) await reservation.attempt.release();
      else await reservation.attempt.count();
      throw error;
    }
    await reservation.attempt.count();
    const now = this.deps.now();
    const user = await this.deps.db.transaction().execute(async (trx) => {
      let row: UserRow;
      try {
        row = await repo.insertUser(trx, { id: crypto.randomUUID(), email: credentials.email, passwordHash, now });
      } catch (error) {
        if (error instanceof repo.DuplicateEmailError) throw userExists();
        throw error;
      }
      await recordAudit(trx, { at: now, actor: `user:${row.id}`, action: 'user.signed_up', target: row.id, requestId: origin.requestId });
      return row;
    });
    return this.openSession(user, now);
  }

  async signIn(credentials: Credentials, origin: RequestOrigin): Promise<UserSession> {
    const user = await this.verifyCredentials(credentials, origin);
    return this.openSession(user, user.last_sign_in_at ?? this.deps.now());
  }

  /**
   * The one sign-in check, shared by /auth/v1/token and the hosted sign-in page (docs/security.md "Abuse limits and the threat model": the limits, one argon2 verification whether or not the email
   * exists, the same answer for both, failures counted. The user, with `last_sign_in_at` now, when
   * the password is right and the account and its tenant are enabled; a ServiceError otherwise.
   */
  async verifyCredentials(credentials: Credentials, origin: RequestOrigin): Promise<UserRow> {
    // The attempt is reserved before its hash, so parallel guesses cannot test more passwords than
    // the limits allow; refused attempts are not counted and cost no hash (docs/security.md "Abuse limits and the threat model".
    const reservation = await this.deps.limits.signInAttempt(credentials.email, origin.ip);
    if (!reservation.ok) throw tooManyAttempts('failed sign-ins', reservation.retryAfter);
    const { attempt } = reservation;
    let user: UserRow | undefined;
    try {
      user = await this.checkPassword(credentials, origin);
    } catch (error) {
      // Not tested (hashing shed, the database failed): the slot goes back.
      await attempt.release();
      throw error;
    }
    if (!user) {
      await this.recordFailure(attempt, credentials.email, origin);
      throw new ServiceError('invalid_credentials', INVALID_CREDENTIALS);
    }
    await attempt.release();
    // Past this point the caller has proved the password, so plain reasons are no leak.
    if (user.disabled_at) throw new ServiceError('forbidden', 'this account is disabled; ask an administrator');
    if (user.tenant_id && !(await this.deps.tenantActive(user.tenant_id))) {
      throw new ServiceError('forbidden', `tenant ${user.tenant_id} of this account is disabled; ask an administrator`);
    }
    const now = this.deps.now();
    await repo.touchSignIn(this.deps.db, user.id, now);
    return { ...user, last_sign_in_at: now };
  }

  /**
   * Rotates a refresh token: the old one is spent; presenting a spent one revokes its whole session,
   * unless it comes back within the reuse interval of its own rotation (two tabs refreshing at once):
   * then it gets the session's current refresh token and a fresh access token.
   */
  async refresh(refreshToken: unknown, origin: RequestOrigin, caller: RefreshCaller = {}): Promise<UserSession & { scope: string }> {
    if (!looksLikeRefreshToken(refreshToken)) {
      throw new ServiceError('invalid_grant', 'refresh_token is missing or malformed; it is the opaque string returned by sign-in');
    }
    const hash = hashRefreshToken(refreshToken);
    const now = this.deps.now();
    const next = newRefreshToken();
    // With a reuse interval, the spent token keeps its successor, sealed so that only its holder can open it.
    const sealed = this.reuseIntervalMs > 0 ? sealSuccessor(refreshToken, next) : null;
    // Every refusal but reuse throws inside the transaction, so the presented token stays unspent.
    const outcome = await this.deps.db.transaction().execute(async (trx) => {
      const consumed = await repo.consumeRefreshToken(trx, hash, now, sealed);
      if (!consumed) {
        const known = await repo.findRefreshToken(trx, hash);
        if (!known) return { kind: 'unknown' as const };
        const current = await this.currentOfSession(trx, refreshToken, now);
        if (current) {
          const found = await this.refreshableSession(trx, current.sessionId, caller);
          await repo.markSessionRefreshed(trx, found.session.id, now);
          return { kind: 'current' as const, user: found.user, session: found.session, refreshToken: current.token };
        }
        const revoked = await repo.revokeSession(trx, known.session_id, 'refresh token reuse', now);
        if (revoked) {
          await recordAudit(trx, {
            at: now,
            actor: 'system',
            action: 'session.revoked',
            target: known.session_id,
            reason: 'refresh token reuse',
            requestId: origin.requestId,
            details: { ip: origin.ip },
          });
        }
        return { kind: 'reused' as const, sessionId: known.session_id };
      }
      if (consumed.expires_at <= now) {
        throw new ServiceError('invalid_grant', `refresh token expired ${describeExpiry(consumed.expires_at.getTime(), now)}; sign in again`);
      }
      const found = await this.refreshableSession(trx, consumed.session_id, caller);
      await repo.insertRefreshToken(trx, { hash: hashRefreshToken(next), sessionId: found.session.id, now, expiresAt: this.refreshExpiry(now) });
      await repo.markSessionRefreshed(trx, found.session.id, now);
      return { kind: 'ok' as const, user: found.user, session: found.session, refreshToken: next };
    });

    switch (outcome.kind) {
      case 'unknown':
        throw new ServiceError('invalid_grant', 'refresh token is not valid; sign in again');
      case 'reused':
        this.deps.logger.warn({ sid: outcome.sessionId, requestId: origin.requestId }, 'refresh token reuse: session revoked');
        throw new ServiceError('invalid_grant', 'refresh token was already used; its session has been revoked for safety, sign in again');
      case 'current':
        this.deps.logger.info(
          { sid: outcome.session.id, requestId: origin.requestId },
          "refresh token presented again within IDP_REFRESH_REUSE_INTERVAL: answered with the session's current refresh token",
        );
        break;
    }
    const { user, session } = outcome;
    const application = repo.applicationOf(session);
    const access = await this.sign(user, session.id, now, application);
    return {
      accessToken: access.token,
      expiresAt: access.expiresAt,
      expiresIn: access.expiresIn,
      refreshToken: outcome.refreshToken,
      user: repo.publicUser(user),
      scope: application ? application.scope : USER_SCOPE,
    };
  }

  /**
   * A spent refresh token presented within the reuse interval of its own rotation: follows the sealed
   * successors from it to the session's current (unused, unexpired) refresh token. Undefined when the
   * reuse is not tolerated (no interval, past it, nothing sealed, a broken or overlong chain).
   */
  private async currentOfSession(trx: Transaction<Database>, presented: string, now: Date): Promise<{ token: string; sessionId: string } | undefined> {
    const intervalMs = this.reuseIntervalMs;
    if (intervalMs <= 0) return undefined;
    const start = await repo.lockRefreshTokenLink(trx, hashRefreshToken(presented));
    if (!start?.used_at || now.getTime() - start.used_at.getTime() > intervalMs) return undefined;
    let token = presented;
    let link = start;
    for (let hop = 0; hop < MAX_CHAIN_HOPS; hop++) {
      if (!link.successor) return undefined;
      const successor = openSuccessor(token, link.successor);
      if (!successor) return undefined;
      const next = await repo.lockRefreshTokenLink(trx, hashRefreshToken(successor));
      if (!next || next.session_id !== start.session_id) return undefined;
      if (!next.used_at) return next.expires_at > now ? { token: successor, sessionId: start.session_id } : undefined;
      token = successor;
      link = next;
    }
    return undefined;
  }

  /**
   * The session of a refresh token, its user and tenant, when it may still be refreshed by this
   * caller; else an invalid_grant. An application's refresh token is refreshed only by that
   * application at /oauth/token (RFC 6749 §6: bound to the client it was issued to); a /auth/v1 one
   * only without a client.
   */
  private async refreshableSession(trx: Transaction<Database>, sessionId: string, caller: RefreshCaller) {
    const found = await repo.findSessionWithUser(trx, sessionId);
    if (found && found.session.client_id !== (caller.clientId ?? null)) {
      throw new ServiceError(
        'invalid_grant',
        found.session.client_id === null
          ? 'this refresh token belongs to a /auth/v1 session, which no client refreshes; send it without client authentication'
          : caller.clientId === undefined
            ? 'this refresh token was issued to a client: refresh it at /oauth/token, authenticated as that client (a public client sends its client_id)'
            : 'this refresh token was issued to another client',
      );
    }
    if (!found || found.session.revoked_at) throw new ServiceError('invalid_grant', 'the session of this refresh token has been signed out; sign in again');
    if (found.user.disabled_at) throw new ServiceError('invalid_grant', 'this account is disabled; ask an administrator');
    if (found.tenantDisabled) {
      throw new ServiceError('invalid_grant', `tenant ${found.user.tenant_id} of this account is disabled; ask an administrator`);
    }
    return found;
  }

  private get reuseIntervalMs(): number {
    return this.deps.settings.refreshReuseIntervalMs ?? 0;
  }

  /**
   * The caller of the user API: a valid /auth/v1 access token whose session is open, whose user is
   * enabled and whose tenant (if any) is enabled. Anything else is a 401.
   */
  async authenticate(token: string): Promise<AuthenticatedUser> {
    const caller = await this.liveAccess(token, this.deps.settings.audience);
    // An application's token (the authorization-code flow) is for that application's APIs, not for
    // the user's own account: it could otherwise create API keys with whatever scope it was granted.
    if (caller.claims.client_id !== undefined) {
      throw new ServiceError('invalid_token', "an application's access token is not accepted by /auth/v1; sign in at /auth/v1/token", {
        logDetail: `client_id ${caller.claims.client_id}`,
      });
    }
    return caller;
  }

  /**
   * Any live user access token, /auth/v1's or an application's, whatever its audience (introspection
   * and userinfo answer for every resource): signed by us, unexpired, not revoked by `jti`, its
   * session open, its user and tenant enabled. Anything else is a ServiceError (invalid_token).
   */
  async authenticateAnyAudience(token: string): Promise<AuthenticatedUser & { session: SessionRow }> {
    return this.liveAccess(token, 'any');
  }

  private async liveAccess(token: string, audience: string | 'any'): Promise<AuthenticatedUser & { session: SessionRow }> {
    const now = this.deps.now();
    const claims = await verifyUserAccessToken(this.deps.verifier, token, { audience, now });
    const found = await repo.findSessionWithUser(this.deps.db, claims.sid);
    if (!found || found.user.id !== claims.sub || found.session.client_id !== (claims.client_id ?? null)) {
      throw new ServiceError('invalid_token', 'the access token is not valid; sign in again to get a new one', { logDetail: 'unknown session' });
    }
    if (found.session.revoked_at) throw new ServiceError('invalid_token', 'this session has been signed out; sign in again');
    if (found.user.disabled_at) throw new ServiceError('invalid_token', 'this account is disabled; ask an administrator');
    if (found.tenantDisabled) {
      throw new ServiceError('invalid_token', `tenant ${found.user.tenant_id} of this account is disabled; ask an administrator`);
    }
    // Only an application's tokens can be revoked one by one (by their client, or a code's replay).
    if (claims.client_id !== undefined && typeof claims.jti === 'string' && (await accessTokenRevoked(this.deps.db, claims.jti))) {
      throw new ServiceError('invalid_token', 'this access token has been revoked');
    }
    return { claims, user: found.user, session: found.session };
  }

  /** Signs the caller out: the session is revoked, and with it every access and refresh token it has. */
  async logout(caller: AuthenticatedUser, origin: RequestOrigin): Promise<void> {
    await this.revokeSession(caller.claims.sid, `user:${caller.user.id}`, 'logout', origin.requestId);
  }

  async revokeSession(sessionId: string, actor: string, reason: string, requestId?: string): Promise<boolean> {
    const now = this.deps.now();
    return this.deps.db.transaction().execute(async (trx) => {
      const revoked = await repo.revokeSession(trx, sessionId, reason, now);
      if (revoked) await recordAudit(trx, { at: now, actor, action: 'session.revoked', target: sessionId, reason, requestId });
      return revoked;
    });
  }

  /** A hash that could not even queue is a 503 the client may retry, never a 500. */
  private async hashing<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      if (error instanceof PasswordHashingBusy) {
        throw new ServiceError('temporarily_unavailable', 'too many sign-ins in progress; retry in a second', { retryAfterSeconds: 1 });
      }
      throw error;
    }
  }

  /** The user whose password this is, or undefined. Always one argon2 verification, against a dummy hash for an unknown email: same answer, same time. */
  private async checkPassword(credentials: Credentials, origin: RequestOrigin): Promise<UserRow | undefined> {
    const user = await repo.findUserByEmail(this.deps.db, credentials.email);
    const { passwords } = this.deps;
    try {
      const matches = await this.hashing(passwords.verify(user?.password_hash ?? (await passwords.dummyHash()), credentials.password));
      return user && matches ? user : undefined;
    } catch (error) {
      if (!(error instanceof MalformedPasswordHash) || !user) throw error;
      // Answered as a wrong password (no difference shows), but this account cannot sign in until an operator resets it.
      this.deps.logger.error({ userId: user.id, requestId: origin.requestId }, 'stored password hash is malformed: the account cannot sign in; reset its password');
      return undefined;
    }
  }

  private async recordFailure(attempt: Attempt, email: string, origin: RequestOrigin): Promise<void> {
    const reached = await attempt.count();
    if (reached.length === 0) return;
    // One event per block: exactly one failure brings a key to its limit.
    this.deps.logger.warn({ keys: reached, requestId: origin.requestId }, 'sign-in failure limit reached');
    await recordAudit(this.deps.db, {
      at: this.deps.now(),
      actor: `ip:${origin.ip}`,
      action: 'signin.failure_limit_reached',
      target: email,
      requestId: origin.requestId,
      details: { limited: reached },
    });
  }

  private async openSession(user: UserRow, now: Date): Promise<UserSession> {
    const sessionId = crypto.randomUUID();
    const refreshToken = newRefreshToken();
    await this.deps.db.transaction().execute(async (trx) => {
      await repo.insertSession(trx, { id: sessionId, userId: user.id, now });
      await repo.insertRefreshToken(trx, { hash: hashRefreshToken(refreshToken), sessionId, now, expiresAt: this.refreshExpiry(now) });
    });
    const access = await this.sign(user, sessionId, now);
    return { accessToken: access.token, expiresAt: access.expiresAt, expiresIn: access.expiresIn, refreshToken, user: repo.publicUser(user) };
  }

  /**
   * Opens a session for an application (the authorization-code flow) inside the caller's
   * transaction: the session row and, with `offline` (scope offline_access), its first refresh token.
   */
  async openApplicationSession(
    trx: Transaction<Database>,
    user: UserRow,
    application: repo.ApplicationSession,
    options: { offline: boolean; now: Date },
  ): Promise<{ sessionId: string; refreshToken?: string }> {
    const sessionId = crypto.randomUUID();
    await repo.insertSession(trx, { id: sessionId, userId: user.id, now: options.now, application });
    if (!options.offline) return { sessionId };
    const refreshToken = newRefreshToken();
    await repo.insertRefreshToken(trx, { hash: hashRefreshToken(refreshToken), sessionId, now: options.now, expiresAt: this.refreshExpiry(options.now) });
    return { sessionId, refreshToken };
  }

  /** The access token of an application's session (`jti` chosen by the caller, who records it first). */
  signApplicationToken(user: UserRow, sessionId: string, application: repo.ApplicationSession, now: Date, jti: string) {
    return this.sign(user, sessionId, now, application, jti);
  }

  /** The access token lifetime (what a caller recording a token's expiry ahead of signing needs). */
  get accessTokenTtlMs(): number {
    return this.deps.settings.accessTokenTtlMs;
  }

  private sign(user: UserRow, sessionId: string, now: Date, application?: repo.ApplicationSession, jti?: string) {
    const { issuer, audience, accessTokenTtlMs } = this.deps.settings;
    return issueUserAccessToken(
      this.deps.sign,
      { issuer, audience, ttlMs: accessTokenTtlMs, now, jti },
      {
        userId: user.id,
        sessionId,
        email: user.email,
        role: user.role,
        tenantId: user.tenant_id,
        ...(application && { application: { clientId: application.clientId, scope: application.scope, resources: application.resources } }),
      },
    );
  }

  private refreshExpiry(now: Date): Date {
    return new Date(now.getTime() + this.deps.settings.refreshTokenTtlMs);
  }
}

function tooManyAttempts(what: string, retryAfterSeconds: number): ServiceError {
  return new ServiceError('too_many_requests', `too many ${what}; try again in ${retryAfterSeconds} seconds`, { retryAfterSeconds });
}

/** The 503 of saturated hashing (see `hashing`). */
function isShed(error: unknown): boolean {
  return error instanceof ServiceError && error.code === 'temporarily_unavailable';
}

function userExists(): ServiceError {
  return new ServiceError('user_already_exists', 'an account with this email already exists; sign in instead');
}
