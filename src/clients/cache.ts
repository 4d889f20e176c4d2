import { LRUCache } from 'lru-cache';
import type { DatabaseHandle } from '../db';
import type { Logger } from '../observability/logger';
import { CLIENTS_CHANNEL, clientReader, findTenantsDisabled, touchClients, type Client, type ClientRead, type ClientReader } from './repository';

export interface ClientCacheOptions {
  handle: DatabaseHandle;
  logger: Logger;
  /** `IDP_CLIENT_CACHE_SIZE`: the most clients kept in memory; the least recently used one goes first. */
  maxEntries: number;
  /** How often at most a client's use is written (default CLIENT_USE_INTERVAL_MS; see clientUseInterval). */
  useIntervalMs?: number;
  now?: () => Date;
}

/** A client's use (oauth_client_uses) is written at most once per this interval (it bounds the sweep of unused clients, nothing finer). */
export const CLIENT_USE_INTERVAL_MS = 3_600_000;

/**
 * The use interval for a sweep that deletes clients unused for `unusedTtlMs`: an hour, or a tenth of
 * the TTL when that is shorter, so that a client in use is never older than the TTL at the sweep.
 * Coarse on purpose: with clients requested at random, a write a minute was one row update per
 * request (1,400 a second at 100,000 clients), which cost the token endpoint more than the reads.
 */
export function clientUseInterval(unusedTtlMs: number): number {
  return Math.max(1_000, Math.min(CLIENT_USE_INTERVAL_MS, Math.floor(unusedTtlMs / 10)));
}

/** A client waiting to be read, or being read; `stale` once an invalidation for it arrived meanwhile (its result is then not kept). */
interface PendingRead {
  id: string;
  promise: Promise<Client | undefined>;
  resolve(client: Client | undefined): void;
  reject(error: unknown): void;
  stale: boolean;
}

function pendingRead(id: string): PendingRead {
  const read = { id, stale: false } as PendingRead;
  read.promise = new Promise<Client | undefined>((resolve, reject) => Object.assign(read, { resolve, reject }));
  return read;
}

/** The most clients one statement reads, or records the use of. */
export const CLIENT_BATCH_SIZE = 200;
/**
 * How long a use waits to be written with others (unless CLIENT_BATCH_SIZE are waiting): under load the
 * writes of many clients share one statement and one commit, instead of a few each.
 */
export const CLIENT_USE_WRITE_DELAY_MS = 250;
/** The most uses waiting to be written; past it a use is not queued (it is written at the client's next use). */
const MAX_QUEUED_USES = 10 * CLIENT_BATCH_SIZE;

/**
 * Group commit for statements over many clients: `run` gets the items added, at most `maxBatch` at a
 * time, one batch in flight; it handles its own failures.
 * - `waitMs` 0 (reads, which a request waits for): a batch starts at the end of the current turn of
 *   the event loop (setImmediate, not a timer), so that the items added in that turn share it; an
 *   item added while a batch is in flight waits for the next one, which starts in the turn after
 *   that one is done and takes everything that arrived meanwhile.
 * - `waitMs` > 0 (writes nobody waits for): a batch starts once `maxBatch` items wait, or `waitMs`
 *   after the first of them arrived. The timer is armed only then: an idle process has none.
 */
class Batches<T> {
  private readonly queue: T[] = [];
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly maxBatch: number,
    private readonly waitMs: number,
    private readonly run: (batch: T[]) => Promise<void>,
  ) {}

  get length(): number {
    return this.queue.length;
  }

  add(item: T): void {
    this.queue.push(item);
    this.schedule();
  }

  /** Runs everything waiting now, without waiting for the timer (shutdown). */
  async flush(): Promise<void> {
    while (this.running || this.queue.length > 0) await (this.running ?? this.start());
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0) return;
    if (this.waitMs === 0) {
      // The next turn, not at once: the requests that arrived with the last batch's answer add their misses first.
      this.running = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.runOne());
    } else if (this.queue.length >= this.maxBatch) {
      void this.start();
    } else {
      this.timer ??= setTimeout(() => void this.start(), this.waitMs).unref();
    }
  }

  private start(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.runOne();
    return this.running;
  }

  private async runOne(): Promise<void> {
    try {
      await this.run(this.queue.splice(0, this.maxBatch));
    } finally {
      this.running = undefined;
      this.schedule();
    }
  }
}

/**
 * Each process's in-memory view of the clients it has used lately, so a token request for a known
 * client never touches the database.
 *
 * - Bounded by configuration, not by data: at most `maxEntries` clients (an LRU). Nothing runs
 *   periodically over the entries: the cost of keeping them fresh does not grow with how many there are.
 * - A miss is cheap: the clients missing at the same moment are read together, in one prepared
 *   primary-key query (`id = any($1)`, at most CLIENT_BATCH_SIZE ids, each row one JSON array:
 *   repository.ts `clientReader`), one read in flight per process, so a burst of misses for
 *   different clients costs one statement, not one each. Their
 *   tenants' states are kept apart (bounded like the entries), so the query joins nothing. Uses
 *   (of self-registered clients only: recordUse) are written in batches too, and a client whose last
 *   use (any instance's) is within the interval is not written again.
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
  /** Clients waiting to be read or being read, by id (each at most once). An invalidation marks the ones it concerns stale: a read that started before a change is not kept. */
  private readonly loading = new Map<string, PendingRead>();
  private readonly reads = new Batches<PendingRead>(CLIENT_BATCH_SIZE, 0, (batch) => this.read(batch));
  /** Whether a tenant is disabled, for the tenants of the clients read lately (bounded like the entries; fresh by the same notifications). */
  private readonly tenantsDisabled: LRUCache<string, boolean>;
  /** Counts tenant changes (and clears): a tenant's state read across one is not kept. */
  private tenantChanges = 0;
  /** When a client's use was last written, in ms, as far as this process knows (bounded like the entries). */
  private readonly usesWritten: LRUCache<string, number>;
  private readonly uses = new Batches<string>(CLIENT_BATCH_SIZE, CLIENT_USE_WRITE_DELAY_MS, (batch) => this.writeUses(batch));

  private readonly useIntervalMs: number;
  private readonly readClients: ClientReader;

  constructor(private readonly options: ClientCacheOptions) {
    this.readClients = clientReader(options.handle);
    this.useIntervalMs = options.useIntervalMs ?? CLIENT_USE_INTERVAL_MS;
    this.entries = new LRUCache<string, Client>({ max: options.maxEntries });
    this.usesWritten = new LRUCache<string, number>({ max: options.maxEntries });
    this.tenantsDisabled = new LRUCache<string, boolean>({ max: options.maxEntries });
  }

  private now(): Date {
    return (this.options.now ?? (() => new Date()))();
  }

  /**
   * Records that a client was used (a row of oauth_client_uses), at most once per interval per client
   * from this process and, by the write's condition, across all of them. Never waits and never fails
   * the request: a failed write is logged and tried again at the next use after the interval.
   * Only a self-registered client's use is written (dynamic registration, metadata document): the
   * sweep of unused clients is the one reader of uses, and it deletes no other kind, so an operator's
   * client costs no write at all.
   */
  recordUse(client: Pick<Client, 'id' | 'registeredBy'>): void {
    if (client.registeredBy === 'operator') return;
    const id = client.id;
    const now = this.now().getTime();
    const last = this.usesWritten.get(id);
    if (last !== undefined && now - last < this.useIntervalMs) return;
    // A backlog (the database slower than the uses) is not queued without end: the next use writes it.
    if (this.uses.length >= MAX_QUEUED_USES) return;
    this.usesWritten.set(id, now);
    this.uses.add(id);
  }

  private async writeUses(ids: string[]): Promise<void> {
    try {
      await touchClients(this.options.handle, ids, this.now(), this.useIntervalMs);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message, clients: ids.length }, 'recording client uses failed');
    }
  }

  async start(): Promise<void> {
    await this.options.handle.listen(
      CLIENTS_CHANNEL,
      (payload) => this.invalidate(payload),
      () => this.catchUp(),
    );
  }

  /** Writes the uses still waiting for their batch (nothing else runs: no periodic timer). */
  async stop(): Promise<void> {
    await this.uses.flush();
  }

  /** How many clients are in memory now (at most `maxEntries`). */
  get size(): number {
    return this.entries.size;
  }

  /** The client if it is in memory now, without reading it or counting as a use. */
  peek(id: string): Client | undefined {
    return this.entries.peek(id);
  }

  /** Clients waiting to be read or being read now. */
  get waiting(): number {
    return this.loading.size;
  }

  /** The client, from memory when known; otherwise read once (concurrent misses share the read, and the misses of other clients its statement). */
  get(id: string): Client | undefined | Promise<Client | undefined> {
    const cached = this.entries.get(id);
    if (cached) return cached;
    const inFlight = this.loading.get(id);
    if (inFlight) return inFlight.promise;
    const read = pendingRead(id);
    this.loading.set(id, read);
    this.reads.add(read);
    return read.promise;
  }

  /**
   * One statement for a batch of misses (and one more for the states of their tenants not in memory,
   * rare); each caller gets its own client (or undefined), or the statement's error.
   */
  private async read(batch: PendingRead[]): Promise<void> {
    const tenantChanges = this.tenantChanges;
    let found: Map<string, ClientRead>;
    const tenantsDisabled = new Map<string, boolean>();
    try {
      found = await this.readClients([...new Set(batch.map((read) => read.id))]);
      const unknown: string[] = [];
      for (const { client } of found.values()) {
        if (client.tenantId === null || tenantsDisabled.has(client.tenantId) || unknown.includes(client.tenantId)) continue;
        const disabled = this.tenantsDisabled.get(client.tenantId);
        if (disabled === undefined) unknown.push(client.tenantId);
        else tenantsDisabled.set(client.tenantId, disabled);
      }
      if (unknown.length > 0) {
        const states = await findTenantsDisabled(this.options.handle.db, unknown);
        for (const tenantId of unknown) {
          const disabled = states.get(tenantId) ?? false;
          tenantsDisabled.set(tenantId, disabled);
          // Not kept when a tenant changed meanwhile: what was read may be older than the change.
          if (tenantChanges === this.tenantChanges) this.tenantsDisabled.set(tenantId, disabled);
        }
      }
    } catch (error) {
      for (const read of batch) {
        if (this.loading.get(read.id) === read) this.loading.delete(read.id);
        read.reject(error);
      }
      return;
    }
    for (const read of batch) {
      if (this.loading.get(read.id) === read) this.loading.delete(read.id);
      const row = found.get(read.id);
      const client = row?.client;
      // Not shared with anyone yet: its tenant's state is set in place.
      if (client) client.tenantDisabled = client.tenantId !== null && tenantsDisabled.get(client.tenantId) === true;
      if (row && client && !read.stale) {
        this.entries.set(read.id, client);
        // Written within the interval (by any instance): its use needs no write until the interval is over.
        const lastUsed = row.lastUsedAt?.getTime();
        if (lastUsed !== undefined && lastUsed > (this.usesWritten.peek(read.id) ?? -Infinity)) this.usesWritten.set(read.id, lastUsed);
      }
      read.resolve(client);
    }
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
    this.tenantsDisabled.clear();
    this.tenantChanges++;
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
      this.tenantsDisabled.delete(tenantId);
      this.tenantChanges++;
      for (const read of this.loading.values()) read.stale = true;
      const members = [...this.entries.entries()].filter(([, client]) => client.tenantId === tenantId);
      for (const [id] of members) this.entries.delete(id);
    } else {
      this.clear();
    }
  }
}
