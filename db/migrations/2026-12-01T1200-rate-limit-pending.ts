import { Kysely, sql } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
// Sign-in and sign-up reserve their attempt before hashing (src/ratelimit, docs/security.md "Abuse limits and the threat model":
// `pending` counts the attempts reserved and not yet settled, so that `failures + pending` never
// passes a limit however many requests race. A constant default: instant on Postgres 11+.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('rate_limit_counters')
    .addColumn('pending', 'integer', (c) => c.notNull().defaultTo(sql`0`))
    .execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('rate_limit_counters').dropColumn('pending').execute();
}
