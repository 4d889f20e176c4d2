import crypto from 'node:crypto';

/**
 * The cache key of a credential: its SHA-256, so that no cache ever holds a token or an API key
 * (a heap dump or a debugger shows hashes only).
 */
export function credentialHash(credential: string): string {
  return crypto.createHash('sha256').update(credential).digest('base64url');
}

/**
 * A bounded map with a deadline per entry: a hit refreshes the entry's recency, an expired entry is
 * a miss and is dropped, and past `maxEntries` the least recently used entry goes (a Map keeps
 * insertion order, so re-inserting on a hit is enough for LRU).
 */
export class BoundedCache<V> {
  private readonly entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(private readonly maxEntries: number) {}

  get(key: string, now: number): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= now) return undefined;
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: V, expiresAt: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt });
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
