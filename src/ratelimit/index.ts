import { sql } from 'kysely';
import type { DatabaseHandle } from '../db';
import { deleteInBatches } from '../db/sweep';
import type { Logger } from '../observability/logger';

/** At most `limit` failures per key within a window of `windowMs`. */
export interface FailureRule {
  limit: number;
  windowMs: number;
}

/** One counted dimension of a failure, e.g. `{ key: 'token:client:abc', rule: { limit: 20, windowMs: 60_000 } }`. */
export interface FailureKey {
  key: string;
  rule: FailureRule;
}

export interface FailureLimiterOptions {
  handle: DatabaseHandle;
  logger: Logger;
  now?: () => Date;
}

/** A block in force, as `idp limits list` and `GET /admin/v1/limits` show it. */
export interface ActiveBlock {
  key: string;
  failures: number;
  blockedUntil: Date;
}

/** An attempt reserved on every key of a limit; settled once, by `count` or `release`. */
export interface Attempt {
  /**
   * Counts the attempt (a failed sign-in, a sign-up); returns the keys it has just blocked. Each
   * block is returned by exactly one attempt. Never throws: a failed update is logged.
   */
  count(): Promise<string[]>;
  /** Gives the reserved slot back: the attempt succeeded, or was never made (hashing refused it). */
  release(): Promise<void>;
}

/** The answer to `reserve`: an attempt to settle, or the seconds to wait. */
export type Reservation = { ok: true; attempt: Attempt } | { ok: false; retryAfter: number };

/** Refused for a key full only of attempts in flight: they may yet be released, so retry soon. */
const IN_FLIGHT_RETRY_SECONDS = 1;

const SETTLED: Attempt = { count: async () => [], release: async () => undefined };

/** The channel on which one instance tells the others that a key is blocked (or, `until: 0`, unblocked). */
export const RATE_LIMIT_CHANNEL = 'idp_ratelimit';

/**
 * Counts failures per string key in Postgres, so every instance shares the counts, and answers
 * "is this key blocked?" from memory, so a request that does not fail never waits for the database.
 *
 * Windows are fixed and start at a key's first failure: once `limit` failures land inside it, the
 * key is blocked until the window ends ("until the window passes", docs/security.md "Abuse limits and the threat model", then counting starts
 * afresh. The instance that sees the limit reached records `blocked_until` and announces it on
 * `idp_ratelimit`; the others add it to their in-memory block list on the notification, and a
 * starting instance reads the blocks still running.
 *
 * Reused by every limit of docs/security.md "Abuse limits and the threat model" (the policies are in `./policies.ts`); keys are namespaced
 * (`oauth:client:...`, `signin:pair:...`).
 */
export class FailureLimiter {
  private readonly blocked = new Map<string, number>();
  private readonly now: () => Date;

  constructor(private readonly options: FailureLimiterOptions) {
    this.now = options.now ?? (() => new Date());
  }

  /** Subscribes to blocks announced by other instances and loads the ones still running. */
  async start(): Promise<void> {
    await this.options.handle.listen(
      RATE_LIMIT_CHANNEL,
      (payload) => this.onNotification(payload),
      () =>
        void this.loadActiveBlocks().catch((error: Error) => {
          // Blocks announced while the connection was down stay unknown here until they are hit again.
          this.options.logger.warn({ err: error.message }, 'reloading rate-limit blocks after reconnecting failed');
        }),
    );
    await this.loadActiveBlocks();
  }

  /**
   * Seconds until none of `keys` is blocked; 0 when none is. Memory only: this is on every request's path.
   */
  retryAfterSeconds(keys: readonly string[]): number {
    let until = 0;
    const now = this.now().getTime();
    for (const key of keys) {
      const blockedUntil = this.blocked.get(key);
      if (blockedUntil === undefined) continue;
      if (blockedUntil <= now) this.blocked.delete(key);
      else if (blockedUntil > until) until = blockedUntil;
    }
    return until === 0 ? 0 : Math.max(1, Math.ceil((until - now) / 1000));
  }

  /**
   * Counts one failure for each key (on the failure path only). Returns the Retry-After seconds when
   * this failure reached a limit, else 0. Never throws: with the database down, the failure is
   * logged and not counted, rather than turning the caller's answer into a server error.
   */
  async recordFailure(keys: readonly FailureKey[]): Promise<number> {
    const now = this.now();
    const results = await Promise.all(
      keys.map((k) =>
        this.count(k, now).catch((error: Error) => {
          this.options.logger.warn({ err: error.message }, 'failure counter unavailable; failure not counted');
          return 0;
        }),
      ),
    );
    return Math.max(0, ...results);
  }

  /**
   * Reserves one attempt on every key at once, before the work it limits (an argon2 hash): all or
   * none, in one transaction holding the keys' rows (locked in key order, so two reservations never
   * deadlock). A key is full when its counted failures plus the attempts still in flight reach its
   * limit, so however many requests race, no more than `limit` are ever let through per window.
   * Refused attempts count nowhere: one address adds at most the pair limit to an email's count.
   * A key blocked in memory is refused without a round trip.
   */
  async reserve(keys: readonly FailureKey[]): Promise<Reservation> {
    const wait = this.retryAfterSeconds(keys.map((k) => k.key));
    if (wait > 0) return { ok: false, retryAfter: wait };
    if (keys.length === 0) return { ok: true, attempt: SETTLED };
    const now = this.now();
    const sorted = [...keys].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const limits = new Map(sorted.map((k) => [k.key, k.rule.limit]));
    const outcome = await this.options.handle.db
      .transaction()
      .execute(async (trx) => {
        const rows = await trx
          .insertInto('rate_limit_counters')
          .values(sorted.map(({ key, rule }) => ({ key, failures: 0, pending: 1, window_ends_at: new Date(now.getTime() + rule.windowMs), blocked_until: null })))
          .onConflict((oc) =>
            oc.column('key').doUpdateSet({
              failures: sql<number>`case when rate_limit_counters.window_ends_at <= ${now} then 0 else rate_limit_counters.failures end`,
              pending: sql<number>`case when rate_limit_counters.window_ends_at <= ${now} then 1 else rate_limit_counters.pending + 1 end`,
              window_ends_at: sql<Date>`case when rate_limit_counters.window_ends_at <= ${now} then excluded.window_ends_at else rate_limit_counters.window_ends_at end`,
              blocked_until: sql<Date | null>`case when rate_limit_counters.window_ends_at <= ${now} then null else rate_limit_counters.blocked_until end`,
            }),
          )
          .returning(['key', 'failures', 'pending', 'window_ends_at'])
          .execute();
        const full = rows.filter((row) => row.failures + row.pending > (limits.get(row.key) ?? 0));
        // Rolls the reservation back on every key: a refused attempt leaves no trace.
        if (full.length > 0) throw new ReservationRefused(full.map((row) => ({ key: row.key, failures: row.failures, until: new Date(row.window_ends_at).getTime() })));
        return rows;
      })
      .catch((error: unknown) => {
        if (error instanceof ReservationRefused) return error;
        throw error;
      });
    if (outcome instanceof ReservationRefused) {
      let retryAfter = IN_FLIGHT_RETRY_SECONDS;
      for (const row of outcome.full) {
        // Full of counted failures: blocked until the window ends (known here before its notification arrives).
        // Full only of attempts in flight: they may yet be released.
        if (row.failures < (limits.get(row.key) ?? 0)) continue;
        this.block(row.key, row.until);
        retryAfter = Math.max(retryAfter, Math.ceil((row.until - now.getTime()) / 1000));
      }
      return { ok: false, retryAfter };
    }
    const windows = outcome.map((row) => ({ key: row.key, limit: limits.get(row.key) ?? 0, windowEndsAt: new Date(row.window_ends_at) }));
    let settled = false;
    const settle = <T>(work: () => Promise<T>, fallback: T): Promise<T> => {
      if (settled) return Promise.resolve(fallback);
      settled = true;
      return work().catch((error: Error) => {
        this.options.logger.warn({ err: error.message }, 'failure counter unavailable; attempt left reserved until its window ends');
        return fallback;
      });
    };
    return {
      ok: true,
      attempt: {
        count: () => settle(() => this.countReserved(windows), []),
        release: () => settle(() => this.releaseReserved(windows), undefined),
      },
    };
  }

  /** The blocks in force now, soonest to end first (at most `limit`). */
  async listBlocks(limit = 1000): Promise<ActiveBlock[]> {
    const rows = await this.options.handle.db
      .selectFrom('rate_limit_counters')
      .select(['key', 'failures', 'blocked_until'])
      .where('blocked_until', '>', this.now())
      .orderBy('blocked_until')
      .orderBy('key')
      .limit(limit)
      .execute();
    return rows.map((row) => ({ key: row.key, failures: row.failures, blockedUntil: new Date(row.blocked_until as Date) }));
  }

  /**
   * Lifts the block on `key` and forgets its count, on every instance (the others hear it on
   * `idp_ratelimit`). Returns false when nothing was counted under that key.
   */
  async clear(key: string): Promise<boolean> {
    const db = this.options.handle.db;
    const result = await db.deleteFrom('rate_limit_counters').where('key', '=', key).executeTakeFirst();
    this.blocked.delete(key);
    await sql`select pg_notify(${RATE_LIMIT_CHANNEL}, ${JSON.stringify({ key, until: 0 })})`.execute(db);
    return Number(result.numDeletedRows) > 0;
  }

  /** Deletes counters whose window and block have both passed (in bounded batches), and forgets expired blocks. */
  async sweep(): Promise<number> {
    const now = this.now();
    for (const [key, until] of this.blocked) if (until <= now.getTime()) this.blocked.delete(key);
    return deleteInBatches(this.options.handle.db, {
      table: 'rate_limit_counters',
      key: 'key',
      where: sql`window_ends_at <= ${now} and (blocked_until is null or blocked_until <= ${now})`,
    });
  }

  private async count({ key, rule }: FailureKey, now: Date): Promise<number> {
    const db = this.options.handle.db;
    const windowEnd = new Date(now.getTime() + rule.windowMs);
    // One statement: a new key or an ended window starts a fresh window at 1; otherwise +1.
    const row = await db
      .insertInto('rate_limit_counters')
      .values({ key, failures: 1, window_ends_at: windowEnd, blocked_until: null })
      .onConflict((oc) =>
        oc.column('key').doUpdateSet({
          failures: sql<number>`case when rate_limit_counters.window_ends_at <= ${now} then 1 else rate_limit_counters.failures + 1 end`,
          window_ends_at: sql<Date>`case when rate_limit_counters.window_ends_at <= ${now} then excluded.window_ends_at else rate_limit_counters.window_ends_at end`,
          blocked_until: sql<Date | null>`case when rate_limit_counters.window_ends_at <= ${now} then null else rate_limit_counters.blocked_until end`,
        }),
      )
      .returning(['failures', 'window_ends_at'])
      .executeTakeFirstOrThrow();
    if (row.failures < rule.limit) return 0;
    const until = new Date(row.window_ends_at).getTime();
    this.block(key, until);
    if (row.failures === rule.limit) {
      // Only the failure that reaches the limit announces it; later ones were refused before counting.
      await db.updateTable('rate_limit_counters').set({ blocked_until: new Date(until) }).where('key', '=', key).execute();
      await sql`select pg_notify(${RATE_LIMIT_CHANNEL}, ${JSON.stringify({ key, until })})`.execute(db);
    }
    return Math.max(1, Math.ceil((until - now.getTime()) / 1000));
  }

  /**
   * Turns reserved attempts into counted failures, in their own windows only (a window that has
   * ended meanwhile has been reset, and its attempts with it). The failure that brings a key to its
   * limit blocks it and announces the block; since `failures + pending` never passes the limit,
   * exactly one does.
   */
  private async countReserved(windows: ReadonlyArray<{ key: string; limit: number; windowEndsAt: Date }>): Promise<string[]> {
    const db = this.options.handle.db;
    const values = sql.join(windows.map((w) => sql`(${w.key}::text, ${w.limit}::integer, ${w.windowEndsAt}::timestamptz)`));
    const { rows } = await sql<{ key: string; failures: number; lim: number; window_ends_at: Date }>`
      update rate_limit_counters as t
      set failures = t.failures + 1,
          pending = greatest(t.pending - 1, 0),
          blocked_until = case when t.failures + 1 >= v.lim then t.window_ends_at else t.blocked_until end
      from (values ${values}) as v(key, lim, window_ends_at)
      where t.key = v.key and t.window_ends_at = v.window_ends_at
      returning t.key, t.failures, v.lim, t.window_ends_at`.execute(db);
    const reached = rows.filter((row) => row.failures === row.lim);
    for (const row of reached) {
      const until = new Date(row.window_ends_at).getTime();
      this.block(row.key, until);
      await sql`select pg_notify(${RATE_LIMIT_CHANNEL}, ${JSON.stringify({ key: row.key, until })})`.execute(db);
    }
    return reached.map((row) => row.key);
  }

  private async releaseReserved(windows: ReadonlyArray<{ key: string; windowEndsAt: Date }>): Promise<void> {
    const values = sql.join(windows.map((w) => sql`(${w.key}::text, ${w.windowEndsAt}::timestamptz)`));
    await sql`
      update rate_limit_counters as t set pending = greatest(t.pending - 1, 0)
      from (values ${values}) as v(key, window_ends_at)
      where t.key = v.key and t.window_ends_at = v.window_ends_at`.execute(this.options.handle.db);
  }

  private block(key: string, until: number): void {
    const known = this.blocked.get(key);
    if (known === undefined || known < until) this.blocked.set(key, until);
  }

  private onNotification(payload: string): void {
    try {
      const { key, until } = JSON.parse(payload) as { key?: unknown; until?: unknown };
      if (typeof key !== 'string' || typeof until !== 'number') return;
      if (until === 0) this.blocked.delete(key);
      else this.block(key, until);
    } catch {
      this.options.logger.warn('malformed rate-limit notification ignored');
    }
  }

  private async loadActiveBlocks(): Promise<void> {
    const rows = await this.options.handle.db
      .selectFrom('rate_limit_counters')
      .select(['key', 'blocked_until'])
      .where('blocked_until', '>', this.now())
      .execute();
    for (const row of rows) if (row.blocked_until) this.block(row.key, new Date(row.blocked_until).getTime());
  }
}

/** Thrown inside the reservation's transaction to roll it back; names the keys that were full. */
class ReservationRefused extends Error {
  constructor(readonly full: ReadonlyArray<{ key: string; failures: number; until: number }>) {
    super('reservation refused');
  }
}
