import type { RoleMap } from './roles';

export { TOKEN_KINDS, type TokenKind } from './token-kinds';

/** The `fetch` the verifier calls the identity provider with (discovery, JWKS, introspection). */
export type FetchFunction = (input: string, init: RequestInit) => Promise<Response>;

/** Options of `createVerifier`. Every default is stated here and applied in `resolveOptions`. */
export interface VerifierOptions {
  /** The identity provider's issuer URL, exactly as in its tokens' `iss` (no trailing `/`). Discovery is read from `${issuer}/.well-known/oauth-authorization-server`. */
  issuer: string;
  /** The audience(s) this resource server accepts: a token's `aud` must name one of them. */
  audience: string | readonly string[];
  /** This resource server's OAuth client, used (client_secret_basic) at the introspection endpoint for API keys and `checkRevocation`. Without it, API keys are refused. */
  clientId?: string;
  clientSecret?: string;
  /** Seconds of clock skew allowed on `exp`, `nbf` and `iat` (an `iat` further ahead is refused). @default 5 */
  clockTolerance?: number;
  /**
   * The longest a token may live: refused when issued longer ago than this (`now - iat`), or when
   * its own lifetime (`exp - iat`) is longer, so a token with `exp` decades ahead is refused at once.
   * Seconds, or a duration such as `'15m'`, `'1h'`, `'1d'`. @default none (only `exp` bounds a token)
   */
  maxTokenAge?: number | string;
  /**
   * Also ask the introspection endpoint about every JWT (behind the cache), so that a revoked token
   * or a signed-out session is refused within `cache.activeTtl` rather than at its `exp`. Needs
   * `clientId`/`clientSecret`, and makes JWT verification depend on the identity provider being up.
   * @default false
   */
  checkRevocation?: boolean;
  /** Application roles from claims, declared once (see `RoleMap`). @default {} */
  roles?: RoleMap;
  /** `realm` of `WWW-Authenticate`. @default the first audience */
  realm?: string;
  /** The fetch implementation. @default globalThis.fetch */
  fetch?: FetchFunction;
  /** Timeout of each call to the identity provider, ms. @default 5000 */
  timeout?: number;
  jwks?: {
    /**
     * The least time between two fetches of the JWKS, ms: a token naming an unknown `kid` triggers a
     * refetch only once this has passed since the last one, and `Cache-Control: max-age` shorter than
     * this is read as this. @default 30000
     */
    cooldown?: number;
    /** The longest the key set is used without a refetch, whatever its `Cache-Control` says, ms. @default 600000 */
    maxAge?: number;
  };
  cache?: {
    /** Entries in each cache (introspection answers; verified JWTs); the least recently used go first. @default 10000 */
    maxEntries?: number;
    /** How long an active introspection answer is reused, ms; never past the credential's `exp`. At most 30000. @default 30000 */
    activeTtl?: number;
    /** How long an inactive introspection answer is reused, ms. At most 5000. @default 5000 */
    inactiveTtl?: number;
    /**
     * How long a verified JWT's result is reused for the same token (keyed by its SHA-256), ms;
     * never past its `exp`, and dropped whenever the key set changes. 0 turns it off. @default 5000
     */
    verifiedTtl?: number;
  };
}

export interface ResolvedOptions {
  issuer: string;
  audiences: readonly string[];
  credentials: { clientId: string; clientSecret: string } | undefined;
  clockTolerance: number;
  /** Seconds; undefined when not set. */
  maxTokenAge: number | undefined;
  checkRevocation: boolean;
  realm: string;
  fetch: FetchFunction;
  timeout: number;
  jwksCooldown: number;
  jwksMaxAge: number;
  maxEntries: number;
  activeTtl: number;
  inactiveTtl: number;
  verifiedTtl: number;
}

export const MAX_ACTIVE_TTL = 30_000;
export const MAX_INACTIVE_TTL = 5_000;

/** Checks and completes the options; misuse throws a TypeError at once, naming the option. */
export function resolveOptions(options: VerifierOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new TypeError('createVerifier: options are required');
  const issuer = options.issuer;
  if (typeof issuer !== 'string' || !/^https?:\/\/[^/]/.test(issuer)) throw new TypeError('createVerifier: issuer must be an http(s) URL');
  if (issuer.endsWith('/')) throw new TypeError('createVerifier: issuer must not end with "/" (it must equal the tokens\' iss exactly)');
  const audiences = typeof options.audience === 'string' ? [options.audience] : options.audience;
  if (!Array.isArray(audiences) || audiences.length === 0 || !audiences.every((a) => typeof a === 'string' && a !== '')) {
    throw new TypeError('createVerifier: audience must be a non-empty string or array of strings');
  }
  const { clientId, clientSecret } = options;
  if ((clientId === undefined) !== (clientSecret === undefined)) throw new TypeError('createVerifier: give both clientId and clientSecret, or neither');
  if (clientId !== undefined && (typeof clientId !== 'string' || clientId === '' || typeof clientSecret !== 'string' || clientSecret === '')) {
    throw new TypeError('createVerifier: clientId and clientSecret must be non-empty strings');
  }
  const credentials = clientId !== undefined ? { clientId, clientSecret: clientSecret as string } : undefined;
  const checkRevocation = options.checkRevocation ?? false;
  if (checkRevocation && !credentials) throw new TypeError('createVerifier: checkRevocation needs clientId and clientSecret (introspection is client-authenticated)');
  const fetchFn = options.fetch ?? globalThis.fetch;
  if (typeof fetchFn !== 'function') throw new TypeError('createVerifier: no fetch implementation (Node 18+ has one; or pass options.fetch)');
  const activeTtl = number('cache.activeTtl', options.cache?.activeTtl, MAX_ACTIVE_TTL, 0, MAX_ACTIVE_TTL);
  const inactiveTtl = number('cache.inactiveTtl', options.cache?.inactiveTtl, MAX_INACTIVE_TTL, 0, MAX_INACTIVE_TTL);
  return {
    issuer,
    audiences: Object.freeze([...audiences]),
    credentials,
    clockTolerance: number('clockTolerance', options.clockTolerance, 5, 0, 3600),
    maxTokenAge: maxTokenAge(options.maxTokenAge),
    checkRevocation,
    realm: options.realm ?? (audiences[0] as string),
    fetch: fetchFn,
    timeout: number('timeout', options.timeout, 5_000, 1, 120_000),
    jwksCooldown: number('jwks.cooldown', options.jwks?.cooldown, 30_000, 0, 86_400_000),
    jwksMaxAge: number('jwks.maxAge', options.jwks?.maxAge, 600_000, 0, 7 * 86_400_000),
    maxEntries: number('cache.maxEntries', options.cache?.maxEntries, 10_000, 1, 10_000_000),
    activeTtl,
    inactiveTtl,
    verifiedTtl: number('cache.verifiedTtl', options.cache?.verifiedTtl, 5_000, 0, 60_000),
  };
}

const DURATION_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };
const MAX_TOKEN_AGE_LIMIT = 366 * 86_400;

/** `maxTokenAge` in seconds: a whole number of seconds, or `<n>s|m|h|d`; from 1 s to 366 days. */
function maxTokenAge(value: number | string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = typeof value === 'string' ? /^(\d{1,9})\s*([smhd])$/.exec(value) : null;
  const seconds = typeof value === 'number' ? value : match ? Number(match[1]) * (DURATION_UNITS[match[2] as string] as number) : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 1 || seconds > MAX_TOKEN_AGE_LIMIT) {
    throw new TypeError(`createVerifier: maxTokenAge must be whole seconds from 1 to ${MAX_TOKEN_AGE_LIMIT}, or a duration such as '15m', '1h' or '1d'`);
  }
  return seconds;
}

function number(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw new TypeError(`createVerifier: ${name} must be a number from ${min} to ${max}`);
  }
  return value;
}
