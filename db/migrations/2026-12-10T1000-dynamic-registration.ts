import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// Dynamic client registration (docs/agents.md "Dynamic client registration".
//
// - oauth_clients.registration_metadata: what an RFC 7591 registration said of the client beyond
//   what the other columns hold (logo_uri, client_uri, contacts, software_id, software_version), as
//   a JSON object; null for a client an operator created.
// - oauth_clients_dynamic_unused: the sweep of dynamically registered clients unused for
//   IDP_DYNAMIC_CLIENT_TTL reads them by their last use (their creation when never used), so each of
//   its batches is an index range however many operator clients there are.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table oauth_clients
    add column registration_metadata jsonb,
    add constraint oauth_clients_registration_metadata check (registration_metadata is null or jsonb_typeof(registration_metadata) = 'object')`.execute(db);
  await sql`create index oauth_clients_dynamic_unused on oauth_clients ((coalesce(last_used_at, created_at))) where registered_by = 'dynamic'`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index oauth_clients_dynamic_unused`.execute(db);
  await sql`alter table oauth_clients drop constraint oauth_clients_registration_metadata, drop column registration_metadata`.execute(db);
}
