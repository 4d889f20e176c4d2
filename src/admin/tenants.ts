import type { Kysely } from 'kysely';
import type { Database, TenantRow } from '../db/schema';

export function listTenants(db: Kysely<Database>): Promise<TenantRow[]> {
  return db.selectFrom('tenants').selectAll().orderBy('created_at').orderBy('id').execute();
}

export function tenantView(row: TenantRow): Record<string, unknown> {
  return { id: row.id, name: row.name, disabled_at: row.disabled_at ? row.disabled_at.toISOString() : null, created_at: row.created_at.toISOString() };
}

/** Whether a tenant may get tokens: it exists and is not disabled. */
export async function tenantIsActive(db: Kysely<Database>, id: string): Promise<boolean> {
  const row = await db.selectFrom('tenants').select('disabled_at').where('id', '=', id).executeTakeFirst();
  return row !== undefined && row.disabled_at === null;
}
