import type { Kysely, Transaction } from 'kysely';
import type { Database, TenantRow } from '../db/schema';
import { checkName, InvalidNameError } from '../text';
import { quoted } from '../text';

type Db = Kysely<Database> | Transaction<Database>;

/** What a tenant id looks like: it appears in tokens (`tenant_id`), URLs and logs. */
export const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** A refused tenant: one line for the operator, nothing changed. */
export class TenantError extends Error {
  readonly code = 'ERR_TENANT_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'TenantError';
  }
}

/** Tenants: users and clients may belong to one; a disabled tenant's users and clients get no tokens. */
export function findTenant(db: Db, id: string): Promise<TenantRow | undefined> {
  return db.selectFrom('tenants').selectAll().where('id', '=', id).executeTakeFirst();
}

/**
 * Creates a tenant. Refuses (TenantError) an id that is not letters, digits, `_ . -` (at most 64)
 * and a name that is not 1 to 200 printable characters, whoever asks (CLI or admin API).
 */
export async function createTenant(db: Db, tenant: { id: string; name: string; now: Date }): Promise<TenantRow> {
  if (!TENANT_ID.test(tenant.id)) throw new TenantError(`tenant id ${quoted(tenant.id)} must be letters, digits, _ . - (at most 64, not starting with _ . -)`);
  let name: string;
  try {
    name = checkName(tenant.name, 'a tenant name');
  } catch (error) {
    if (error instanceof InvalidNameError) throw new TenantError(error.message);
    throw error;
  }
  return db
    .insertInto('tenants')
    .values({ id: tenant.id, name, disabled_at: null, created_at: tenant.now })
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
