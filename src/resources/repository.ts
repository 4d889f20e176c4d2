import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database, ResourceRow } from '../db/schema';

type Db = Kysely<Database> | Transaction<Database>;

/** A registered resource (docs/oauth.md "Resources": an API users may grant applications access to. */
export interface Resource {
  /** The resource indicator (RFC 8707), compared as an exact string; the `aud` of tokens for it. */
  url: string;
  name: string;
  scopes: readonly string[];
  createdAt: Date;
  updatedAt: Date;
}

function toResource(row: ResourceRow): Resource {
  return { url: row.url, name: row.name, scopes: Object.freeze([...row.scopes]), createdAt: row.created_at, updatedAt: row.updated_at };
}

export async function findResource(db: Db, url: string): Promise<Resource | undefined> {
  const row = await db.selectFrom('resources').selectAll().where('url', '=', url).executeTakeFirst();
  return row && toResource(row);
}

/** Every resource, in URL order. */
export async function listResources(db: Db): Promise<Resource[]> {
  return (await db.selectFrom('resources').selectAll().orderBy(sql`url collate "C"`).execute()).map(toResource);
}

/** False when a resource with this URL exists already (nothing is written then). */
export async function insertResource(db: Db, resource: { url: string; name: string; scopes: readonly string[]; now: Date }): Promise<boolean> {
  const inserted = await db
    .insertInto('resources')
    .values({ url: resource.url, name: resource.name, scopes: JSON.stringify(resource.scopes), created_at: resource.now, updated_at: resource.now })
    .onConflict((oc) => oc.column('url').doNothing())
    .returning('url')
    .executeTakeFirst();
  return inserted !== undefined;
}

/** The deleted resource, or undefined when there was none. */
export async function deleteResource(db: Db, url: string): Promise<Resource | undefined> {
  const row = await db.deleteFrom('resources').where('url', '=', url).returningAll().executeTakeFirst();
  return row && toResource(row);
}

/** The scopes of every resource, distinct, in code-point order, at most `limit` (discovery's `scopes_supported`). */
export async function listResourceScopes(db: Db, limit: number): Promise<string[]> {
  const result = await sql<{ scope: string }>`
    select distinct s.scope collate "C" as scope
      from resources r cross join lateral jsonb_array_elements_text(r.scopes) as s(scope)
     order by 1
     limit ${limit}`.execute(db);
  return result.rows.map((r) => r.scope);
}

/** Of `scopes`, those at least one registered resource has. */
export async function knownResourceScopes(db: Db, scopes: readonly string[]): Promise<string[]> {
  if (scopes.length === 0) return [];
  const result = await sql<{ scope: string }>`
    select distinct s.scope
      from resources r cross join lateral jsonb_array_elements_text(r.scopes) as s(scope)
     where s.scope in (select jsonb_array_elements_text(${JSON.stringify(scopes)}::jsonb))`.execute(db);
  return result.rows.map((r) => r.scope);
}
