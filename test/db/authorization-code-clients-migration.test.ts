import { sql, type Migrator } from 'kysely';
import type { DatabaseHandle } from '../../src/db';
import { migrator as serviceMigrator } from '../../src/db/migrate';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The migration that adds authorization-code clients and resources (docs/oauth.md "Clients of the authorization-code flow": existing clients keep how they authenticate and get the defaults, the
 * new credentials rule holds for every method, and the migration goes down again.
 */
describe('migration 2026-12-06T1000-authorization-code-clients', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let migrator: Migrator;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    migrator = serviceMigrator(handle);
    const { error } = await migrator.migrateTo('2026-11-28T1200-indexes-at-scale');
    expect(error).toBeUndefined();
    const now = new Date();
    await sql`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at)
      values ('with-secret', 'S', ${Buffer.alloc(32)}, '["read"]', '["https://api.test"]', ${now}, ${now})`.execute(handle.db);
    await sql`insert into oauth_clients (id, name, secret_hash, jwks, scopes, audiences, created_at, updated_at)
      values ('with-keys', 'K', null, '{"keys": []}', '["read"]', '["https://api.test"]', ${now}, ${now})`.execute(handle.db);
  });
  afterAll(async () => {
    await database?.drop();
  });

  const raw = async (text: string) => (await sql.raw(text).execute(handle.db)).rows as Array<Record<string, unknown>>;
  const insertPublic = (id: string, extra = '') =>
    sql.raw(`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at, token_endpoint_auth_method${extra ? ', jwks_uri' : ''})
      values ('${id}', 'P', null, '["read"]', '["https://api.test"]', now(), now(), 'none'${extra ? `, '${extra}'` : ''})`).execute(handle.db);

  it('backfills the method of existing clients and gives them the defaults', async () => {
    const { error } = await migrator.migrateToLatest();
    expect(error).toBeUndefined();
    const rows = await raw(`select id, token_endpoint_auth_method, redirect_uris, post_logout_redirect_uris, grant_types, first_party, registered_by, last_used_at
      from oauth_clients order by id`);
    const defaults = { redirect_uris: [], post_logout_redirect_uris: [], grant_types: null, first_party: false, registered_by: 'operator', last_used_at: null };
    expect(rows).toEqual([
      { id: 'with-keys', token_endpoint_auth_method: 'private_key_jwt', ...defaults },
      { id: 'with-secret', token_endpoint_auth_method: 'client_secret_basic', ...defaults },
    ]);
  });

  it('holds the credentials rule for every method, and the new columns to their values', async () => {
    await insertPublic('public-ok');
    // A public client with keys, a secret client without a secret, unknown values: refused by the database.
    await expect(insertPublic('public-with-keys', 'https://keys.test/jwks')).rejects.toThrow(/oauth_clients_credentials/);
    await expect(raw(`update oauth_clients set token_endpoint_auth_method = 'client_secret_post' where id = 'with-keys'`)).rejects.toThrow(/oauth_clients_credentials/);
    await expect(raw(`update oauth_clients set token_endpoint_auth_method = 'password' where id = 'with-secret'`)).rejects.toThrow(/oauth_clients_auth_method/);
    await expect(raw(`update oauth_clients set registered_by = 'someone' where id = 'with-secret'`)).rejects.toThrow(/oauth_clients_registered_by/);
    await expect(raw(`update oauth_clients set grant_types = '[]' where id = 'with-secret'`)).rejects.toThrow(/oauth_clients_grant_types/);
    await expect(raw(`update oauth_clients set redirect_uris = '"https://x"' where id = 'with-secret'`)).rejects.toThrow(/oauth_clients_redirect_uris/);
    await expect(raw(`insert into resources (url, name, scopes, created_at, updated_at) values ('', 'x', '[]', now(), now())`)).rejects.toThrow(/resources_url/);
  });

  it('goes down: public clients go, the old credentials rule is back', async () => {
    // Down to the migration before it (the later ones go down first).
    const { error } = await migrator.migrateTo('2026-11-28T1200-indexes-at-scale');
    expect(error).toBeUndefined();
    expect((await raw('select id from oauth_clients order by id')).map((r) => r.id)).toEqual(['with-keys', 'with-secret']);
    await expect(raw(`update oauth_clients set jwks = null where id = 'with-keys'`)).rejects.toThrow(/oauth_clients_credentials/);
    expect(await raw(`select to_regclass('resources') as t`)).toEqual([{ t: null }]);
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
  });
});
