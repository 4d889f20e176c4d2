import { Kysely } from 'kysely';

// Frozen in time: a migration never imports application types, so later changes cannot alter it.
// users.tenant_id was created before the tenants table existed (2026-11-22T2200); the key comes now.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function up(db: Kysely<any>): Promise<void> {
  // Tenants are disabled, never deleted: a delete that would orphan users is refused.
  await db.schema.alterTable('users').addForeignKeyConstraint('users_tenant_id_fkey', ['tenant_id'], 'tenants', ['id']).onDelete('restrict').execute();
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropConstraint('users_tenant_id_fkey').execute();
}
