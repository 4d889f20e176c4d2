import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('signing_keys')
    .addColumn('kid', 'text', (c) => c.primaryKey())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('alg', 'text', (c) => c.notNull())
    .addColumn('bits', 'integer', (c) => c.notNull())
    .addColumn('public_jwk', 'jsonb', (c) => c.notNull())
    .addColumn('certificate', 'text', (c) => c.notNull())
    .addColumn('x5t_s256', 'text', (c) => c.notNull())
    .addColumn('encrypted_private_key', 'bytea')
    .addColumn('wrapped_data_key', 'bytea')
    .addColumn('mek_id', 'text')
    .addColumn('envelope_version', 'integer')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('published_at', 'timestamptz')
    .addColumn('activated_at', 'timestamptz')
    .addColumn('deactivated_at', 'timestamptz')
    .addColumn('retired_at', 'timestamptz')
    .addCheckConstraint('signing_keys_state', sql`state in ('next', 'current', 'previous', 'retired', 'revoked')`)
    .addCheckConstraint('signing_keys_alg', sql`alg = 'RS256'`)
    // Live keys hold their encrypted private key; retired and revoked keys hold none (destroyed).
    .addCheckConstraint(
      'signing_keys_private_material',
      sql`(state in ('retired', 'revoked')) = (encrypted_private_key is null and wrapped_data_key is null and mek_id is null)`,
    )
    .addCheckConstraint('signing_keys_published', sql`state in ('retired', 'revoked') or published_at is not null`)
    .addCheckConstraint('signing_keys_activated', sql`state <> 'current' or activated_at is not null`)
    .addCheckConstraint('signing_keys_deactivated', sql`state <> 'previous' or deactivated_at is not null`)
    .execute();

  // The database itself forbids two `current` or two `next` keys.
  await sql`create unique index signing_keys_one_current on signing_keys (state) where state = 'current'`.execute(db);
  await sql`create unique index signing_keys_one_next on signing_keys (state) where state = 'next'`.execute(db);

  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('occurred_at', 'timestamptz', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'text')
    .addColumn('reason', 'text')
    .addColumn('request_id', 'text')
    .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema.createIndex('audit_events_occurred_at').on('audit_events').column('occurred_at').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_events').execute();
  await db.schema.dropTable('signing_keys').execute();
}
