import { LRUCache } from 'lru-cache';
import type { DatabaseHandle } from '../db';
import type { Logger } from '../observability/logger';
import { CLIENTS_CHANNEL, findClient, touchClient, type Client } from './repository';

export interface ClientCacheOptions {
  handle: DatabaseHandle;
  logger: Logger;
  /** `IDP_CLIENT_CACHE_SIZE`: the most clients kept in memory; the least recently used one goes first. */
  maxEntries: number;
  now?: () => Date;
}

/** A client's last_used_at is written at most once per this interval (it bounds the sweep of unused clients, nothing finer). */
export const CLIENT_USE_INTERVAL_MS = 60_000;

/**
 * The client as kept in memory: its secret hashes copied out of the driver's buffers. A small Buffer
 * from pg is a slice of a shared 8 KiB slab, and keeping the slice keeps the slab: measured, 100,000
 * cached clients held ~50 MB of slabs in a quiet process and several times that under load.
 */
function detached(client: Client): Client {
  const copy = (hash: Uint8Array | null) => (hash === null ? null : new Uint8Array(hash));
  return { ...client, secretHash: copy(client.secretHash), previousSecretHash: copy(client.previousSecretHash) };
}

/** A read in flight; `stale` once an invalidation for its client arrived meanwhile (its result is then not kept). */
interface PendingRead {
  promise: Promise<Client | undefined>;
  stale: boolean;
}

/**
 * Each process's in-memory view of the clients it has used lately, so a token request for a known
 * client never touches the database.
 *
 * - Bounded by configuration, not by data: at most `maxEntries` clients (an LRU). A client that fell
 *   out costs one primary-key query the next time it is used. Nothing runs periodically over the
 *   entries: the cost of keeping them fresh does not grow with how many there are.
 * - Fresh through the `idp_clients` notification a database trigger sends on any change to a client
 *   or its tenant, whoever makes it (disable, delete, secret rotation take effect on every instance
 *   within the notification latency). When the listening connection is re-established, notifications
 *   may have been missed: everything is dropped and read again on use (the catch-up is logged).
 * - A changed client that was in memory is dropped at once and read again in the background, so the
 *   next request finds it fresh; that also covers the notification of a client's own creation, which
 *   can arrive after its first request has read and kept it.
 * - Serves what it holds while the database is unreachable; a client not in memory then fails with
 *   the database error (the caller answers 503).
 * - Unknown ids are not cached: the failure limiter bounds how often they can be tried.
 */
export class ClientCache {
  private readonly entries: LRUCache<string, Client>;
  /** Reads in flight. An invalidation marks the ones it concerns stale: a read that started before a change is not kept. */
  private readonly loading = new Map<string, PendingRead>();
  /** When this process last wrote a client's last_used_at, in ms (bounded like the entries). */
  private readonly usesWritten: LRUCache<string, number>;

  constructor(private readonly options: ClientCacheOptions) {
    this.entries = new LRUCache<string, Client>({ max: options.maxEntries });
    this.usesWritten = new LRUCache<string, number>({ max: options.maxEntries });
  }

  /**
   * Records that a client was used (its last_used_at), at most once a minute per client from this
   * process and, by the write's condition, across all of them. Never waits and never fails the
   * request: a failed write is logged and tried again at the next use after the interval.
   */
  recordUse(id: string): void {
    const now = (this.options.now ?? (() => new Date()))();
    const last = this.usesWritten.get(id);
    if (last !== undefined && now.getTime() - last < CLIENT_USE_INTERVAL_MS) return;
    this.usesWritten.set(id, now.getTime());
    touchClient(this.options.handle.db, id, now, CLIENT_USE_INTERVAL_MS).catch((error: unknown) => {
      this.options.logger.warn({ err: (error as Error).message }, 'recording a client use failed');
    });
  }

  async start(): Promise<void> {
    await this.options.handle.listen(
      CLIENTS_CHANNEL,
      (payload) => this.invalidate(payload),
      () => this.catchUp(),
    );
  }

  /** Nothing to stop: no timer runs (kept so the owner's shutdown reads the same as for the other caches). */
  stop(): void {}

  /** How many clients are in memory now (at most `maxEntries`). */
  get size(): number {
    return this.entries.size;
  }

  /** The client if it is in memory now, without reading it or counting as a use. */
  peek(id: string): Client | undefined {
    return this.entries.peek(id);
  }

  /** The client, from memory when known; otherwise read once (concurrent misses share the read). */
  get(id: string): Client | undefined | Promise<Client | undefined> {
    const cached = this.entries.get(id);
    if (cached) return cached;
    const inFlight = this.loading.get(id);
    if (inFlight) return inFlight.promise;
    const read: PendingRead = { stale: false, promise: Promise.resolve(undefined) };
    read.promise = findClient(this.options.handle.db, id).then(
      (client) => {
        if (this.loading.get(id) === read) this.loading.delete(id);
        if (client && !read.stale) this.entries.set(id, detached(client));
        return client;
      },
      (error: unknown) => {
        if (this.loading.get(id) === read) this.loading.delete(id);
        throw error;
      },
    );
    this.loading.set(id, read);
    return read.promise;
  }

  /** Reads a client again in the background; a failure leaves it out of memory (its next request reads it). */
  private reload(id: string): void {
    this.loading.delete(id);
    Promise.resolve(this.get(id)).catch((error: unknown) => {
      this.options.logger.warn({ err: (error as Error).message }, 'client re-read after a change failed; it is read again on its next request');
    });
  }

  /** Drops one client (its row was just written here): its next use reads it again, not waiting for the notification. */
  forget(id: string): void {
    this.entries.delete(id);
    const read = this.loading.get(id);
    if (read) read.stale = true;
    this.loading.delete(id);
  }

  /** Drops everything. */
  clear(): void {
    for (const read of this.loading.values()) read.stale = true;
    this.entries.clear();
  }

  /** The listener is back after a gap: whatever changed meanwhile was not announced, so nothing held can be trusted. */
  private catchUp(): void {
    const dropped = this.entries.size;
    this.clear();
    this.options.logger.info({ dropped }, 'client cache caught up after the notification connection was restored: cleared, clients are read again on use');
  }

  private invalidate(payload: string): void {
    if (payload.startsWith('client:')) {
      const id = payload.slice('client:'.length);
      const held = this.entries.delete(id);
      const read = this.loading.get(id);
      if (read) read.stale = true;
      // A client this process uses is read again at once rather than at its next request, so a
      // notification arriving just after a read (its own creation's) does not leave it out of memory.
      if (held || read) this.reload(id);
    } else if (payload.startsWith('tenant:')) {
      // Rare (a tenant changed); bounded by maxEntries. A read in flight may belong to the tenant: not kept.
      const tenantId = payload.slice('tenant:'.length);
      for (const read of this.loading.values()) read.stale = true;
      const members = [...this.entries.entries()].filter(([, client]) => client.tenantId === tenantId);
      for (const [id] of members) this.entries.delete(id);
    } else {
      this.clear();
    }
  }
}
