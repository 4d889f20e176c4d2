import { sql, type Migrator } from 'kysely';
import type { DatabaseHandle } from '../../src/db';
import { migrator as serviceMigrator } from '../../src/db/migrate';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The migration that moves a client's last use into oauth_client_uses
 * (db/migrations/2026-12-13T1000-client-uses.ts): no recorded use is lost on the way up or down.
 */
describe('migration 2026-12-13T1000-client-uses', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let migrator: Migrator;
  const used = new Date('2026-12-01T10:00:00.123Z');

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    migrator = serviceMigrator(handle);
    expect((await migrator.migrateTo('2026-12-12T1100-client-use-notify')).error).toBeUndefined();
    for (const [id, lastUsed] of [['used', used], ['never', null]] as const) {
      await sql`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at, registered_by, last_used_at)
        values (${id}, 'C', ${Buffer.alloc(32)}, '["read"]', '["https://api.test"]', now(), now(), 'dynamic', ${lastUsed})`.execute(handle.db);
    }
  });
  afterAll(async () => {
    await database?.drop();
  });

  const uses = async () => (await sql<{ client_id: string; used_at: Date }>`select client_id, used_at from oauth_client_uses order by client_id`.execute(handle.db)).rows;

  it('copies each recorded use; a client never used has none', async () => {
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    expect(await uses()).toEqual([{ client_id: 'used', used_at: used }]);
  });

  it('goes down again with the uses recorded since, back in oauth_clients', async () => {
    const later = new Date('2026-12-02T10:00:00.456Z');
    await sql`insert into oauth_client_uses (client_id, used_at) values ('never', ${later})`.execute(handle.db);
    expect((await migrator.migrateTo('2026-12-12T1100-client-use-notify')).error).toBeUndefined();
    const rows = (await sql<{ id: string; last_used_at: Date | null }>`select id, last_used_at from oauth_clients order by id`.execute(handle.db)).rows;
    expect(rows).toEqual([
      { id: 'never', last_used_at: later },
      { id: 'used', last_used_at: used },
    ]);
  });
});
