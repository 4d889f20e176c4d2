import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// A client's use (written at most once an hour per client by the token and authorization endpoints)
// moves out of oauth_clients into a narrow table of its own. Written in the wide row, each first use
// of the hour was a new version of the whole row (scopes, redirect URIs, keys...), an entry in each
// of its indexes (the two partial indexes of the sweep were on coalesce(last_used_at, created_at), so
// no such update could be HOT) and a run of the notification trigger; over 1,000,000 clients, where
// most requests of the benchmark are a client's first use, that was most of Postgres's work per
// token. Here a use is a 40-byte row: inserted at the first use, then updated in place (no index on
// used_at, fillfactor 70, so the update is HOT), no trigger.
//
// - No foreign key: its check would lock the client's row (FOR KEY SHARE writes the row's header)
//   at every use. A trigger removes a client's use when the client is deleted, and when a client is
//   created (a metadata document's client comes back under the same id: it starts without the old use).
// - The sweep now walks the self-registered clients by creation (the new partial indexes) and keeps
//   those with a use within the TTL (docs/agents.md "The sweep").
// - oauth_clients.last_used_at stays, no longer read or written, so that instances still on the
//   previous version keep working while a deployment rolls over; a later migration drops it. Its
//   values are copied here, so no use is forgotten.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`create table oauth_client_uses (
    client_id text primary key,
    used_at timestamptz not null
  ) with (fillfactor = 70)`.execute(db);
  await sql`insert into oauth_client_uses (client_id, used_at) select id, last_used_at from oauth_clients where last_used_at is not null`.execute(db);
  await sql`
    create function idp_forget_client_use() returns trigger language plpgsql as $$
    begin
      delete from oauth_client_uses where client_id = coalesce(new.id, old.id);
      if tg_op = 'UPDATE' then
        delete from oauth_client_uses where client_id = old.id;
      end if;
      return null;
    end $$`.execute(db);
  await sql`create trigger oauth_clients_forget_use after insert or delete or update of id on oauth_clients
    for each row execute function idp_forget_client_use()`.execute(db);
  await sql`drop index oauth_clients_dynamic_unused`.execute(db);
  await sql`drop index oauth_clients_document_unused`.execute(db);
  await sql`create index oauth_clients_dynamic_created on oauth_clients (created_at, id) where registered_by = 'dynamic'`.execute(db);
  await sql`create index oauth_clients_document_created on oauth_clients (created_at, id) where registered_by = 'metadata_document'`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`update oauth_clients c set last_used_at = u.used_at from oauth_client_uses u where u.client_id = c.id`.execute(db);
  await sql`drop index oauth_clients_document_created`.execute(db);
  await sql`drop index oauth_clients_dynamic_created`.execute(db);
  await sql`create index oauth_clients_dynamic_unused on oauth_clients ((coalesce(last_used_at, created_at))) where registered_by = 'dynamic'`.execute(db);
  await sql`create index oauth_clients_document_unused on oauth_clients ((coalesce(last_used_at, created_at))) where registered_by = 'metadata_document'`.execute(db);
  await sql`drop trigger oauth_clients_forget_use on oauth_clients`.execute(db);
  await sql`drop function idp_forget_client_use()`.execute(db);
  await sql`drop table oauth_client_uses`.execute(db);
}
