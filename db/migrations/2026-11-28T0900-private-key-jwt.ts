import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// Clients without shared secrets (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`", RFC 7523 `private_key_jwt`). A client holds either a
// secret (its SHA-256) or public keys: an inline JWKS or a `jwks_uri`, never both and never neither.
// Its previous secret can only exist beside a current one.
//
// client_assertion_jtis: every accepted assertion's `jti`, per client, until the assertion's `exp`
// (plus the clock tolerance): the primary key refuses a replay on every instance. No foreign key:
// each insert would take a KEY SHARE lock on the client's row, and a busy client's concurrent
// requests would then pile up multixacts on one row; the sweep deletes rows by `expires_at`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('oauth_clients')
    .alterColumn('secret_hash', (c) => c.dropNotNull())
    .execute();
  await db.schema.alterTable('oauth_clients').addColumn('jwks', 'jsonb').execute();
  await db.schema.alterTable('oauth_clients').addColumn('jwks_uri', 'text').execute();
  await sql`alter table oauth_clients
    add constraint oauth_clients_credentials check ((secret_hash is not null) <> (jwks is not null or jwks_uri is not null)),
    add constraint oauth_clients_one_key_source check (jwks is null or jwks_uri is null),
    add constraint oauth_clients_jwks check (jwks is null or jsonb_typeof(jwks -> 'keys') = 'array'),
    add constraint oauth_clients_jwks_uri check (jwks_uri is null or length(jwks_uri) between 1 and 2048),
    add constraint oauth_clients_previous_secret_needs_secret check (previous_secret_hash is null or secret_hash is not null)`.execute(db);

  await db.schema
    .createTable('client_assertion_jtis')
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('jti', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('client_assertion_jtis_pkey', ['client_id', 'jti'])
    .execute();
  await db.schema.createIndex('client_assertion_jtis_expires_at').on('client_assertion_jtis').column('expires_at').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('client_assertion_jtis').execute();
  // Key-only clients cannot be kept without a secret: they go (with their API keys, by cascade).
  await sql`delete from oauth_clients where secret_hash is null`.execute(db);
  await sql`alter table oauth_clients
    drop constraint oauth_clients_previous_secret_needs_secret,
    drop constraint oauth_clients_jwks_uri,
    drop constraint oauth_clients_jwks,
    drop constraint oauth_clients_one_key_source,
    drop constraint oauth_clients_credentials`.execute(db);
  await db.schema.alterTable('oauth_clients').dropColumn('jwks_uri').execute();
  await db.schema.alterTable('oauth_clients').dropColumn('jwks').execute();
  await db.schema
    .alterTable('oauth_clients')
    .alterColumn('secret_hash', (c) => c.setNotNull())
    .execute();
}
