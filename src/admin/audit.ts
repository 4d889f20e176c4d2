import type { Kysely } from 'kysely';
import type { AuditEventRow, Database } from '../db/schema';
import { decodeCursor, encodeCursor } from '../users/repository';

export interface AuditFilter {
  actor?: string;
  action?: string;
  target?: string;
  since?: Date;
  until?: Date;
  limit: number;
  cursor?: string;
}

/** Audit events newest first, in keyset pages over (occurred_at, id). */
export async function listAudit(db: Kysely<Database>, filter: AuditFilter): Promise<{ events: AuditEventRow[]; next?: string }> {
  let query = db.selectFrom('audit_events').selectAll();
  if (filter.actor) query = query.where('actor', '=', filter.actor);
  if (filter.action) query = query.where('action', '=', filter.action);
  if (filter.target) query = query.where('target', '=', filter.target);
  if (filter.since) query = query.where('occurred_at', '>=', filter.since);
  if (filter.until) query = query.where('occurred_at', '<', filter.until);
  const cursor = filter.cursor ? decodeCursor(filter.cursor) : undefined;
  if (cursor) {
    query = query.where((eb) =>
      eb.or([eb('occurred_at', '<', cursor.createdAt), eb.and([eb('occurred_at', '=', cursor.createdAt), eb('id', '<', cursor.id)])]),
    );
  }
  const rows = await query.orderBy('occurred_at', 'desc').orderBy('id', 'desc').limit(filter.limit + 1).execute();
  const events = rows.slice(0, filter.limit);
  const last = events[events.length - 1];
  return rows.length > filter.limit && last ? { events, next: encodeCursor(last.occurred_at, last.id) } : { events };
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
