import type { Kysely, Transaction } from 'kysely';
import type { Database, TenantRow } from '../db/schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Tenants, minimal: clients reference them, and a disabled tenant's clients get no tokens. */
export function findTenant(db: Db, id: string): Promise<TenantRow | undefined> {
  return db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function createTenant(db: Db, tenant: { id: string; name: string; now: Date }): Promise<TenantRow> {
  return db
    .insertInto('tenants')
    .values({ id: tenant.id, name: tenant.name, disabled_at: null, created_at: tenant.now })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** Disables (or re-enables with `null`) a tenant; a database trigger tells every client cache. */
export async function setTenantDisabled(db: Db, id: string, disabledAt: Date | null): Promise<boolean> {
  const result = await db.updateTable('tenants').set({ disabled_at: disabledAt }).where('id', '=', id).executeTakeFirst();
  return result.numUpdatedRows === 1n;
}
