import type { Kysely, Transaction } from 'kysely';
import type { Database, TenantRow } from '../db/schema';

type Db = Kysely<Database> | Transaction<Database>;

/** Tenants: users and clients may belong to one; a disabled tenant's users and clients get no tokens. */
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

export function listTenants(db: Db): Promise<TenantRow[]> {
  return db.selectFrom('tenants').selectAll().orderBy('created_at').orderBy('id').execute();
}

/** Whether a tenant may get tokens: it exists and is not disabled. */
export async function tenantIsActive(db: Db, id: string): Promise<boolean> {
  return (await findTenant(db, id))?.disabled_at === null;
}

/** The JSON shape of a tenant in the admin API and `idp tenants --json`. */
export function tenantView(row: TenantRow): Record<string, unknown> {
  return { id: row.id, name: row.name, disabled_at: row.disabled_at ? row.disabled_at.toISOString() : null, created_at: row.created_at.toISOString() };
}
