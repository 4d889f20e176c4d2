import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from './schema';

/** Rows deleted by one statement of a sweep, by default. */
export const SWEEP_BATCH_SIZE = 1_000;

export interface BatchedDelete {
  /** The table swept. */
  table: keyof Database & string;
  /** Its primary key column (one column). */
  key: string;
  /** Which rows go; should be served by an index, since every batch evaluates it afresh. */
  where: RawBuilder<unknown>;
}

export interface SweepOptions {
  /** Rows per statement, default SWEEP_BATCH_SIZE. */
  batchSize?: number;
  /** Pause between two statements, default 10 ms: other queries get the connection, the locks and the disk. */
  pauseMs?: number;
  /**
   * Called with the keys each statement deleted, in that statement's transaction (an audit event per
   * row lands with its deletion, or neither does). Without it a batch is a single statement.
   */
  onDeleted?(trx: Transaction<Database>, keys: string[]): Promise<void>;
}

/**
 * Deletes the rows `where` selects in bounded statements, each its own transaction of at most
 * `batchSize` rows, until one deletes fewer than that. No statement holds locks on more than one batch
 * or for longer than one batch takes, however much has piled up. Rows locked by someone else (another
 * instance's sweep, a request updating a counter) are skipped, not waited for; the next sweep gets
 * them. Returns how many rows were deleted.
 */
export async function deleteInBatches(db: Kysely<Database>, target: BatchedDelete, options: SweepOptions = {}): Promise<number> {
  const batchSize = options.batchSize ?? SWEEP_BATCH_SIZE;
  const pauseMs = options.pauseMs ?? 10;
  const table = sql.table(target.table);
  const key = sql.ref(target.key);
  let total = 0;
  for (;;) {
    // `= any(array(...))`: the inner select is run once and the delete finds its rows by primary key.
    const statement = sql<{ key: string }>`
      delete from ${table} where ${key} = any(array(
        select ${key} from ${table} where ${target.where} limit ${batchSize} for update skip locked))`;
    const onDeleted = options.onDeleted;
    const deleted = onDeleted
      ? await db.transaction().execute(async (trx) => {
          const { rows } = await sql<{ key: string }>`${statement} returning ${key}::text as key`.execute(trx);
          if (rows.length > 0) await onDeleted(trx, rows.map((row) => row.key));
          return rows.length;
        })
      : Number((await statement.execute(db)).numAffectedRows ?? 0n);
    total += deleted;
    if (deleted < batchSize) return total;
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}
