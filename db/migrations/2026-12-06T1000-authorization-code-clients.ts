import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// Clients of the authorization-code flow (docs/oauth.md "Clients of the authorization-code flow" and the
// resources users may grant them access to (docs/oauth.md "Resources".
//
// oauth_clients:
// - redirect_uris, post_logout_redirect_uris: JSON arrays of exact strings, like scopes and audiences.
// - grant_types: a JSON array, or null for the default by rule (client_credentials without redirect
//   URIs, authorization_code and refresh_token with them), so a client keeps following the rule when
//   its redirect URIs change.
// - token_endpoint_auth_method: explicit now that a client may have no credentials at all (a public
//   client, `none`). Existing rows: private_key_jwt when they have no secret, else client_secret_basic
//   (also the default, so that a row written with a secret alone stays valid).
//   The credentials constraint follows the method instead of the mere presence of a secret.
// - registered_by: who created the client (an operator, RFC 7591 dynamic registration, or a client ID
//   metadata document).
// - last_used_at: written at most once a minute per client by its use; it is not announced to the
//   client caches (nothing they hold depends on it).
//
// resources: tenant-free, like the discovery document that lists their scopes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table oauth_clients
    add column redirect_uris jsonb not null default '[]'::jsonb,
    add column post_logout_redirect_uris jsonb not null default '[]'::jsonb,
    add column grant_types jsonb,
    add column first_party boolean not null default false,
    add column registered_by text not null default 'operator',
    add column token_endpoint_auth_method text not null default 'client_secret_basic',
    add column last_used_at timestamptz`.execute(db);
  await sql`update oauth_clients set token_endpoint_auth_method = 'private_key_jwt' where secret_hash is null`.execute(db);
  await sql`alter table oauth_clients
    drop constraint oauth_clients_credentials,
    add constraint oauth_clients_auth_method check (token_endpoint_auth_method in ('client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none')),
    add constraint oauth_clients_credentials check (case token_endpoint_auth_method
      when 'none' then secret_hash is null and jwks is null and jwks_uri is null
      when 'private_key_jwt' then secret_hash is null and (jwks is not null or jwks_uri is not null)
      else secret_hash is not null and jwks is null and jwks_uri is null end),
    add constraint oauth_clients_registered_by check (registered_by in ('operator', 'dynamic', 'metadata_document')),
    add constraint oauth_clients_redirect_uris check (jsonb_typeof(redirect_uris) = 'array'),
    add constraint oauth_clients_post_logout_redirect_uris check (jsonb_typeof(post_logout_redirect_uris) = 'array'),
    add constraint oauth_clients_grant_types check (grant_types is null or (jsonb_typeof(grant_types) = 'array' and jsonb_array_length(grant_types) > 0))`.execute(db);

  // The caches' notification, as before, but silent for an update that only touches last_used_at.
  await sql`
    create or replace function idp_notify_client_change() returns trigger language plpgsql as $$
    begin
      if tg_table_name = 'tenants' then
        perform pg_notify('idp_clients', 'tenant:' || coalesce(new.id, old.id));
      else
        if tg_op = 'UPDATE' and (to_jsonb(new) - 'last_used_at') = (to_jsonb(old) - 'last_used_at') then
          return null;
        end if;
        perform pg_notify('idp_clients', 'client:' || coalesce(new.id, old.id));
        if tg_op = 'UPDATE' and new.id <> old.id then
          perform pg_notify('idp_clients', 'client:' || old.id);
        end if;
      end if;
      return null;
    end $$`.execute(db);

  await db.schema
    .createTable('resources')
    .addColumn('url', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addCheckConstraint('resources_url', sql`length(url) between 1 and 2048`)
    .addCheckConstraint('resources_scopes', sql`jsonb_typeof(scopes) = 'array'`)
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('resources').execute();
  await sql`
    create or replace function idp_notify_client_change() returns trigger language plpgsql as $$
    begin
      if tg_table_name = 'tenants' then
        perform pg_notify('idp_clients', 'tenant:' || coalesce(new.id, old.id));
      else
        perform pg_notify('idp_clients', 'client:' || coalesce(new.id, old.id));
        if tg_op = 'UPDATE' and new.id <> old.id then
          perform pg_notify('idp_clients', 'client:' || old.id);
        end if;
      end if;
      return null;
    end $$`.execute(db);
  // Public clients cannot be kept without credentials: they go (with their API keys, by cascade).
  await sql`delete from oauth_clients where token_endpoint_auth_method = 'none'`.execute(db);
  await sql`alter table oauth_clients
    drop constraint oauth_clients_grant_types,
    drop constraint oauth_clients_post_logout_redirect_uris,
    drop constraint oauth_clients_redirect_uris,
    drop constraint oauth_clients_registered_by,
    drop constraint oauth_clients_credentials,
    drop constraint oauth_clients_auth_method,
    add constraint oauth_clients_credentials check ((secret_hash is not null) <> (jwks is not null or jwks_uri is not null))`.execute(db);
  await sql`alter table oauth_clients
    drop column last_used_at,
    drop column token_endpoint_auth_method,
    drop column registered_by,
    drop column first_party,
    drop column grant_types,
    drop column post_logout_redirect_uris,
    drop column redirect_uris`.execute(db);
}
