import type { DatabaseHandle } from '../db';
import type { Logger } from '../observability/logger';
import { CLIENTS_CHANNEL, findClient, findClients, type Client } from './repository';

export interface ClientCacheOptions {
  handle: DatabaseHandle;
  logger: Logger;
  /** Periodic re-read of the cached clients, the fallback for a missed notification. */
  refreshIntervalMs: number;
}

/**
 * Each process's in-memory view of the clients it has seen, so a token request for a known client
 * never touches the database. Entries are dropped on the `idp_clients` notification that a database
 * trigger sends on any change to a client or its tenant (disable, delete, secret rotation take
 * effect on every instance within the notification latency); everything is dropped when the
 * listener reconnects, and cached entries are re-read in one query every `refreshIntervalMs`.
 * Unknown ids are not cached: the failure limiter bounds how often they can be tried.
 */
export class ClientCache {
  private readonly entries = new Map<string, Client>();
  private readonly loading = new Map<string, Promise<Client | undefined>>();
  /** Bumped by every invalidation: a read that started before one must not be cached. */
  private epoch = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ClientCacheOptions) {}

  async start(): Promise<void> {
    await this.options.handle.listen(
      CLIENTS_CHANNEL,
      (payload) => this.invalidate(payload),
      () => this.clear(),
    );
    this.timer = setInterval(() => void this.refresh(), this.options.refreshIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** The client, from memory when known; otherwise read once (concurrent misses share the read). */
  get(id: string): Client | undefined | Promise<Client | undefined> {
    const cached = this.entries.get(id);
    if (cached) return cached;
    let pending = this.loading.get(id);
    if (!pending) {
      const epoch = this.epoch;
      pending = findClient(this.options.handle.db, id).then(
        (client) => {
          this.loading.delete(id);
          if (client && epoch === this.epoch) this.entries.set(id, client);
          return client;
        },
        (error: unknown) => {
          this.loading.delete(id);
          throw error;
        },
      );
      this.loading.set(id, pending);
    }
    return pending;
  }

  /** Drops everything (listener reconnected: notifications may have been missed). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
  }

  private invalidate(payload: string): void {
    this.epoch++;
    if (payload.startsWith('client:')) {
      this.entries.delete(payload.slice('client:'.length));
    } else if (payload.startsWith('tenant:')) {
      const tenantId = payload.slice('tenant:'.length);
      for (const [id, client] of this.entries) if (client.tenantId === tenantId) this.entries.delete(id);
    } else {
      this.entries.clear();
    }
  }

  /** Re-reads every cached client in one query; never throws (the entries in memory keep serving). */
  private async refresh(): Promise<void> {
    const ids = [...this.entries.keys()];
    if (ids.length === 0) return;
    const epoch = this.epoch;
    try {
      const fresh = new Map((await findClients(this.options.handle.db, ids)).map((c) => [c.id, c]));
      if (epoch !== this.epoch) return;
      for (const id of ids) {
        const client = fresh.get(id);
        if (client) this.entries.set(id, client);
        else this.entries.delete(id);
      }
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'client refresh failed; serving the clients last loaded');
    }
  }
}
