import { sql, type Migrator } from 'kysely';
import type { DatabaseHandle } from '../../src/db';
import { migrator as serviceMigrator } from '../../src/db/migrate';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/**
 * The migration of the authorization-code flow (docs/sign-in.md "Sign-in for applications": its tables,
 * sessions that carry an application, the constraints the database holds, and the way down (the
 * sessions of applications end; those of /auth/v1 stay).
 */
describe('migration 2026-12-06T1100-authorization-code', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let migrator: Migrator;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    migrator = serviceMigrator(handle);
    expect((await migrator.migrateTo('2026-12-06T1000-authorization-code-clients')).error).toBeUndefined();
    await raw(`insert into users (id, email, password_hash, created_at, updated_at) values ('11111111-1111-4111-8111-111111111111', 'a@example.com', 'x', now(), now())`);
    await raw(`insert into sessions (id, user_id, created_at) values ('22222222-2222-4222-8222-222222222222', '11111111-1111-4111-8111-111111111111', now())`);
    await raw(`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at, token_endpoint_auth_method, redirect_uris)
      values ('app', 'App', null, '["read"]', '["https://api.test"]', now(), now(), 'none', '["http://127.0.0.1/cb"]')`);
  });
  afterAll(async () => {
    await database?.drop();
  });

  async function raw(text: string): Promise<Array<Record<string, unknown>>> {
    return (await sql.raw(text).execute(handle.db)).rows as Array<Record<string, unknown>>;
  }

  it('goes up: existing sessions are /auth/v1 ones; the new rows hold their constraints', async () => {
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
    expect(await raw(`select client_id, scope, audience, browser_session_id, auth_time from sessions`)).toEqual([
      { client_id: null, scope: null, audience: null, browser_session_id: null, auth_time: null },
    ]);
    await raw(`insert into browser_sessions (id, token_hash, user_id, created_at, last_seen_at, auth_time, expires_at)
      values ('33333333-3333-4333-8333-333333333333', 'h1', '11111111-1111-4111-8111-111111111111', now(), now(), now(), now() + interval '1 hour')`);
    await raw(`insert into sessions (id, user_id, created_at, client_id, scope, audience, browser_session_id, auth_time)
      values ('44444444-4444-4444-8444-444444444444', '11111111-1111-4111-8111-111111111111', now(), 'app', 'openid', '[]', '33333333-3333-4333-8333-333333333333', now())`);
    await raw(`insert into consents (user_id, client_id, scopes, resources, created_at, updated_at) values ('11111111-1111-4111-8111-111111111111', 'app', '["openid"]', '[]', now(), now())`);
    await expect(raw(`insert into consents (user_id, client_id, scopes, resources, created_at, updated_at) values ('11111111-1111-4111-8111-111111111111', 'app', '"openid"', '[]', now(), now())`)).rejects.toThrow();
    await expect(raw(`insert into browser_sessions (id, token_hash, user_id, created_at, last_seen_at, auth_time, expires_at)
      values ('55555555-5555-4555-8555-555555555555', 'h1', '11111111-1111-4111-8111-111111111111', now(), now(), now(), now())`)).rejects.toThrow(/browser_sessions_token_hash/);
    await expect(raw(`insert into authorization_interactions (id, kind, binding_hash, csrf_hash, request, created_at, expires_at) values ('i', 'other', 'b', 'c', '{}', now(), now())`)).rejects.toThrow();
  });

  it('a client or user deleted takes its consents and application sessions with it; a browser session deleted leaves them', async () => {
    await raw(`delete from browser_sessions`);
    expect(await raw(`select browser_session_id from sessions where client_id = 'app'`)).toEqual([{ browser_session_id: null }]);
    await raw(`delete from oauth_clients where id = 'app'`);
    expect(await raw(`select count(*)::int as n from consents`)).toEqual([{ n: 0 }]);
    expect(await raw(`select id from sessions`)).toEqual([{ id: '22222222-2222-4222-8222-222222222222' }]);
  });

  it('goes down: the tables and columns go, /auth/v1 sessions stay; and up again', async () => {
    await raw(`insert into oauth_clients (id, name, secret_hash, scopes, audiences, created_at, updated_at, token_endpoint_auth_method, redirect_uris)
      values ('app2', 'App', null, '["read"]', '["https://api.test"]', now(), now(), 'none', '["http://127.0.0.1/cb"]')`);
    await raw(`insert into sessions (id, user_id, created_at, client_id) values ('66666666-6666-4666-8666-666666666666', '11111111-1111-4111-8111-111111111111', now(), 'app2')`);
    // Down to its predecessor (later migrations go first).
    expect((await migrator.migrateTo('2026-12-06T1000-authorization-code-clients')).error).toBeUndefined();
    expect(await raw(`select id from sessions`)).toEqual([{ id: '22222222-2222-4222-8222-222222222222' }]);
    for (const table of ['browser_sessions', 'authorization_interactions', 'consents', 'authorization_codes']) {
      expect(await raw(`select to_regclass('${table}') as t`)).toEqual([{ t: null }]);
    }
    expect((await migrator.migrateToLatest()).error).toBeUndefined();
  });
});
