import request from 'supertest';
import { loadConfig } from '../../src/config';
import { startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic, eventually } from '../oauth/helpers';
import { adminToken, cli, testEnv } from '../users/support';

/** Operators see and lift blocks: `idp limits list|clear` and /admin/v1/limits (docs/operating.md "The admin CLI", "Abuse limits"). */
describe('idp limits and /admin/v1/limits', () => {
  let database: TestDatabase;
  let server: TestServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await createTestDatabase();
    env = testEnv(database, { IDP_TRUST_PROXY: 'loopback', IDP_TOKEN_FAILURES_PER_IP: '3' });
    server = await startTestServer(loadConfig(env), await database.open());
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  const fail = (from: string) =>
    request(server.url).post('/oauth/token').set('X-Forwarded-For', from).set('Authorization', basic('nobody', 'x')).type('form').send('grant_type=client_credentials');

  it('lists a block and clears it through the CLI; the running server lets the address fail normally again at once', async () => {
    for (let i = 0; i < 3; i++) expect((await fail('198.51.100.7')).status).toBe(401);
    expect((await fail('198.51.100.7')).status).toBe(429);

    const listed = await cli(env, server.services.handle, 'limits', 'list', '--json');
    expect(listed.code).toBe(0);
    const blocks = JSON.parse(listed.stdout) as Array<{ key: string; failures: number; blocked_until: string; retry_after_seconds: number }>;
    expect(blocks).toEqual([{ key: 'oauth:ip:198.51.100.7', failures: 3, blocked_until: expect.any(String), retry_after_seconds: expect.any(Number) }]);
    const text = await cli(env, server.services.handle, 'limits', 'list');
    expect(text.stdout).toContain('oauth:ip:198.51.100.7');

    const cleared = await cli(env, server.services.handle, 'limits', 'clear', 'oauth:ip:198.51.100.7', '--json');
    expect(cleared).toMatchObject({ code: 0 });
    expect(JSON.parse(cleared.stdout)).toEqual({ cleared: 'oauth:ip:198.51.100.7' });
    // The server hears of it on idp_ratelimit (a refused attempt is not counted, so polling is harmless).
    await eventually(async () => expect((await fail('198.51.100.7')).status).toBe(401));

    const again = await cli(env, server.services.handle, 'limits', 'clear', 'oauth:ip:198.51.100.7');
    expect(again.code).toBe(0); // the failure just counted is there to clear
    const nothing = await cli(env, server.services.handle, 'limits', 'clear', 'oauth:ip:192.0.2.1');
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toMatch(/^idp: nothing is counted under "oauth:ip:192.0.2.1"/);
    const bad = await cli(env, server.services.handle, 'limits', 'clear', 'no\u0000such');
    expect(bad.code).toBe(1);
  });

  it('GET /admin/v1/limits and DELETE /admin/v1/limits/{key} with limits:read / limits:write, audited', async () => {
    for (let i = 0; i < 3; i++) await fail('198.51.100.8');
    const reader = await adminToken(env, server.services.handle, '--permission', 'limits:read');
    const writer = await adminToken(env, server.services.handle, '--permission', 'limits:write');
    const key = 'oauth:ip:198.51.100.8';

    const list = await request(server.url).get('/admin/v1/limits').set('Authorization', `Bearer ${reader.token}`).expect(200);
    expect(list.body.blocks.map((b: { key: string }) => b.key)).toContain(key);
    await request(server.url).get('/admin/v1/limits').set('Authorization', `Bearer ${writer.token}`).expect(403);
    await request(server.url).get('/admin/v1/limits').expect(401);
    await request(server.url).delete(`/admin/v1/limits/${encodeURIComponent(key)}`).set('Authorization', `Bearer ${reader.token}`).expect(403);

    const cleared = await request(server.url).delete(`/admin/v1/limits/${encodeURIComponent(key)}`).set('Authorization', `Bearer ${writer.token}`).expect(200);
    expect(cleared.body).toEqual({ cleared: key });
    await eventually(async () => expect((await fail('198.51.100.8')).status).toBe(401));
    await request(server.url).delete(`/admin/v1/limits/${encodeURIComponent('oauth:ip:192.0.2.99')}`).set('Authorization', `Bearer ${writer.token}`).expect(404);
    await request(server.url).delete('/admin/v1/limits/%00').set('Authorization', `Bearer ${writer.token}`).expect(400);

    const audit = await server.services.handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'limit.cleared').execute();
    expect(audit.map((event) => [event.actor, event.target])).toEqual(
      expect.arrayContaining([
        ['cli', 'oauth:ip:198.51.100.7'],
        [`admin-token:${writer.id}`, key],
      ]),
    );
  });
});
