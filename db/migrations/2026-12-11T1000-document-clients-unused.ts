import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// Clients of Client ID Metadata Documents are swept like dynamically registered ones when unused for
// IDP_DYNAMIC_CLIENT_TTL (docs/agents.md "The sweep"): anyone who publishes a document makes a row by
// one authorization request, so rows must not pile up. oauth_clients_document_unused serves that
// sweep as oauth_clients_dynamic_unused serves the other: each batch an index range.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create index oauth_clients_document_unused on oauth_clients ((coalesce(last_used_at, created_at))) where registered_by = 'metadata_document'`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index oauth_clients_document_unused`.execute(db);
}
