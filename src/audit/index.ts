import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema';

/** Who did it: `schedule`, `cli`, `startup`, or `admin-token:<id>`. */
export type Actor = string;

export interface AuditEvent {
  actor: Actor;
  action: string;
  target?: string;
  reason?: string;
  requestId?: string;
  details?: Record<string, unknown>;
  at: Date;
}

/** Writes one audit event, inside the caller's transaction so the event and the change land together. */
export async function recordAudit(db: Kysely<Database> | Transaction<Database>, event: AuditEvent): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      occurred_at: event.at,
      actor: event.actor,
      action: event.action,
      target: event.target ?? null,
      reason: event.reason ?? null,
      request_id: event.requestId ?? null,
      details: JSON.stringify(event.details ?? {}),
    })
    .execute();
}
