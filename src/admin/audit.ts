import type { Kysely } from 'kysely';
import type { AuditEventRow, Database } from '../db/schema';
import { keysetPage, type KeysetPosition } from '../http/cursor';

export interface AuditFilter {
  actor?: string;
  action?: string;
  target?: string;
  since?: Date;
  until?: Date;
  limit: number;
  /** Start after this position (the `next` of the previous page). */
  after?: KeysetPosition;
}

/** Audit events newest first, in keyset pages over (occurred_at, id). */
export async function listAudit(db: Kysely<Database>, filter: AuditFilter): Promise<{ events: AuditEventRow[]; next?: KeysetPosition }> {
  let query = db.selectFrom('audit_events').selectAll();
  if (filter.actor) query = query.where('actor', '=', filter.actor);
  if (filter.action) query = query.where('action', '=', filter.action);
  if (filter.target) query = query.where('target', '=', filter.target);
  if (filter.since) query = query.where('occurred_at', '>=', filter.since);
  if (filter.until) query = query.where('occurred_at', '<', filter.until);
  const after = filter.after;
  if (after) {
    // A row comparison, which Postgres turns into one index range: the equivalent `or` made it read
    // every row before the cursor (500,001 index entries for a middle page of a million).
    query = query.where((eb) => eb(eb.refTuple('occurred_at', 'id'), '<', eb.tuple(after.at, after.id)));
  }
  const rows = await query.orderBy('occurred_at', 'desc').orderBy('id', 'desc').limit(filter.limit + 1).execute();
  const { items: events, next } = keysetPage(rows, filter.limit, (row) => ({ at: row.occurred_at, id: row.id }));
  return next ? { events, next } : { events };
}

export function auditView(row: AuditEventRow): Record<string, unknown> {
  return {
    id: row.id,
    occurred_at: row.occurred_at.toISOString(),
    actor: row.actor,
    action: row.action,
    target: row.target,
    reason: row.reason,
    request_id: row.request_id,
    details: row.details,
  };
}
