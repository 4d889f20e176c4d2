import { Kysely } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
// IDP_REFRESH_REUSE_INTERVAL: a rotated refresh token keeps the token that replaced it, sealed under a
// key derived from the rotated token itself (src/users/refresh-token.ts), so that whoever presents
// it again within the interval can be given the session's current token. Nothing in the row opens
// it: the row holds only the SHA-256 of the rotated token. NULL when the interval is 0s, and cleared
// once the interval has passed.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('refresh_tokens').addColumn('successor', 'bytea').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('refresh_tokens').dropColumn('successor').execute();
}
