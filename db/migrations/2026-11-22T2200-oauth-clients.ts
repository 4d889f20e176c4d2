import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  // Minimal tenants: the admin API on top of it lives elsewhere; clients only reference it.
  await db.schema
    .createTable('tenants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('disabled_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('oauth_clients')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    // SHA-256 of the secret (see src/clients/secret.ts); the secret itself is never stored.
    .addColumn('secret_hash', 'bytea', (c) => c.notNull())
    .addColumn('previous_secret_hash', 'bytea')
    .addColumn('previous_secret_expires_at', 'timestamptz')
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('audiences', 'jsonb', (c) => c.notNull())
    .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('restrict'))
    .addColumn('token_ttl_seconds', 'integer')
    .addColumn('disabled_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addCheckConstraint('oauth_clients_audiences', sql`jsonb_typeof(audiences) = 'array' and jsonb_array_length(audiences) > 0`)
    .addCheckConstraint('oauth_clients_scopes', sql`jsonb_typeof(scopes) = 'array'`)
    .addCheckConstraint('oauth_clients_ttl', sql`token_ttl_seconds is null or token_ttl_seconds > 0`)
    .addCheckConstraint('oauth_clients_previous_secret', sql`(previous_secret_hash is null) = (previous_secret_expires_at is null)`)
    .execute();
  await db.schema.createIndex('oauth_clients_tenant_id').on('oauth_clients').column('tenant_id').execute();

  // Every instance caches clients in memory; any change to a client or its tenant, from whatever
  // writer (CLI, admin API, psql), is announced so the caches drop the entry within a second.
  await sql`
    create function idp_notify_client_change() returns trigger language plpgsql as $$
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
  await sql`create trigger oauth_clients_notify after insert or update or delete on oauth_clients
    for each row execute function idp_notify_client_change()`.execute(db);
  await sql`create trigger tenants_notify after insert or update or delete on tenants
    for each row execute function idp_notify_client_change()`.execute(db);

  // RFC 7009 deny-list of JWT access tokens, kept until the token would have expired anyway.
  await db.schema
    .createTable('revoked_access_tokens')
    .addColumn('jti', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('revoked_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('revoked_access_tokens_expires_at').on('revoked_access_tokens').column('expires_at').execute();

  // Failure counters of src/ratelimit: one fixed window per key, shared by every instance.
  await db.schema
    .createTable('rate_limit_counters')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('window_ends_at', 'timestamptz', (c) => c.notNull())
    .addColumn('blocked_until', 'timestamptz')
    .execute();
  await db.schema.createIndex('rate_limit_counters_window_ends_at').on('rate_limit_counters').column('window_ends_at').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rate_limit_counters').execute();
  await db.schema.dropTable('revoked_access_tokens').execute();
  await db.schema.dropTable('oauth_clients').execute();
  await db.schema.dropTable('tenants').execute();
  await sql`drop function idp_notify_client_change()`.execute(db);
}
