import { runCli } from '../../src/cli/program';
import { everyClient } from '../helpers/clients';
import type { DatabaseHandle } from '../../src/db';
import { createTenant } from '../../src/tenants/repository';
import { migrateToLatest } from '../../src/db/migrate';
import { FakeClock } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

describe('idp clients ...', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const clock = new FakeClock();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
    await createTenant(handle.db, { id: 'acme', name: 'Acme', now: clock.now() });
  });
  afterAll(async () => {
    await database.drop();
  });

  const idp = async (args: string[]) => {
    let stdout = '';
    let stderr = '';
    const env = { IDP_LOG_LEVEL: 'silent', IDP_ISSUER: 'http://idp.test', ...database.env };
    const code = await runCli(args, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), env }, { handle, now: clock.now });
    return { code, stdout, stderr };
  };

  /** Failure: non-zero exit, exactly one line on stderr, nothing on stdout, no client changed. */
  const expectRefused = async (args: string[], message: RegExp, exitCode = 1) => {
    const before = await everyClient(handle.db);
    const result = await idp(args);
    expect(result.code).toBe(exitCode);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    if (exitCode === 1) expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await everyClient(handle.db)).toEqual(before);
  };

  let id: string;

  it('create --json prints {client_id, client_secret, name, scopes, audiences} and stores only a hash', async () => {
    const result = await idp(['clients', 'create', '--name', 'billing', '--scope', 'invoices:read invoices:write', '--audience', 'https://billing.test', '--audience', 'https://ledger.test', '--tenant', 'acme', '--json']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const created = JSON.parse(result.stdout);
    expect(Object.keys(created).sort()).toEqual(['audiences', 'client_id', 'client_secret', 'name', 'scopes']);
    expect(created).toMatchObject({ name: 'billing', scopes: ['invoices:read', 'invoices:write'], audiences: ['https://billing.test', 'https://ledger.test'] });
    expect(created.client_id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(Buffer.from(created.client_secret, 'base64url')).toHaveLength(32);
    id = created.client_id;
    const row = await handle.db.selectFrom('oauth_clients').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(created.client_secret);
    expect(row.tenant_id).toBe('acme');
    const audit = await handle.db.selectFrom('audit_events').selectAll().where('target', '=', id).execute();
    expect(audit.map((e) => e.action)).toEqual(['client.created']);
    expect(JSON.stringify(audit)).not.toContain(created.client_secret);
  });

  it('create without --audience uses IDP_CLIENT_AUDIENCE ($IDP_ISSUER/api); text output shows the secret once', async () => {
    const result = await idp(['clients', 'create', '--name', 'plain', '--scope', 'read']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^client_id: +\S+\nclient_secret: +\S+\n/);
    const clientId = /client_id: +(\S+)/.exec(result.stdout)![1]!;
    const shown = JSON.parse((await idp(['clients', 'show', clientId, '--json'])).stdout);
    expect(shown.audiences).toEqual(['http://idp.test/api']);
  });

  it('list and show never print a secret', async () => {
    const list = await idp(['clients', 'list', '--json']);
    expect(list.code).toBe(0);
    const { clients, next_cursor } = JSON.parse(list.stdout);
    expect(next_cursor).toBeNull();
    expect(clients.map((c: { client_id: string }) => c.client_id)).toContain(id);
    for (const client of clients) expect(Object.keys(client)).not.toContain('client_secret');
    const text = await idp(['clients', 'list']);
    expect(text.stdout).toMatch(/^CLIENT_ID +NAME/);
    const show = JSON.parse((await idp(['clients', 'show', id, '--json'])).stdout);
    expect(show).toMatchObject({ client_id: id, name: 'billing', tenant_id: 'acme', disabled_at: null, token_ttl_seconds: null, previous_secret_valid_until: null });
  });

  it('rotate-secret prints the new secret and until when the previous one works (IDP_CLIENT_SECRET_GRACE)', async () => {
    const result = await idp(['clients', 'rotate-secret', id, '--json']);
    expect(result.code).toBe(0);
    const rotated = JSON.parse(result.stdout);
    expect(rotated).toEqual({ client_id: id, client_secret: expect.any(String), previous_secret_valid_until: new Date(clock.now().getTime() + 86_400_000).toISOString() });
  });

  it('disable and delete print what changed', async () => {
    const disabled = await idp(['clients', 'disable', id, '--json']);
    expect(disabled.code).toBe(0);
    expect(JSON.parse(disabled.stdout)).toEqual({ client_id: id, disabled: true, disabled_at: clock.now().toISOString() });
    const deleted = await idp(['clients', 'delete', id, '--json']);
    expect(JSON.parse(deleted.stdout)).toEqual({ client_id: id, deleted: true });
    const audit = await handle.db.selectFrom('audit_events').select('action').where('target', '=', id).orderBy('occurred_at').execute();
    expect(audit.map((e) => e.action).sort()).toEqual(['client.created', 'client.deleted', 'client.disabled', 'client.secret-rotated']);
  });

  it('refuses bad input with one line on stderr and changes nothing', async () => {
    await expectRefused(['clients', 'show', 'nope'], /^idp: no client "nope"\n$/);
    await expectRefused(['clients', 'disable', 'nope', '--json'], /^idp: no client "nope"\n$/);
    await expectRefused(['clients', 'delete', 'nope'], /^idp: no client "nope"\n$/);
    await expectRefused(['clients', 'rotate-secret', 'nope'], /^idp: no client "nope"\n$/);
    await expectRefused(['clients', 'rotate-secret', 'nope', '--grace', 'soon'], /^idp: --grace "soon"/);
    await expectRefused(['clients', 'create', '--name', 'x', '--scope', 'read', '--tenant', 'no-such-tenant'], /^idp: no tenant "no-such-tenant"\n$/);
    await expectRefused(['clients', 'create', '--name', 'x', '--scope', 'bad"scope'], /^idp: --scope/);
    await expectRefused(['clients', 'create', '--name', 'x', '--scope', '  '], /^idp: a client needs at least one scope\n$/);
    await expectRefused(['clients', 'create', '--name', 'x', '--scope', 'read', '--audience', 'has space'], /^idp: invalid audience/);
    await expectRefused(['clients', 'create', '--name', 'x', '--scope', 'read', '--token-ttl', '2h'], /^idp: token TTL must be/);
    await expectRefused(['clients', 'create', '--name', '   ', '--scope', 'read'], /^idp: a client name/);
    await expectRefused(['clients', 'create', '--scope', 'read'], /--name/, 2);
  });
});
