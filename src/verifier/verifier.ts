import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { BoundedCache, credentialHash } from './cache';
import { readCredential, type HeaderSource } from './credentials';
import { Discovery, IdpMisconfigured } from './discovery';
import { InsufficientScope, InvalidToken, TemporarilyUnavailable, VerifierError } from './errors';
import { IdpUnreachable } from './http';
import { Introspector, type ActiveIntrospection } from './introspection';
import { MissingKeyId, RemoteKeySet, type KeySetStatus } from './key-set';
import { resolveOptions, TOKEN_KINDS, type ResolvedOptions, type TokenKind, type VerifierOptions } from './options';
import { compileRoles, type RoleMapper } from './roles';
import { quoted } from './quoted';

/** The verified caller (`req.auth`), frozen. */
export interface AuthInfo {
  /** `sub`: a user id, a client id, `admin-token:<id>`, or an API key's owner. */
  readonly subject: string;
  readonly tokenType: TokenKind;
  /** The `scope` claim (or the API key's scopes), split. */
  readonly scopes: readonly string[];
  /** `tenant_id`, or null for a credential outside any tenant. */
  readonly tenantId: string | null;
  /** `client_id`: client tokens, and exchanged tokens and API keys owned by a client. */
  readonly clientId?: string;
  /** Application roles from the verifier's role map. */
  readonly roles: readonly string[];
  /**
   * A delegated token's actors (RFC 8693 `act`): client ids, the current one first, then the one it
   * acts for, and so on; `[]` when the caller is not acting for anyone.
   */
  readonly actor: readonly string[];
  /** Every claim of the JWT, or every member of the API key's introspection answer. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/**
 * What a route requires. `scopes` and `permissions`: every one (AND). `roles` and `tokenTypes`:
 * any one (OR). A verified caller without them gets 403 `insufficient_scope` naming what is missing.
 */
export interface AuthRequirements {
  scopes?: readonly string[];
  /** Entries of the `permissions` claim (admin tokens). */
  permissions?: readonly string[];
  roles?: readonly string[];
  tokenTypes?: readonly TokenKind[];
  /**
   * Delegation: absent, delegated tokens and others alike; `[]`, no delegated token; client ids,
   * only a delegated token with every one of them in its actor chain.
   */
  actors?: readonly string[];
}

export interface VerifierStatus {
  /** Discovery succeeded. */
  discovered: boolean;
  keys: KeySetStatus;
}

const UNREACHABLE = 'the identity provider is unreachable; try again shortly';
const MISCONFIGURED = 'the identity provider cannot be used by this resource server (see its log)';

/** `2026-11-26T10:00:00Z`; the number itself beyond what a Date holds (a claim may say 1e300). */
function isoSeconds(epochSeconds: number): string {
  const date = new Date(epochSeconds * 1000);
  return Number.isNaN(date.getTime()) ? String(epochSeconds) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A claim value shown in a description, quoted, cut and escaped (./quoted.ts); of a list, the first three. */
function shown(value: unknown): string {
  if (!Array.isArray(value)) return quoted(String(value));
  return `${value.slice(0, 3).map((v) => quoted(String(v))).join(', ')}${value.length > 3 ? ', …' : ''}`;
}

function issuedInFuture(iat: number, cause?: unknown): InvalidToken {
  return new InvalidToken('not_yet_valid', `token issued in the future (iat ${isoSeconds(iat)})`, { cause });
}

function stringList(value: unknown): readonly string[] {
  return Array.isArray(value) ? Object.freeze(value.filter((v): v is string => typeof v === 'string')) : EMPTY;
}

function scopesOf(scope: unknown): readonly string[] {
  return typeof scope === 'string' && scope !== '' ? Object.freeze(scope.split(' ').filter((s) => s !== '')) : EMPTY;
}

const EMPTY: readonly string[] = Object.freeze([]);

/** RFC 8693 §4.1 `act`, nested, as client ids outermost first; a malformed one is refused (never read as "not delegated"). */
function actorsOf(act: unknown): readonly string[] {
  if (act === undefined) return EMPTY;
  const chain: string[] = [];
  for (let level: unknown = act; level !== undefined; level = (level as { act?: unknown }).act) {
    const sub = typeof level === 'object' && level !== null && chain.length < 64 ? (level as { sub?: unknown }).sub : undefined;
    if (typeof sub !== 'string' || sub === '') throw new InvalidToken('claims', 'invalid claim "act"');
    chain.push(sub);
  }
  return Object.freeze(chain);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

/**
 * The resource server's half (docs/verifier-kit.md "Protecting an API". Build one per process with `createVerifier` and share it:
 * it holds the discovered metadata, the key set and the caches.
 */
export class Verifier {
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly realm: string;
  private readonly options: ResolvedOptions;
  private readonly discovery: Discovery;
  private readonly keys: RemoteKeySet;
  private readonly introspector: Introspector | undefined;
  private readonly verified: BoundedCache<AuthInfo>;
  private readonly mapRoles: RoleMapper;
  private readonly fromIntrospection = new WeakMap<ActiveIntrospection, AuthInfo>();
  private readonly verifyOptions: JWTVerifyOptions;

  constructor(options: VerifierOptions) {
    this.options = resolveOptions(options);
    const o = this.options;
    this.issuer = o.issuer;
    this.audiences = o.audiences;
    this.realm = o.realm;
    this.mapRoles = compileRoles(options.roles);
    this.discovery = new Discovery(o.issuer, o.fetch, o.timeout);
    this.verified = new BoundedCache(o.maxEntries);
    this.keys = new RemoteKeySet(async () => (await this.discovery.get()).jwksUri, {
      fetch: o.fetch,
      timeout: o.timeout,
      cooldown: o.jwksCooldown,
      maxAge: o.jwksMaxAge,
      // A key left the set (revoked, retired): results verified with it must not be reused.
      onChange: () => this.verified.clear(),
    });
    this.introspector = o.credentials
      ? new Introspector(this.discovery, {
          fetch: o.fetch,
          timeout: o.timeout,
          credentials: o.credentials,
          maxEntries: o.maxEntries,
          activeTtl: o.activeTtl,
          inactiveTtl: o.inactiveTtl,
        })
      : undefined;
    this.verifyOptions = {
      algorithms: ['RS256'],
      issuer: o.issuer,
      audience: [...o.audiences],
      typ: 'at+jwt',
      clockTolerance: o.clockTolerance,
      requiredClaims: ['exp', 'iat', 'sub'],
      // jose: `iat` required, refused when older than this (or ahead of now, beyond the tolerance).
      ...(o.maxTokenAge === undefined ? {} : { maxTokenAge: o.maxTokenAge }),
    };
  }

  /**
   * Authenticates a request from its headers (`Authorization: Bearer <jwt | API key>` or
   * `X-API-Key`), then checks `requirements`. Throws a VerifierError; anything else is a bug.
   */
  async authenticate(headers: HeaderSource, requirements?: AuthRequirements): Promise<AuthInfo> {
    const credential = readCredential(headers);
    const auth = credential.kind === 'api_key' ? await this.verifyApiKey(credential.value) : await this.verifyJwt(credential.value);
    if (requirements !== undefined) this.authorize(auth, requirements);
    return auth;
  }

  /** Checks a verified caller against a route's requirements; throws InsufficientScope (403). */
  authorize(auth: AuthInfo, requirements: AuthRequirements): void {
    const { tokenTypes, scopes, permissions, roles } = requirements;
    if (tokenTypes !== undefined && !tokenTypes.includes(auth.tokenType)) {
      throw new InsufficientScope(`token type "${auth.tokenType}" not accepted here (accepted: ${tokenTypes.join(', ')})`);
    }
    if (scopes !== undefined && scopes.length > 0) {
      const missing = scopes.filter((s) => !auth.scopes.includes(s));
      if (missing.length > 0) throw new InsufficientScope(`missing scope${missing.length > 1 ? 's' : ''} "${missing.join(' ')}"`, scopes.join(' '));
    }
    if (permissions !== undefined && permissions.length > 0) {
      const held = stringList(auth.claims.permissions);
      const missing = permissions.filter((p) => !held.includes(p));
      if (missing.length > 0) throw new InsufficientScope(`missing permission${missing.length > 1 ? 's' : ''} "${missing.join(' ')}"`);
    }
    if (roles !== undefined && roles.length > 0 && !roles.some((r) => auth.roles.includes(r))) {
      throw new InsufficientScope(roles.length === 1 ? `missing role "${roles[0]}"` : `missing role: one of "${roles.join('", "')}"`);
    }
    const { actors } = requirements;
    if (actors !== undefined) {
      if (actors.length === 0 && auth.actor.length > 0) throw new InsufficientScope(`delegated tokens are not accepted here (acting: "${auth.actor.map(shown).join('", "')}")`);
      const missing = actors.filter((a) => !auth.actor.includes(a));
      if (missing.length > 0) {
        throw new InsufficientScope(auth.actor.length === 0 ? `a delegated token is required (actor "${missing.join('", "')}")` : `actor "${missing.join('", "')}" not in the delegation chain`);
      }
    }
  }

  /** Discovers the identity provider and fetches its key set now (e.g. at start-up); throws TemporarilyUnavailable. */
  async ready(): Promise<void> {
    try {
      await this.keys.ready();
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  status(): VerifierStatus {
    return { discovered: this.discovery.known !== undefined, keys: this.keys.status() };
  }

  /** A bare credential (a JWT or an API key), as found in a header. */
  verifyCredential(credential: string): Promise<AuthInfo> {
    return this.authenticate({ authorization: `Bearer ${credential}` });
  }

  private async verifyJwt(token: string): Promise<AuthInfo> {
    const { verifiedTtl, checkRevocation } = this.options;
    const hash = verifiedTtl > 0 || checkRevocation ? credentialHash(token) : '';
    if (verifiedTtl > 0) {
      const hit = this.verified.get(hash, Date.now());
      if (hit !== undefined) {
        if (checkRevocation) await this.checkActive(token, hash);
        return hit;
      }
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys.getKey, this.verifyOptions));
    } catch (error) {
      throw this.jwtFailure(error, token);
    }
    this.checkIssuedAt(payload);
    const auth = this.jwtAuthInfo(payload);
    if (checkRevocation) await this.checkActive(token, hash);
    if (verifiedTtl > 0) {
      const now = Date.now();
      const { maxTokenAge } = this.options;
      const tooOldAt = maxTokenAge === undefined ? Infinity : ((payload.iat as number) + maxTokenAge) * 1000;
      const expiresAt = Math.min(now + verifiedTtl, (payload.exp as number) * 1000, tooOldAt);
      if (expiresAt > now) this.verified.set(hash, auth, expiresAt);
    }
    return auth;
  }

  /**
   * `iat` (a number: jose checked it) is never ahead of now beyond the clock tolerance, and with
   * `maxTokenAge` the token's lifetime (`exp - iat`) is not longer than it (jose checks `now - iat`).
   */
  private checkIssuedAt(payload: JWTPayload): void {
    const iat = payload.iat as number;
    const exp = payload.exp as number;
    const { clockTolerance, maxTokenAge } = this.options;
    if (iat > Date.now() / 1000 + clockTolerance) throw issuedInFuture(iat);
    if (maxTokenAge !== undefined && exp - iat > maxTokenAge) {
      throw new InvalidToken('lifetime', `token lifetime over maxTokenAge ${maxTokenAge}s (issued at ${isoSeconds(iat)}, expires at ${isoSeconds(exp)})`);
    }
  }

  private async checkActive(token: string, hash: string): Promise<void> {
    const answer = await this.introspect(token, hash);
    if (!answer.active) throw new InvalidToken('revoked', 'token revoked (the identity provider reports it inactive)');
  }

  private async introspect(credential: string, hash: string) {
    try {
      return await (this.introspector as Introspector).introspect(credential, hash);
    } catch (error) {
      throw this.unavailable(error);
    }
  }

  /** docs/tokens.md "Tokens": the kind follows from the claims; anything else signed by the provider is refused. */
  private jwtAuthInfo(payload: JWTPayload): AuthInfo {
    const claims = deepFreeze(payload) as Readonly<Record<string, unknown>>;
    const sub = claims.sub;
    if (typeof sub !== 'string' || sub === '') throw new InvalidToken('claims', 'invalid claim "sub"');
    const clientId = typeof claims.client_id === 'string' ? claims.client_id : undefined;
    let tokenType: TokenKind;
    if (typeof claims.api_key_id === 'string') tokenType = 'exchanged';
    else if (claims.token_type === 'admin') tokenType = 'admin';
    else if (typeof claims.sid === 'string' && (claims.token_type === undefined || claims.token_type === 'user')) tokenType = 'user';
    else if (clientId === sub && claims.sid === undefined && claims.token_type === undefined) tokenType = 'client';
    else throw new InvalidToken('kind', 'not an access token of a known kind (user, client, admin or exchanged)');
    return this.authInfo(tokenType, sub, claims, clientId);
  }

  private async verifyApiKey(key: string): Promise<AuthInfo> {
    if (this.introspector === undefined) {
      throw new InvalidToken('api_keys_disabled', 'API keys are not accepted here (this resource server has no client credentials to check them)');
    }
    const answer = await this.introspect(key, credentialHash(key));
    if (!answer.active) throw new InvalidToken('revoked', 'API key not active (unknown, revoked or expired)');
    let auth = this.fromIntrospection.get(answer);
    if (auth === undefined) {
      if (answer.token_type !== 'api_key' || typeof answer.sub !== 'string' || answer.sub === '') throw new InvalidToken('kind', 'not an API key');
      auth = this.authInfo('api_key', answer.sub, deepFreeze({ ...answer }), typeof answer.client_id === 'string' ? answer.client_id : undefined);
      this.fromIntrospection.set(answer, auth);
    }
    if (typeof answer.exp === 'number' && answer.exp * 1000 <= Date.now()) throw new InvalidToken('expired', `API key expired at ${isoSeconds(answer.exp)}`);
    return auth;
  }

  private authInfo(tokenType: TokenKind, subject: string, claims: Readonly<Record<string, unknown>>, clientId: string | undefined): AuthInfo {
    const scopes = scopesOf(claims.scope);
    const tenantId = typeof claims.tenant_id === 'string' ? claims.tenant_id : null;
    const roles = this.mapRoles({
      tokenType,
      role: typeof claims.role === 'string' ? claims.role : undefined,
      scopes,
      permissions: stringList(claims.permissions),
      tenantId,
    });
    const actor = actorsOf(claims.act);
    const auth: AuthInfo = clientId === undefined ? { subject, tokenType, scopes, tenantId, roles, actor, claims } : { subject, tokenType, scopes, tenantId, clientId, roles, actor, claims };
    return Object.freeze(auth);
  }

  /** jose's verdict → the precise description of docs/verifier-kit.md "Protecting an API". */
  private jwtFailure(error: unknown, token: string): VerifierError {
    if (error instanceof VerifierError) return error;
    if (error instanceof IdpUnreachable || error instanceof IdpMisconfigured) return this.unavailable(error);
    if (error instanceof MissingKeyId) return new InvalidToken('unknown_key', 'unknown signing key (the token names no kid)', { cause: error });
    if (error instanceof errors.JWTExpired && error.claim === 'iat' && typeof error.payload.iat === 'number') {
      return new InvalidToken('expired', `token too old: issued at ${isoSeconds(error.payload.iat)}, over maxTokenAge ${this.options.maxTokenAge}s ago`, { cause: error });
    }
    if (error instanceof errors.JWTExpired) {
      const exp = error.payload.exp;
      return new InvalidToken('expired', typeof exp === 'number' ? `token expired at ${isoSeconds(exp)}` : 'token expired', { cause: error });
    }
    if (error instanceof errors.JWTClaimValidationFailed) {
      const { claim, reason, payload } = error;
      if (reason === 'missing') return new InvalidToken('claims', `missing claim "${claim}"`, { cause: error });
      switch (claim) {
        case 'typ': {
          const typ = decodeProtectedHeader(token).typ;
          return new InvalidToken('type', `not an access token (typ ${typ === undefined ? 'missing' : shown(typ)}, expected "at+jwt")`, { cause: error });
        }
        case 'iss':
          return new InvalidToken('issuer', `issuer ${shown(payload.iss)} not accepted`, { cause: error });
        case 'aud':
          return new InvalidToken('audience', `audience ${shown(payload.aud)} not accepted`, { cause: error });
        case 'iat':
          if (reason === 'check_failed' && typeof payload.iat === 'number') return issuedInFuture(payload.iat, error);
          break;
        case 'nbf':
          if (reason === 'check_failed' && typeof payload.nbf === 'number') {
            return new InvalidToken('not_yet_valid', `token not valid before ${isoSeconds(payload.nbf)}`, { cause: error });
          }
          break;
      }
      return new InvalidToken('claims', `invalid claim "${claim}"`, { cause: error });
    }
    if (error instanceof errors.JOSEAlgNotAllowed) {
      let alg: unknown;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch {
        alg = undefined;
      }
      return new InvalidToken('algorithm', `algorithm ${shown(alg)} not accepted (RS256 only)`, { cause: error });
    }
    if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
      return new InvalidToken('unknown_key', 'unknown signing key', { cause: error });
    }
    if (error instanceof errors.JWSSignatureVerificationFailed) return new InvalidToken('signature', 'signature does not verify', { cause: error });
    if (error instanceof errors.JOSEError) return new InvalidToken('malformed', 'malformed token', { cause: error });
    throw error;
  }

  private unavailable(error: unknown): VerifierError {
    if (error instanceof VerifierError) return error;
    if (error instanceof IdpMisconfigured) return new TemporarilyUnavailable(MISCONFIGURED, { cause: error });
    if (error instanceof IdpUnreachable) return new TemporarilyUnavailable(UNREACHABLE, { cause: error });
    throw error;
  }
}

/** Builds a verifier; misuse of the options throws a TypeError at once. No I/O until the first request (or `ready()`). */
export function createVerifier(options: VerifierOptions): Verifier {
  return new Verifier(options);
}

/** Checks a route's requirements once, when the route is declared; misuse throws a TypeError. */
export function checkRequirements(requirements: AuthRequirements): AuthRequirements {
  const lists: Array<keyof AuthRequirements> = ['scopes', 'permissions', 'roles', 'tokenTypes', 'actors'];
  for (const name of lists) {
    const value = requirements[name];
    if (value === undefined) continue;
    if (!Array.isArray(value) || !value.every((v: unknown) => typeof v === 'string' && v !== '')) {
      throw new TypeError(`requireAuth: ${name} must be an array of non-empty strings`);
    }
  }
  const unknown = (requirements.tokenTypes ?? []).filter((t) => !TOKEN_KINDS.includes(t));
  if (unknown.length > 0) throw new TypeError(`requireAuth: unknown token type ${unknown.join(', ')} (known: ${TOKEN_KINDS.join(', ')})`);
  return Object.freeze({ ...requirements });
}
