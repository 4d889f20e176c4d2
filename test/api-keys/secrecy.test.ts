import { execFileSync } from 'node:child_process';
import { sql } from 'kysely';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { captureLogs, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { makeClient, type TestClient } from '../oauth/helpers';
import { adminToken, cli, signUp, testEnv, type SignedIn } from '../users/support';
import { exchange, introspect, revokeAtOAuth } from './support';

/**
 * docs/api-keys.md "API keys": a key is shown once, at creation; it is never in the database in clear (every row of
 * every table, and a `pg_dump` on Postgres), never in a log line (at level trace, through every
 * surface and every refusal), and never in any other response.
 */
describe('API keys are never stored, logged or shown again', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let app: TestServer;
  let env: Record<string, string>;
  const logs = captureLogs();
  let rs: TestClient;
  let owner: TestClient;
  let user: SignedIn;
  let superToken: string;
  const keys: string[] = [];
  /** Every response body after creation, as text. */
  let later = '';

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    env = testEnv(database, { IDP_MEK: testMek('secrecy') });
    app = await startTestServer(testConfig(database, { ...env, IDP_LOG_LEVEL: 'trace' }), handle, undefined, { logs });
    rs = await makeClient(app.services, { name: 'resource server' });
    owner = await makeClient(app.services, { name: 'owner', scopes: ['read'] });
    user = await signUp(app.url);
    superToken = (await adminToken(env, handle, '--super')).token;

    // One key from each surface.
    keys.push((await request(app.url).post('/auth/v1/api-keys').set('Authorization', `Bearer ${user.access_token}`).send({ name: 'user' }).expect(201)).body.key);
    keys.push((await request(app.url).post('/admin/v1/api-keys').set('Authorization', `Bearer ${superToken}`).send({ client_id: owner.id, name: 'admin' }).expect(201)).body.key);
    keys.push(JSON.parse((await cli(env, handle, 'api-keys', 'create', '--client', owner.id, '--name', 'cli', '--json')).stdout).key);

    const record = (res: request.Response) => {
      later += `${res.text}\n${JSON.stringify(res.headers)}\n`;
      return res;
    };
    // Use them everywhere, succeed and fail.
    for (const key of keys) {
      record(await introspect(app.url, rs, key).expect(200));
      record(await exchange(app.url, key).expect(200));
      record(await exchange(app.url, key, { scope: 'nope' }).expect(400));
      record(await exchange(app.url, key, { resource: 'https://elsewhere.test' }).expect(400));
      const wrongSecret = `${key.slice(0, 22)}${'z'.repeat(43)}`;
      record(await exchange(app.url, wrongSecret).expect(400));
      record(await exchange(app.url, `${key}x`).expect(400));
      record(await introspect(app.url, rs, `${key}x`).expect(200));
    }
    record(await revokeAtOAuth(app.url, rs, keys[1]!).expect(400));
    record(await revokeAtOAuth(app.url, owner, keys[2]!).expect(200));
    record(await exchange(app.url, keys[2]!).expect(400));
    record(await request(app.url).get('/auth/v1/api-keys').set('Authorization', `Bearer ${user.access_token}`).expect(200));
    record(await request(app.url).get('/admin/v1/api-keys').set('Authorization', `Bearer ${superToken}`).expect(200));
    const listed = await cli(env, handle, 'api-keys', 'list', '--json');
    later += listed.stdout + listed.stderr;
    const ids = (JSON.parse(listed.stdout) as Array<{ id: string }>).map((k) => k.id);
    for (const id of ids) record(await request(app.url).get(`/admin/v1/api-keys/${id}`).set('Authorization', `Bearer ${superToken}`).expect(200));
    record(await request(app.url).delete(`/admin/v1/api-keys/${ids[0]}`).set('Authorization', `Bearer ${superToken}`).expect(200));
    const revoked = await cli(env, handle, 'api-keys', 'revoke', ids[1]!, '--json');
    later += revoked.stdout + revoked.stderr;
    // A key sent where a token is expected, in a header and in a body.
    record(await request(app.url).get('/auth/v1/user').set('Authorization', `Bearer ${keys[0]}`).expect(401));
    record(await request(app.url).get('/admin/v1/api-keys').set('Authorization', `Bearer ${keys[0]}`).expect(401));
    record(await request(app.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: keys[0] }).expect(400));
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  /** The secret part, and a long stretch of it: neither may appear anywhere. */
  const fragments = (key: string) => [key, key.slice(22), key.slice(30, 60)];

  it('used every key (the checks below are not vacuous)', () => {
    expect(keys).toHaveLength(3);
    for (const key of keys) expect(key).toMatch(/^idpk_[0-9A-Za-z]{16}_[0-9A-Za-z]{43}$/);
    // The refusals whose private detail goes to the log were logged.
    const text = logs.text();
    expect(text).toContain('is revoked');
    expect(text).toContain('tried to revoke API key');
  });

  it('stores no key in clear: every row of every table, and pg_dump on Postgres', async () => {
    const tables = await sql<{ tablename: string }>`select tablename from pg_tables where schemaname = 'public'`.execute(handle.db);
    let dump = '';
    for (const { tablename } of tables.rows) {
      const result = await sql<{ row: string }>`select row_to_json(t)::text as row from ${sql.table(tablename)} t`.execute(handle.db);
      dump += result.rows.map((r) => r.row).join('\n');
    }
    expect(dump).toContain('api-key.created');
    if (usingPostgres && database.databaseUrl) {
      const pgDump = execFileSync('pg_dump', ['--data-only', database.databaseUrl], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      expect(pgDump).toContain('api_keys');
      dump += pgDump;
    }
    for (const key of keys) for (const fragment of fragments(key)) expect(dump).not.toContain(fragment);
    // Only the 32-byte SHA-256 of each secret.
    const hashes = await handle.db.selectFrom('api_keys').select('secret_hash').execute();
    expect(hashes.every((h) => h.secret_hash.length === 32)).toBe(true);
  });

  it('logs no key, at level trace, through every surface and refusal', () => {
    const text = logs.text();
    for (const key of keys) for (const fragment of fragments(key)) expect(text).not.toContain(fragment);
  });

  it('shows no key in any response but its creation', () => {
    expect(later).toContain('access_token');
    for (const key of keys) for (const fragment of fragments(key)) expect(later).not.toContain(fragment);
  });
});
