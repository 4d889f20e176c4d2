import { createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type KeyLike } from 'jose';
import { callIdp, IdpUnreachable, isObject, maxAgeOf } from './http';
import type { FetchFunction } from './options';

/** The token's header names no `kid`; every key this provider publishes has one. */
export class MissingKeyId extends Error {
  readonly code = 'ERR_MISSING_KID';
  constructor() {
    super('the token header names no kid');
    this.name = 'MissingKeyId';
  }
}

/** While no key set was ever fetched, the least time between two attempts, ms. */
const FIRST_FETCH_RETRY_MS = 1_000;

export interface KeySetOptions {
  fetch: FetchFunction;
  timeout: number;
  /** Least time between two fetches, ms (unknown kid, and a floor under max-age). */
  cooldown: number;
  /** Longest use of one fetched set, ms, whatever Cache-Control says. */
  maxAge: number;
  /** Called after a fetch that changed the set of key ids. */
  onChange(): void;
}

export interface KeySetStatus {
  /** Key ids of the set in use. */
  kids: readonly string[];
  fetchedAt: Date | undefined;
  /** When the set is refetched at the next use. */
  freshUntil: Date | undefined;
  /** The last fetch failed (the previous set, if any, is still in use). */
  lastError: string | undefined;
}

/**
 * The identity provider's JWKS, fetched with `fetch` and handed to jose's `createLocalJWKSet`, which
 * selects and imports the key (by `kid`, `kty`, `alg`, `use`) for `jwtVerify`.
 *
 * Why not jose's `createRemoteJWKSet`: it cannot see `Cache-Control`, and once its `cacheMaxAge`
 * has passed a failed refetch makes every verification fail — with the identity provider down,
 * JWTs would stop verifying after ten minutes. Here:
 * - the set is fresh for `Cache-Control: max-age`, within [cooldown, maxAge];
 * - a stale set is refetched at its next use; if that fails, the stale set keeps verifying
 *   (docs/verifier-kit.md "Protecting an API": resource servers keep working while the identity provider is down);
 * - a `kid` not in the set triggers one refetch, unless the last fetch was less than `cooldown`
 *   ago (so forged kids cannot make us hammer the identity provider);
 * - one fetch at a time (single flight).
 */
export class RemoteKeySet {
  private local: ReturnType<typeof createLocalJWKSet> | undefined;
  private kids: readonly string[] = [];
  private fetchedAt: number | undefined;
  private freshUntil = 0;
  private lastAttempt = -Infinity;
  private lastError: string | undefined;
  private lastFailure: Error | undefined;
  private pending: Promise<void> | undefined;

  constructor(
    private readonly uri: () => Promise<string>,
    private readonly options: KeySetOptions,
  ) {}

  /** jose's key lookup (`jwtVerify(token, keySet.getKey, ...)`). */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<KeyLike> => {
    if (typeof header.kid !== 'string') throw new MissingKeyId();
    const now = Date.now();
    if (this.local === undefined) {
      // Never fetched: after a failure, fail fast for a second rather than queue every request on a dead provider.
      if (this.lastFailure !== undefined && now - this.lastAttempt < FIRST_FETCH_RETRY_MS) throw this.lastFailure;
      await this.load();
    } else if (now >= this.freshUntil && now - this.lastAttempt >= this.options.cooldown) {
      // Stale: refetch, but keep the set we have when the identity provider cannot be reached.
      await this.load().catch(() => undefined);
    }
    try {
      return await (this.local as ReturnType<typeof createLocalJWKSet>)(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || Date.now() - this.lastAttempt < this.options.cooldown) throw error;
      await this.load();
      return (this.local as ReturnType<typeof createLocalJWKSet>)(header, token);
    }
  };

  /** Makes sure a set is loaded (fetching it if never fetched); throws IdpUnreachable otherwise. */
  async ready(): Promise<void> {
    if (this.local === undefined) await this.load();
  }

  status(): KeySetStatus {
    return {
      kids: this.kids,
      fetchedAt: this.fetchedAt === undefined ? undefined : new Date(this.fetchedAt),
      freshUntil: this.fetchedAt === undefined ? undefined : new Date(this.freshUntil),
      lastError: this.lastError,
    };
  }

  private load(): Promise<void> {
    this.pending ??= this.fetchSet().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async fetchSet(): Promise<void> {
    this.lastAttempt = Date.now();
    try {
      const uri = await this.uri();
      const answer = await callIdp(this.options.fetch, uri, { timeout: this.options.timeout, retryNetworkError: true });
      if (answer.status !== 200) throw new IdpUnreachable(`${uri} answered ${answer.status}`);
      const body = answer.body;
      if (!isObject(body) || !Array.isArray(body.keys)) throw new IdpUnreachable(`${uri} did not answer a JSON Web Key Set`);
      let local: ReturnType<typeof createLocalJWKSet>;
      try {
        local = createLocalJWKSet(body as unknown as JSONWebKeySet);
      } catch (error) {
        throw new IdpUnreachable(`${uri}: ${(error as Error).message}`, { cause: error });
      }
      const kids = (body.keys as unknown[]).flatMap((key) => (isObject(key) && typeof key.kid === 'string' ? [key.kid] : []));
      const now = Date.now();
      const maxAge = maxAgeOf(answer.headers.get('cache-control')) ?? this.options.maxAge;
      const changed = this.local !== undefined && (kids.length !== this.kids.length || kids.some((kid) => !this.kids.includes(kid)));
      this.local = local;
      this.kids = Object.freeze(kids);
      this.fetchedAt = now;
      this.freshUntil = now + Math.min(this.options.maxAge, Math.max(this.options.cooldown, maxAge));
      this.lastError = undefined;
      this.lastFailure = undefined;
      if (changed) this.options.onChange();
    } catch (error) {
      this.lastFailure = error instanceof Error ? error : new Error(String(error));
      this.lastError = this.lastFailure.message;
      throw error;
    }
  }
}
