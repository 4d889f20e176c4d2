import { sql, type Kysely } from 'kysely';
import { prepared, type DatabaseHandle } from '../db';
import type { Database } from '../db/schema';
import { deleteInBatches } from '../db/sweep';
import { textProblem } from '../text';

/**
 * The replay guard of client assertions (docs/private-key-jwt.md "Replay across instances"): a `jti`
 * is accepted once per client until its assertion expires, on every instance, because the primary
 * key (client_id, jti) lives in Postgres and a `jti` is answered only once its row is committed.
 */

/** The longest `jti` accepted (a UUID is 36 characters; openid-client sends 43). */
export const MAX_JTI_LENGTH = 256;

/**
 * A `jti` the store will not record: empty, over MAX_JTI_LENGTH characters, or text Postgres cannot
 * hold (a NUL character; a lone surrogate, which would be stored as U+FFFD and never match again).
 * The assertion carrying it is invalid (`message` is the cause, for the log only).
 */
export class UnrecordableJti extends Error {
  readonly code = 'ERR_UNRECORDABLE_JTI';
  constructor(message: string) {
    super(message);
    this.name = 'UnrecordableJti';
  }
}

/** Why `jti` cannot be recorded, or undefined when it can. */
export function jtiProblem(jti: string): string | undefined {
  if (jti === '') return 'jti is empty';
  if (jti.length > MAX_JTI_LENGTH) return `jti is over ${MAX_JTI_LENGTH} characters`;
  const problem = textProblem(jti);
  return problem === undefined ? undefined : `jti ${problem}`;
}

/**
 * A statement the database refused because of a value in it, rather than because it could not run:
 * SQLSTATE class 22 (data exception), 23 (integrity constraint) or 54 (program limit, e.g. an index
 * row too large). Such a failure belongs to one row of a batch; a lost connection belongs to all.
 */
function isRowError(error: unknown): boolean {
  const code = error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

/** One accepted assertion's replay guard: its client, its `jti`, and until when a replay must be refused. */
export interface AssertionJti {
  clientId: string;
  jti: string;
  expiresAt: Date;
}

const keyOf = (row: { clientId: string; jti: string }) => `${row.clientId}\u0000${row.jti}`;

/** Records a batch of distinct (client, jti) pairs; resolves with the keys (`keyOf`) of those that were new. */
type BatchRecorder = (rows: readonly AssertionJti[], now: Date) => Promise<Set<string>>;

/**
 * Records the `jti`s of accepted assertions (distinct (client, jti) pairs) in one statement; returns
 * the keys (`keyOf`) of those that were new, or whose earlier use has expired and not been swept yet.
 * The others are replays. Two instances racing on the same `jti` cannot both get it: the primary key
 * decides.
 *
 * The rows travel as three arrays, so the statement's text never varies: it is compiled once, here,
 * and prepared once, on the process's statement lane (DatabaseHandle.laneRows: past Kysely and the
 * pool, as the client cache's reads). Its commit is asynchronous (`set_config(..., true)`: this
 * transaction only, the connection is left as it was): it returns once the commit is
 * in Postgres's WAL buffers, not on disk, so it waits for no disk flush. The row is visible to every
 * other session from that moment, which is what refuses a replay on every instance; only a crash of
 * Postgres (or of its machine) within the WAL writer's next flush, at most 3 × `wal_writer_delay`
 * (600 ms by default), can lose it (docs/private-key-jwt.md "What a crash or a failover can let through").
 */
function batchRecorder(handle: Pick<DatabaseHandle, 'db' | 'laneRows'>): BatchRecorder {
  const none: unknown[] = [];
  const statement = prepared(
    'idp_assertion_jtis',
    sql<{ client_id: string; jti: string }>`
    insert into client_assertion_jtis (client_id, jti, expires_at)
    select client_id, jti, expires_at
      from unnest(${none}::text[], ${none}::text[], ${none}::timestamptz[]) as r (client_id, jti, expires_at)
     where set_config('synchronous_commit', 'off', true) is not null
    on conflict (client_id, jti) do update set expires_at = excluded.expires_at where client_assertion_jtis.expires_at <= ${new Date(0)}
    returning client_id, jti`.compile(handle.db),
  );
  return async (rows, now) => {
    const parameters = [rows.map((r) => r.clientId), rows.map((r) => r.jti), rows.map((r) => r.expiresAt), now];
    const fresh = await handle.laneRows(statement, parameters);
    return new Set(fresh.map((r) => keyOf({ clientId: r.client_id, jti: r.jti })));
  };
}

interface Waiting extends AssertionJti {
  resolve(fresh: boolean): void;
  reject(error: unknown): void;
}

/** The most jtis one statement records. */
const MAX_BATCH = 500;
/**
 * Statements in flight at once per process. One: the cost of a statement (a round trip, executing
 * it, committing) is the larger part of a small batch's, so the fewer and larger the batches the
 * better; measured with bench:private-key-jwt on 2 cores, 1 served about 40% more assertions a
 * second than 2.
 */
const MAX_IN_FLIGHT = 1;

/**
 * The replay guard as the token endpoint uses it: group commit. A `jti` arriving while the
 * statement in flight is busy waits for the next one, which records every `jti` that arrived
 * meanwhile (up to 500) in one insert and one commit. An idle process writes a lone `jti` at once,
 * so nothing waits on a timer; under load the cost of a statement is shared by the assertions of one
 * batch instead of paid by each. A `jti` presented twice within one batch is
 * recorded once, and the second presentation is the replay.
 */
export class AssertionJtiStore {
  private readonly waiting: Waiting[] = [];
  private inFlight = 0;
  private readonly recordBatch: BatchRecorder;

  constructor(
    handle: Pick<DatabaseHandle, 'db' | 'laneRows'>,
    private readonly now: () => Date,
  ) {
    this.recordBatch = batchRecorder(handle);
  }

  /**
   * True when this `jti` is new for this client (it is now recorded until `expiresAt`); false for a
   * replay. Rejects with UnrecordableJti for a `jti` that may not be stored (checked before it joins
   * a batch, so it never reaches the database), and with the database's error when it is unreachable.
   */
  record(clientId: string, jti: string, expiresAt: Date): Promise<boolean> {
    const problem = jtiProblem(jti);
    if (problem !== undefined) return Promise.reject(new UnrecordableJti(problem));
    return new Promise((resolve, reject) => {
      this.waiting.push({ clientId, jti, expiresAt, resolve, reject });
      if (this.inFlight < MAX_IN_FLIGHT) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.inFlight++;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, MAX_BATCH);
        const distinct = new Map<string, Waiting>();
        const repeated: Waiting[] = [];
        for (const entry of batch) {
          if (distinct.has(keyOf(entry))) repeated.push(entry);
          else distinct.set(keyOf(entry), entry);
        }
        for (const entry of repeated) entry.resolve(false);
        await this.recordIsolating([...distinct.values()]);
      }
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Records distinct entries in one statement. Should the database refuse it because of a value
   * (isRowError), the batch is halved and each half tried again, down to the one row at fault, which
   * alone is refused (UnrecordableJti): the other rows, of any client, are recorded as usual, for
   * about 2·log2(n) more statements per bad row. Any other failure (the database unreachable) is
   * every remaining row's.
   */
  private async recordIsolating(entries: Waiting[]): Promise<void> {
    const parts = [entries];
    for (let part = parts.pop(); part !== undefined; part = parts.pop()) {
      try {
        const fresh = await this.recordBatch(part, this.now());
        for (const entry of part) entry.resolve(fresh.has(keyOf(entry)));
      } catch (error) {
        if (!isRowError(error)) {
          for (const entry of [part, ...parts.splice(0)].flat()) entry.reject(error);
        } else if (part.length === 1) {
          const code = (error as { code: string }).code;
          (part[0] as Waiting).reject(new UnrecordableJti(`the database refused to record it (SQLSTATE ${code})`));
        } else {
          const middle = Math.ceil(part.length / 2);
          parts.push(part.slice(middle), part.slice(0, middle));
        }
      }
    }
  }
}

/**
 * Deletes the jtis of assertions that have expired, in bounded batches. The table's primary key has
 * two columns, so the batches are found by `ctid` (the row's physical address, stable while the
 * statement holds the row locked; Postgres finds rows by it directly).
 */
export function sweepAssertionJtis(db: Kysely<Database>, now: Date): Promise<number> {
  return deleteInBatches(db, { table: 'client_assertion_jtis', key: 'ctid', where: sql`expires_at <= ${now}` });
}
