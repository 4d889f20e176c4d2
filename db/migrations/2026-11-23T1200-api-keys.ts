import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
// API keys (docs/api-keys.md "API keys": `idpk_<id>_<secret>`; only the SHA-256 of the secret is stored.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    // Exactly one owner; deleting the owner deletes its keys (and the trigger below audits it).
    .addColumn('user_id', 'uuid', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (c) => c.references('oauth_clients.id').onDelete('cascade'))
    // The owner's tenant, kept in step with it by the owner triggers below.
    .addColumn('tenant_id', 'text', (c) => c.references('tenants.id').onDelete('restrict'))
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('secret_hash', 'bytea', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .addColumn('revoked_by', 'text')
    .addCheckConstraint('api_keys_id', sql`id ~ '^[0-9A-Za-z]{16}$'`)
    .addCheckConstraint('api_keys_name', sql`length(name) between 1 and 200`)
    .addCheckConstraint('api_keys_one_owner', sql`(user_id is null) <> (client_id is null)`)
    .addCheckConstraint('api_keys_scopes', sql`jsonb_typeof(scopes) = 'array'`)
    .addCheckConstraint('api_keys_secret_hash', sql`octet_length(secret_hash) = 32`)
    .addCheckConstraint('api_keys_expiry', sql`expires_at is null or expires_at > created_at`)
    .addCheckConstraint('api_keys_revoked', sql`(revoked_at is null) = (revoked_by is null)`)
    .execute();
  await db.schema.createIndex('api_keys_user_id').on('api_keys').column('user_id').execute();
  await db.schema.createIndex('api_keys_client_id').on('api_keys').column('client_id').execute();
  await db.schema.createIndex('api_keys_tenant_id').on('api_keys').column('tenant_id').execute();
  // Keyset paging of the admin list walks (created_at, id) backwards.
  await db.schema.createIndex('api_keys_created').on('api_keys').columns(['created_at', 'id']).execute();

  // Every instance caches keys in memory. Any change to a key (but its last_used_at, written at
  // most once a minute by use) is announced on `idp_api_keys` as `key:<id>`, whoever makes it.
  // A deleted key can only be an owner cascade (keys are revoked, never deleted): it is audited here,
  // since the deleting code (clients, users) knows nothing of keys.
  await sql`
    create function idp_api_keys_notify() returns trigger language plpgsql as $$
    begin
      if tg_op = 'UPDATE' and (to_jsonb(new) - 'last_used_at') = (to_jsonb(old) - 'last_used_at') then
        return null;
      end if;
      if tg_op = 'DELETE' then
        insert into audit_events (occurred_at, actor, action, target, reason, details)
        values (
          now(), 'system',
          case when old.user_id is not null and not exists (select 1 from users where id = old.user_id)
                 or old.client_id is not null and not exists (select 1 from oauth_clients where id = old.client_id)
               then 'api-key.owner-deleted' else 'api-key.deleted' end,
          old.id,
          case when old.user_id is not null then 'user ' || old.user_id || ' deleted' else 'client ' || old.client_id || ' deleted' end,
          jsonb_build_object('user_id', old.user_id, 'client_id', old.client_id, 'tenant_id', old.tenant_id, 'name', old.name));
      end if;
      perform pg_notify('idp_api_keys', 'key:' || coalesce(new.id, old.id));
      return null;
    end $$`.execute(db);
  await sql`create trigger api_keys_notify after update or delete on api_keys
    for each row execute function idp_api_keys_notify()`.execute(db);

  // Owners: a change that alters what their keys may do (disable, delete, tenant, scopes,
  // audiences) is announced as `user:<id>`, `client:<id>` or `tenant:<id>`; a disable or re-enable
  // is one audit event per live key, and a tenant move carries the keys along.
  await sql`
    create function idp_api_keys_owner_audit(owner_kind text, owner_id text, was_disabled boolean, is_disabled boolean, key_ids text[]) returns void
    language plpgsql as $$
    begin
      if was_disabled = is_disabled or key_ids is null then
        return;
      end if;
      insert into audit_events (occurred_at, actor, action, target, reason, details)
      select now(), 'system',
             case when is_disabled then 'api-key.owner-disabled' else 'api-key.owner-enabled' end,
             k, owner_kind || ' ' || owner_id || case when is_disabled then ' disabled' else ' enabled' end,
             jsonb_build_object(owner_kind || '_id', owner_id)
      from unnest(key_ids) as k;
    end $$`.execute(db);

  await sql`
    create function idp_api_keys_user_change() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' then
        perform pg_notify('idp_api_keys', 'user:' || old.id);
        return null;
      end if;
      if new.tenant_id is distinct from old.tenant_id then
        update api_keys set tenant_id = new.tenant_id where user_id = new.id;
      end if;
      perform idp_api_keys_owner_audit('user', new.id::text, old.disabled_at is not null, new.disabled_at is not null,
        (select array_agg(id) from api_keys where user_id = new.id and revoked_at is null and (expires_at is null or expires_at > now())));
      perform pg_notify('idp_api_keys', 'user:' || new.id);
      return null;
    end $$`.execute(db);
  await sql`create trigger users_api_keys_notify after update of disabled_at, tenant_id or delete on users
    for each row execute function idp_api_keys_user_change()`.execute(db);

  await sql`
    create function idp_api_keys_client_change() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' then
        perform pg_notify('idp_api_keys', 'client:' || old.id);
        return null;
      end if;
      if new.tenant_id is distinct from old.tenant_id then
        update api_keys set tenant_id = new.tenant_id where client_id = new.id;
      end if;
      perform idp_api_keys_owner_audit('client', new.id, old.disabled_at is not null, new.disabled_at is not null,
        (select array_agg(id) from api_keys where client_id = new.id and revoked_at is null and (expires_at is null or expires_at > now())));
      perform pg_notify('idp_api_keys', 'client:' || new.id);
      return null;
    end $$`.execute(db);
  await sql`create trigger oauth_clients_api_keys_notify
    after update of disabled_at, tenant_id, scopes, audiences, token_ttl_seconds or delete on oauth_clients
    for each row execute function idp_api_keys_client_change()`.execute(db);

  await sql`
    create function idp_api_keys_tenant_change() returns trigger language plpgsql as $$
    begin
      if tg_op = 'DELETE' then
        perform pg_notify('idp_api_keys', 'tenant:' || old.id);
        return null;
      end if;
      perform idp_api_keys_owner_audit('tenant', new.id, old.disabled_at is not null, new.disabled_at is not null,
        (select array_agg(id) from api_keys where tenant_id = new.id and revoked_at is null and (expires_at is null or expires_at > now())));
      perform pg_notify('idp_api_keys', 'tenant:' || new.id);
      return null;
    end $$`.execute(db);
  await sql`create trigger tenants_api_keys_notify after update of disabled_at or delete on tenants
    for each row execute function idp_api_keys_tenant_change()`.execute(db);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger tenants_api_keys_notify on tenants`.execute(db);
  await sql`drop trigger oauth_clients_api_keys_notify on oauth_clients`.execute(db);
  await sql`drop trigger users_api_keys_notify on users`.execute(db);
  await db.schema.dropTable('api_keys').execute();
  await sql`drop function idp_api_keys_tenant_change()`.execute(db);
  await sql`drop function idp_api_keys_client_change()`.execute(db);
  await sql`drop function idp_api_keys_user_change()`.execute(db);
  await sql`drop function idp_api_keys_owner_audit(text, text, boolean, boolean, text[])`.execute(db);
  await sql`drop function idp_api_keys_notify()`.execute(db);
}
