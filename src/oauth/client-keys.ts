import { LRUCache } from 'lru-cache';
import { importStoredJwks, readPublishedJwks, type ClientKey } from '../clients/jwks';
import { fetchJwks, type FetchedJwks } from '../clients/jwks-uri';
import type { Client } from '../clients/repository';
import type { Logger } from '../observability/logger';

/** A client's keys could not be had, or none fits the assertion: the cause, for the log. */
export class ClientKeysUnavailable extends Error {
  readonly code = 'ERR_CLIENT_KEYS';
  constructor(message: string) {
    super(message);
    this.name = 'ClientKeysUnavailable';
  }
}

/** Defaults of the jwks_uri cache, as docs/verifier-kit.md "Protecting an API" gives our own verifiers. */
export const JWKS_URI_DEFAULTS = Object.freeze({
  /** Least time between two fetches of one client's jwks_uri (an unknown `kid`, a failure): 30 s. */
  cooldownMs: 30_000,
  /** Cache-Control max-age is honoured within [1 min, 1 day]. */
  minMaxAgeMs: 60_000,
  maxMaxAgeMs: 86_400_000,
  /** Without Cache-Control: 5 min. */
  defaultMaxAgeMs: 300_000,
  /** A set whose refetch fails keeps verifying until it is this old (a day), then the client is refused. */
  maxStaleMs: 86_400_000,
});

export interface ClientKeysOptions {
  /** The most clients whose keys are kept (least recently used out first): IDP_CLIENT_CACHE_SIZE. */
  maxEntries: number;
  /** jwks_uri rules (https only, public destinations only). */
  production: boolean;
  logger: Logger;
  now: () => Date;
  /** How a jwks_uri is fetched (tests of the cache alone may pass another); src/clients/jwks-uri.ts by default. */
  fetch?: (uri: string) => Promise<FetchedJwks>;
  cooldownMs?: number;
}

interface RemoteState {
  uri: string;
  keys: ClientKey[] | undefined;
  fetchedAt: number;
  freshUntil: number;
  lastAttempt: number;
  lastError: string | undefined;
  pending: Promise<void> | undefined;
}

interface Entry {
  /** The client object the entry was built for: the same object is the fast path. */
  client: Client;
  /** What the keys depend on; compared only when the client object was replaced. */
  version: string;
  inline: ClientKey[] | undefined;
  remote: RemoteState | undefined;
}

/** The algorithm and key id an assertion names. */
export interface KeyQuery {
  alg: string;
  kid: string | undefined;
}

function versionOf(client: Client): string {
  return `${client.updatedAt.getTime()}|${client.jwksUri ?? ''}|${client.jwks ? JSON.stringify(client.jwks) : ''}`;
}

function matching(keys: readonly ClientKey[], query: KeyQuery): ClientKey[] {
  return keys.filter((k) => (query.kid === undefined || k.kid === query.kid) && (k.algorithms as readonly string[]).includes(query.alg));
}

/**
 * Each process's parsed public keys of the private_key_jwt clients it has seen, so that a known
 * client's assertion is verified from KeyObjects in memory.
 *
 * - Bounded: at most `maxEntries` clients (an LRU), the same bound as the client cache.
 * - Fresh with the client: an entry belongs to one client object of the client cache, which that
 *   cache replaces when the `idp_clients` notification says the client changed (set-keys, PATCH,
 *   psql): the next request finds another object and the keys are parsed again if what they depend
 *   on changed. Nothing to subscribe to here.
 * - A jwks_uri is fetched under src/clients/jwks-uri.ts's rules (2 s, 64 KiB, no redirects, public
 *   destinations in production), one fetch at a time per client, cached for its Cache-Control
 *   max-age within [1 min, 1 day] (5 min without one). A `kid` not in the set triggers a refetch,
 *   at most once per cooldown (30 s), so forged kids cannot make us hammer a client's server; a
 *   failed fetch is not retried within the cooldown either. A refetch that fails keeps the set it
 *   had for up to a day.
 */
export class ClientKeys {
  private readonly entries: LRUCache<string, Entry>;
  private readonly fetch: (uri: string) => Promise<FetchedJwks>;
  private readonly cooldownMs: number;

  constructor(private readonly options: ClientKeysOptions) {
    this.entries = new LRUCache<string, Entry>({ max: options.maxEntries });
    this.fetch = options.fetch ?? ((uri) => fetchJwks(uri, { production: options.production }));
    this.cooldownMs = options.cooldownMs ?? JWKS_URI_DEFAULTS.cooldownMs;
  }

  /** How many clients' keys are held. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The client's keys that may have signed an assertion with this `alg` and `kid` (every key of
   * that algorithm when there is no `kid`). Throws ClientKeysUnavailable when there is none, or the
   * client's jwks_uri gave no usable set.
   */
  async candidates(client: Client, query: KeyQuery): Promise<ClientKey[]> {
    const entry = this.entryFor(client);
    if (entry.inline) {
      const found = matching(entry.inline, query);
      if (found.length === 0) throw new ClientKeysUnavailable(noKey(client, query));
      return found;
    }
    const remote = entry.remote as RemoteState;
    const now = this.options.now().getTime();
    if (remote.keys === undefined || now >= remote.freshUntil) {
      await this.refresh(client, remote, now);
      if (remote.keys === undefined || now - remote.fetchedAt > JWKS_URI_DEFAULTS.maxStaleMs) {
        throw new ClientKeysUnavailable(`client ${client.id}: no key set from jwks_uri ${remote.uri} (${remote.lastError ?? 'not fetched yet'})`);
      }
    }
    let found = matching(remote.keys, query);
    if (found.length === 0 && query.kid !== undefined) {
      // A kid we do not know: the client may have rotated its keys. Once per cooldown.
      await this.refresh(client, remote, now);
      found = matching(remote.keys, query);
    }
    if (found.length === 0) throw new ClientKeysUnavailable(noKey(client, query, remote));
    return found;
  }

  /**
   * Waits for the fetch in flight, if any (requests that arrive during a fetch use its result), or
   * fetches when the cooldown since the last attempt has passed; otherwise returns at once. Never throws.
   */
  private async refresh(client: Client, remote: RemoteState, now: number): Promise<void> {
    if (remote.pending) await remote.pending.catch(() => undefined);
    else if (now - remote.lastAttempt >= this.cooldownMs) await this.load(client, remote).catch(() => undefined);
  }

  private entryFor(client: Client): Entry {
    const held = this.entries.get(client.id);
    if (held && held.client === client) return held;
    const version = versionOf(client);
    if (held && held.version === version) {
      held.client = client;
      return held;
    }
    const entry: Entry = {
      client,
      version,
      inline: client.jwks ? importStoredJwks(client.jwks) : undefined,
      remote: client.jwksUri
        ? { uri: client.jwksUri, keys: undefined, fetchedAt: 0, freshUntil: 0, lastAttempt: -Infinity, lastError: undefined, pending: undefined }
        : undefined,
    };
    if (!entry.inline && !entry.remote) throw new ClientKeysUnavailable(`client ${client.id} has no keys`);
    this.entries.set(client.id, entry);
    return entry;
  }

  /** One fetch at a time per client; the state is updated in place (a failure keeps the keys it had). */
  private load(client: Client, remote: RemoteState): Promise<void> {
    remote.pending ??= this.fetchInto(client, remote).finally(() => {
      remote.pending = undefined;
    });
    return remote.pending;
  }

  private async fetchInto(client: Client, remote: RemoteState): Promise<void> {
    remote.lastAttempt = this.options.now().getTime();
    try {
      const fetched = await this.fetch(remote.uri);
      const keys = readPublishedJwks(fetched.body);
      const now = this.options.now().getTime();
      const maxAge = fetched.maxAgeMs ?? JWKS_URI_DEFAULTS.defaultMaxAgeMs;
      remote.keys = keys;
      remote.fetchedAt = now;
      remote.freshUntil = now + Math.min(JWKS_URI_DEFAULTS.maxMaxAgeMs, Math.max(JWKS_URI_DEFAULTS.minMaxAgeMs, maxAge));
      remote.lastError = undefined;
    } catch (error) {
      remote.lastError = (error as Error).message;
      this.options.logger.warn({ client_id: client.id, err: remote.lastError }, 'fetching a client jwks_uri failed');
      throw error;
    }
  }
}

function noKey(client: Client, query: KeyQuery, remote?: RemoteState): string {
  const kid = query.kid === undefined ? 'no kid' : `kid ${JSON.stringify(query.kid.slice(0, 64))}`;
  const where = remote ? ` at jwks_uri ${remote.uri}${remote.lastError ? ` (last fetch: ${remote.lastError})` : ''}` : '';
  return `client ${client.id}: no key for ${query.alg} with ${kid}${where}`;
}
