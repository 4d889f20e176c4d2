import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// GET /admin/v1/clients and `idp clients list` page through the clients newest first, in keyset pages
// over (created_at, id), as the users and the audit log do (2026-11-28T1200-indexes-at-scale): with
// this index every page, however deep its cursor, is read straight off the index in order, with no
// sort. Without it a page of a million clients sorted the whole table.
//
// Built in the migration's transaction, as those were: on a large existing table, writes to it wait
// while the index builds (about a second per million rows).

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index oauth_clients_created_at_id on oauth_clients (created_at, id)`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index oauth_clients_created_at_id`.execute(db);
}
