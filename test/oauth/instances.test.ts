import request from 'supertest';
import { runCli } from '../../src/cli/program';
import type { DatabaseHandle } from '../../src/db';
import { FakeClock, startTestServer, testConfig, testMek, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic, eventually } from './helpers';

const FORM = 'application/x-www-form-urlencoded';

/**
 * Two instances over one database (on Postgres two pools of their own, on PGlite the one shared
 * handle: the notification path is the same). Changes are made with the CLI through the first
 * handle; the second instance must act on them within a second. Its periodic re-read is set to an
 * hour, so only the notification can make that happen.
 */
describe('client changes reach every instance within a second', () => {
  let database: TestDatabase;
  let handles: DatabaseHandle[];
  let a: TestServer;
  let b: TestServer;
  const clock = new FakeClock(new Date());
  const mek = testMek('instances-mek');

  beforeAll(async () => {
    database = await createTestDatabase();
    handles = [await database.open(), await database.open()];
    const config = testConfig(database, { IDP_MEK: mek, IDP_KEY_REFRESH_INTERVAL: '1h' });
    a = await startTestServer(config, handles[0]!, clock.now);
    b = await startTestServer(config, handles[1]!, clock.now);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await database.drop();
  });

  const idp = async (args: string[]) => {
    let stdout = '';
    let stderr = '';
    const env = { IDP_LOG_LEVEL: 'silent', IDP_MEK: mek, IDP_ISSUER: 'http://idp.test', ...database.env };
    const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env }, { handle: handles[0], now: clock.now });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    return JSON.parse(stdout);
  };
  const status = async (server: TestServer, id: string, secret: string) =>
    (await request(server.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', basic(id, secret)).send('grant_type=client_credentials')).status;
  const create = async () => {
    const created = await idp(['clients', 'create', '--name', 'svc', '--scope', 'read', '--json']);
    // Both instances have the client in memory before the change.
    expect(await status(a, created.client_id, created.client_secret)).toBe(200);
    expect(await status(b, created.client_id, created.client_secret)).toBe(200);
    return created as { client_id: string; client_secret: string };
  };

  it('disable', async () => {
    const client = await create();
    await idp(['clients', 'disable', client.client_id, '--json']);
    await eventually(async () => expect(await status(b, client.client_id, client.client_secret)).toBe(401));
    expect(await status(a, client.client_id, client.client_secret)).toBe(401);
  });

  it('delete', async () => {
    const client = await create();
    await idp(['clients', 'delete', client.client_id, '--json']);
    await eventually(async () => expect(await status(b, client.client_id, client.client_secret)).toBe(401));
  });

  it('rotate-secret: the new secret works at once, the old one during the grace period only', async () => {
    const client = await create();
    const rotated = await idp(['clients', 'rotate-secret', client.client_id, '--grace', '10m', '--json']);
    expect(rotated.previous_secret_valid_until).toBe(new Date(clock.now().getTime() + 600_000).toISOString());
    await eventually(async () => expect(await status(b, client.client_id, rotated.client_secret)).toBe(200));
    expect(await status(b, client.client_id, client.client_secret)).toBe(200);
    clock.advance(600_000 - 1_000);
    expect(await status(b, client.client_id, client.client_secret)).toBe(200);
    clock.advance(1_000);
    expect(await status(b, client.client_id, client.client_secret)).toBe(401);
    expect(await status(a, client.client_id, client.client_secret)).toBe(401);
    expect(await status(b, client.client_id, rotated.client_secret)).toBe(200);
  });

  it('rotate-secret --grace 0s (a leaked secret): the old secret stops at once', async () => {
    const client = await create();
    const rotated = await idp(['clients', 'rotate-secret', client.client_id, '--grace', '0s', '--json']);
    expect(rotated.previous_secret_valid_until).toBeNull();
    await eventually(async () => expect(await status(b, client.client_id, client.client_secret)).toBe(401));
    expect(await status(b, client.client_id, rotated.client_secret)).toBe(200);
  });
});
