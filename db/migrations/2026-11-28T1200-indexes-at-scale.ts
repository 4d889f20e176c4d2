import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// Indexes for a million users, a million audit events and the sweeps (issue 11). Every admin page is a
// keyset page newest first over (timestamp, id): each filter gets an index ending in both columns, so
// the page is read straight off the index in order, however deep the cursor, with no sort.
// The indexes they replace were prefixes of these.
//
// The sweeps delete expired rows in batches found by their expiry: refresh_tokens had no such index,
// so each batch (and the clearing of sealed successors) would have read the whole table.
//
// Built in the migration's transaction (CREATE INDEX CONCURRENTLY cannot run in one): on a large
// existing table, writes to it wait while its index builds (measured: about a second per million rows).

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  // GET /admin/v1/users: unfiltered and by tenant (by email is the unique index: one row).
  await sql`create index users_created_at_id on users (created_at, id)`.execute(db);
  await sql`create index users_tenant_id_created_at_id on users (tenant_id, created_at, id)`.execute(db);
  await sql`drop index users_tenant_id`.execute(db);

  // GET /admin/v1/audit: unfiltered (and since/until), by actor, by action, by target.
  await sql`create index audit_events_occurred_at_id on audit_events (occurred_at, id)`.execute(db);
  await sql`create index audit_events_actor_occurred_at_id on audit_events (actor, occurred_at, id)`.execute(db);
  await sql`create index audit_events_action_occurred_at_id on audit_events (action, occurred_at, id)`.execute(db);
  await sql`create index audit_events_target_occurred_at_id on audit_events (target, occurred_at, id)`.execute(db);
  await sql`drop index audit_events_occurred_at`.execute(db);
  await sql`drop index audit_events_actor`.execute(db);
  await sql`drop index audit_events_action`.execute(db);

  // The sweeps of refresh tokens: expired ones, and the sealed successors past the reuse interval
  // (only rotated tokens within the interval have one, so that index stays small).
  await sql`create index refresh_tokens_expires_at on refresh_tokens (expires_at)`.execute(db);
  await sql`create index refresh_tokens_successor_used_at on refresh_tokens (used_at) where successor is not null`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index refresh_tokens_successor_used_at`.execute(db);
  await sql`drop index refresh_tokens_expires_at`.execute(db);
  await sql`create index audit_events_action on audit_events (action, occurred_at)`.execute(db);
  await sql`create index audit_events_actor on audit_events (actor, occurred_at)`.execute(db);
  await sql`create index audit_events_occurred_at on audit_events (occurred_at)`.execute(db);
  await sql`drop index audit_events_target_occurred_at_id`.execute(db);
  await sql`drop index audit_events_action_occurred_at_id`.execute(db);
  await sql`drop index audit_events_actor_occurred_at_id`.execute(db);
  await sql`drop index audit_events_occurred_at_id`.execute(db);
  await sql`create index users_tenant_id on users (tenant_id)`.execute(db);
  await sql`drop index users_tenant_id_created_at_id`.execute(db);
  await sql`drop index users_created_at_id`.execute(db);
}
