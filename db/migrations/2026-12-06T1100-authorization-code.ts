import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
//
// The authorization-code flow and its hosted pages (docs/sign-in.md "Sign-in for applications".
//
// - browser_sessions: who is signed in to the hosted pages in one browser. The cookie holds a random
//   token; only its SHA-256 is stored. Rows are kept once ended (ended_at) until the sweep deletes
//   them after their absolute expiry, so an ended session can never be resumed.
// - authorization_interactions: the validated authorization (or sign-out) request between the page
//   that is shown and the form that comes back, bound to one browser (binding_hash: the hash of a
//   cookie) and to the form (csrf_hash). The forms carry only the row's id and the CSRF token.
// - consents: what a user granted a client, remembered per (user, client).
// - authorization_codes: only the SHA-256 of each code. used_at set = redeemed; the session and the
//   access token's jti it produced are kept, so a second redemption can revoke them (RFC 6749 §10.5).
// - sessions gain what a session opened for an application carries: its client, granted scope,
//   audience (null: IDP_USER_AUDIENCE), the browser session it came from and the time of sign-in.
//   Sessions of /auth/v1 leave them null.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('browser_sessions')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull())
    .addColumn('auth_time', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('ended_at', 'timestamptz')
    .addColumn('ended_reason', 'text')
    .execute();
  await db.schema.createIndex('browser_sessions_user_id').on('browser_sessions').column('user_id').execute();
  await db.schema.createIndex('browser_sessions_expires_at').on('browser_sessions').column('expires_at').execute();

  await db.schema
    .createTable('authorization_interactions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('authorize', 'logout')`))
    .addColumn('binding_hash', 'text', (c) => c.notNull())
    .addColumn('csrf_hash', 'text', (c) => c.notNull())
    .addColumn('request', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('authorization_interactions_expires_at').on('authorization_interactions').column('expires_at').execute();

  await db.schema
    .createTable('consents')
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('client_id', 'text', (c) => c.notNull().references('oauth_clients.id').onDelete('cascade'))
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('resources', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('consents_pkey', ['user_id', 'client_id'])
    .addCheckConstraint('consents_scopes', sql`jsonb_typeof(scopes) = 'array'`)
    .addCheckConstraint('consents_resources', sql`jsonb_typeof(resources) = 'array'`)
    .execute();
  await db.schema.createIndex('consents_client_id').on('consents').column('client_id').execute();

  await sql`alter table sessions
    add column client_id text references oauth_clients (id) on delete cascade,
    add column scope text,
    add column audience jsonb,
    add column browser_session_id uuid references browser_sessions (id) on delete set null,
    add column auth_time timestamptz`.execute(db);
  await sql`create index sessions_browser_session_id on sessions (browser_session_id) where browser_session_id is not null`.execute(db);
  await sql`create index sessions_client_id on sessions (client_id) where client_id is not null`.execute(db);

  await db.schema
    .createTable('authorization_codes')
    .addColumn('code_hash', 'text', (c) => c.primaryKey())
    .addColumn('client_id', 'text', (c) => c.notNull().references('oauth_clients.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('redirect_uri', 'text', (c) => c.notNull())
    // RFC 6749 §4.1.3: the token request must repeat redirect_uri when the authorization request had it.
    .addColumn('redirect_uri_sent', 'boolean', (c) => c.notNull())
    .addColumn('code_challenge', 'text', (c) => c.notNull())
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('resources', 'jsonb', (c) => c.notNull())
    .addColumn('nonce', 'text')
    .addColumn('auth_time', 'timestamptz', (c) => c.notNull())
    .addColumn('browser_session_id', 'uuid', (c) => c.references('browser_sessions.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addColumn('session_id', 'uuid', (c) => c.references('sessions.id').onDelete('set null'))
    .addColumn('access_token_jti', 'text')
    .addColumn('access_token_expires_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('authorization_codes_expires_at').on('authorization_codes').column('expires_at').execute();
  // The foreign keys' own lookups when a session or browser session is deleted.
  await sql`create index authorization_codes_session_id on authorization_codes (session_id) where session_id is not null`.execute(db);
  await sql`create index authorization_codes_browser_session_id on authorization_codes (browser_session_id) where browser_session_id is not null`.execute(db);
  await db.schema.createIndex('authorization_codes_client_id').on('authorization_codes').column('client_id').execute();
  await db.schema.createIndex('authorization_codes_user_id').on('authorization_codes').column('user_id').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('authorization_codes').execute();
  await sql`drop index sessions_client_id`.execute(db);
  await sql`drop index sessions_browser_session_id`.execute(db);
  // Sessions opened for applications cannot be told from /auth/v1 ones once the columns are gone: they end.
  await sql`delete from sessions where client_id is not null`.execute(db);
  await sql`alter table sessions
    drop column auth_time,
    drop column browser_session_id,
    drop column audience,
    drop column scope,
    drop column client_id`.execute(db);
  await db.schema.dropTable('consents').execute();
  await db.schema.dropTable('authorization_interactions').execute();
  await db.schema.dropTable('browser_sessions').execute();
}
