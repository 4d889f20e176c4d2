import type { DatabaseHandle } from '../db';
import type { Logger } from '../observability/logger';
import { API_KEYS_CHANNEL, findApiKeyRecord, findApiKeyRecords, type ApiKeyRecord } from './repository';

export interface ApiKeyCacheOptions {
  handle: DatabaseHandle;
  logger: Logger;
  /** Periodic re-read of the cached keys, the fallback for a missed notification. */
  refreshIntervalMs: number;
  /** The most keys held; past it the least recently used one is dropped. Default 10,000. */
  maxEntries?: number;
}

interface Entry {
  record: ApiKeyRecord;
  /** When this instance last wrote (or read) the key's last_used_at, in ms. */
  usedAtMs: number;
}

const REFRESH_BATCH = 1_000;

/**
 * Each process's in-memory view of the API keys it has seen, with their owners' state, so a hot key
 * is checked with one SHA-256 and no query (the design of src/clients/cache.ts, reused).
 *
 * Invalidation: database triggers announce on `idp_api_keys` any change to a key (`key:<id>`, but
 * not its last_used_at) and any change to an owner that matters to its keys (`user:<id>`,
 * `client:<id>`, `tenant:<id>`: disable, delete, tenant, scopes), whoever makes it (admin API, CLI,
 * psql); the entries concerned are dropped and re-read on their next use. A revocation is therefore
 * seen by every instance within the notification latency (well under a second). Everything is
 * dropped when the listener reconnects, and cached keys are re-read every `refreshIntervalMs`.
 * Unknown ids are not cached (the per-address failure limit bounds how often they are tried).
 * The map is bounded: least recently used keys go first.
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<ApiKeyRecord | undefined>>();
  private readonly maxEntries: number;
  /** Bumped by every invalidation: a read that started before one must not be cached. */
  private epoch = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ApiKeyCacheOptions) {
    this.maxEntries = options.maxEntries ?? 10_000;
  }

  async start(): Promise<void> {
    await this.options.handle.listen(
      API_KEYS_CHANNEL,
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

  get size(): number {
    return this.entries.size;
  }

  /** The key with its owner's state, from memory when known; otherwise read once (concurrent misses share the read). */
  get(id: string): ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined> {
    const cached = this.entries.get(id);
    if (cached) {
      // Most recently used last: eviction takes the first.
      this.entries.delete(id);
      this.entries.set(id, cached);
      return cached.record;
    }
    let pending = this.loading.get(id);
    if (!pending) {
      const epoch = this.epoch;
      pending = findApiKeyRecord(this.options.handle.db, id).then(
        (record) => {
          this.loading.delete(id);
          if (record && epoch === this.epoch) this.put(record);
          return record;
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

  /**
   * Whether this use should be written to last_used_at: true at most once per `intervalMs` per key
   * and instance (the conditional UPDATE makes it at most once across instances).
   */
  claimUse(record: ApiKeyRecord, nowMs: number, intervalMs: number): boolean {
    const entry = this.entries.get(record.id);
    const last = entry?.usedAtMs ?? record.lastUsedAt?.getTime() ?? -Infinity;
    if (nowMs - last < intervalMs) return false;
    if (entry) entry.usedAtMs = nowMs;
    return true;
  }

  /** Drops one key at once (a change made by this process: its own next read must not wait for the notification). */
  forget(id: string): void {
    this.epoch++;
    this.entries.delete(id);
  }

  /** Drops everything (listener reconnected: notifications may have been missed). */
  clear(): void {
    this.epoch++;
    this.entries.clear();
  }

  private put(record: ApiKeyRecord): void {
    this.entries.set(record.id, { record, usedAtMs: record.lastUsedAt?.getTime() ?? -Infinity });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  private invalidate(payload: string): void {
    this.epoch++;
    const colon = payload.indexOf(':');
    const kind = payload.slice(0, colon);
    const id = payload.slice(colon + 1);
    if (colon < 0) {
      this.entries.clear();
    } else if (kind === 'key') {
      this.entries.delete(id);
    } else if (kind === 'user' || kind === 'client') {
      for (const [keyId, { record }] of this.entries) if (record.owner.kind === kind && record.owner.id === id) this.entries.delete(keyId);
    } else if (kind === 'tenant') {
      for (const [keyId, { record }] of this.entries) if (record.tenantId === id) this.entries.delete(keyId);
    } else {
      this.entries.clear();
    }
  }

  /** Re-reads every cached key in a few queries; never throws (the entries in memory keep serving). */
  private async refresh(): Promise<void> {
    const ids = [...this.entries.keys()];
    if (ids.length === 0) return;
    const epoch = this.epoch;
    try {
      const fresh = new Map<string, ApiKeyRecord>();
      for (let i = 0; i < ids.length; i += REFRESH_BATCH) {
        for (const record of await findApiKeyRecords(this.options.handle.db, ids.slice(i, i + REFRESH_BATCH))) fresh.set(record.id, record);
      }
      if (epoch !== this.epoch) return;
      for (const id of ids) {
        const record = fresh.get(id);
        const entry = this.entries.get(id);
        if (!entry) continue;
        if (record) entry.record = record;
        else this.entries.delete(id);
      }
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'API key refresh failed; serving the keys last loaded');
    }
  }
}
