import crypto from 'node:crypto';
import { sql } from 'kysely';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { tokenHash } from '../../src/authorization/cookies';
import { insertCode } from '../../src/authorization/repository';
import { insertClient, touchClients } from '../../src/clients/repository';
import { sweepUnusedClients } from '../../src/clients/service';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { authorizePath, makeCodeClient, pkce } from '../authorization/support';
import { FakeClock, startTestServer, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic, eventually } from '../oauth/helpers';
import { FORM } from '../oauth/private-key-jwt-support';
import { signUp, testEnv } from '../users/support';
import { register } from './support';

const MINUTE = 60_000;
const CALLBACK = 'https://app.example/callback';

/**
 * docs/agents.md "The sweep": a dynamically registered client or a metadata document's client not
 * used for IDP_DYNAMIC_CLIENT_TTL (its creation counting for a client never used) is deleted by the
 * composition's periodic sweep, audited; a client used within it and any operator-created client are
 * kept; a document's client comes back, audited, at its next use. A fake clock stands in for the hours.
 */
describe('the sweep of self-registered clients left unused (IDP_DYNAMIC_CLIENT_TTL)', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let off: TestServer;
  const clock = new FakeClock();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    const env = testEnv(database, { IDP_DYNAMIC_REGISTRATION: 'open', IDP_DYNAMIC_CLIENT_TTL: '1h' });
    server = await startTestServer(loadConfig(env), handle, clock.now);
    // Registration turned off later: what was registered while it was on is still swept.
    off = await startTestServer(loadConfig({ ...env, IDP_DYNAMIC_REGISTRATION: 'off' }), handle, clock.now);
  });
  afterAll(async () => {
    await off?.close();
    await server?.close();
    await database?.drop();
  });

  const sweepOf = (target: TestServer) => {
    const sweep = target.services.sweeps.find((s) => s.name.startsWith('registration'));
    if (!sweep) throw new Error('the composition runs no registration sweep');
    return () => sweep.run();
  };
  const exists = async (id: string) => (await handle.db.selectFrom('oauth_clients').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
  const token = (fields: Record<string, string>, authorization?: string) => {
    const req = request(server.url).post('/oauth/token').set('Content-Type', FORM);
    return (authorization ? req.set('Authorization', authorization) : req).send(new URLSearchParams(fields).toString());
  };

  /** A code for `clientId` as the authorization endpoint stores it, redeemed at the token endpoint: a use of the client. */
  async function useClient(clientId: string, secret: string): Promise<void> {
    const user = await signUp(server.url);
    const code = crypto.randomBytes(32).toString('base64url');
    const verifier = crypto.randomBytes(32).toString('base64url');
    const now = clock.now();
    await insertCode(handle.db, {
      codeHash: tokenHash(code),
      clientId,
      userId: user.user.id,
      redirectUri: CALLBACK,
      redirectUriSent: true,
      codeChallenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
      scopes: ['openid'],
      resources: [],
      nonce: null,
      authTime: now,
      browserSessionId: null,
      now,
      expiresAt: new Date(now.getTime() + MINUTE),
    });
    await token({ grant_type: 'authorization_code', code, redirect_uri: CALLBACK, code_verifier: verifier }, basic(clientId, secret)).expect(200);
  }

  it('deletes a dynamic client unused for the TTL (never used: since its creation), keeps one used within it and operator clients however old; audited; a deleted client no longer authenticates', async () => {
    const never = (await register(server.url, { redirect_uris: [CALLBACK], token_endpoint_auth_method: 'none' }).expect(201)).body.client_id as string;
    const registered = (await register(server.url, { redirect_uris: [CALLBACK] }).expect(201)).body as { client_id: string; client_secret: string };
    const used = registered.client_id;
    const operator = (await makeCodeClient(server.services, { redirectUris: [CALLBACK], public: true })).id;

    clock.advance(50 * MINUTE);
    await useClient(used, registered.client_secret);
    await eventually(async () => {
      const row = await handle.db.selectFrom('oauth_client_uses').select('used_at').where('client_id', '=', used).executeTakeFirstOrThrow();
      expect(row.used_at).toEqual(clock.now());
    });

    // 70 minutes after the registrations: `never` is past the hour, `used` was used 20 minutes ago.
    clock.advance(20 * MINUTE);
    await sweepOf(server)();
    expect({ never: await exists(never), used: await exists(used), operator: await exists(operator) }).toEqual({ never: false, used: true, operator: true });
    const audit = await handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'client.deleted').where('target', '=', never).executeTakeFirstOrThrow();
    expect(audit).toMatchObject({ actor: 'schedule', reason: 'not used for 1h (IDP_DYNAMIC_CLIENT_TTL)', details: { registered_by: 'dynamic' } });
    expect(audit.occurred_at).toEqual(clock.now());
    const gone = await token({ grant_type: 'authorization_code', client_id: never, code: 'x', redirect_uri: CALLBACK, code_verifier: 'v'.repeat(43) });
    expect(gone.status).toBe(401);

    // Another 50 minutes: `used` has now been idle for 70, and goes (swept by an instance with registration off).
    clock.advance(50 * MINUTE);
    await sweepOf(off)();
    expect({ used: await exists(used), operator: await exists(operator) }).toEqual({ used: false, operator: true });
    await eventually(async () => {
      expect((await token({ grant_type: 'client_credentials' }, basic(used, registered.client_secret))).status).toBe(401);
    });
    const deletions = await handle.db.selectFrom('audit_events').select('target').where('action', '=', 'client.deleted').execute();
    expect(deletions.map((d) => d.target).sort()).toEqual([never, used].sort());
  });

  it('a metadata document\'s client: its creation audited with the address that brought it in; unused for the TTL, swept and audited; made again (audited) at its next use, though its document is still fresh', async () => {
    const documents = http.createServer((req, res) => {
      const id = `http://127.0.0.1:${(documents.address() as AddressInfo).port}${req.url}`;
      // Fresh for a day: longer than the TTL, so the row goes while this instance still holds the document fresh.
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=86400' });
      res.end(JSON.stringify({ client_id: id, client_name: 'Doc Agent', redirect_uris: [CALLBACK], token_endpoint_auth_method: 'none' }));
    });
    await new Promise<void>((resolve) => documents.listen(0, '127.0.0.1', resolve));
    try {
      const id = `http://127.0.0.1:${(documents.address() as AddressInfo).port}/agent.json`;
      const authorize = () =>
        request(server.url)
          .get(authorizePath({ client_id: id, redirect_uri: CALLBACK, response_type: 'code', scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256' }))
          .set('X-Request-Id', 'req-doc-1');
      // The sign-in page: the client is known.
      expect((await authorize()).status).toBe(200);
      const created = async () => handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'client.created').where('target', '=', id).execute();
      const [first] = await created();
      expect(first).toMatchObject({ actor: expect.stringMatching(/^ip:(::ffff:)?127\.0\.0\.1$/), reason: expect.stringContaining('first use of its client ID metadata document'), details: { registered_by: 'metadata_document', name: 'Doc Agent', redirect_uris: [CALLBACK] } });
      expect(await created()).toHaveLength(1);
      // Fetched again while fresh: no write, no second event.
      expect((await authorize()).status).toBe(200);
      expect(await created()).toHaveLength(1);

      clock.advance(70 * MINUTE);
      await sweepOf(server)();
      expect(await exists(id)).toBe(false);
      const deleted = await handle.db.selectFrom('audit_events').selectAll().where('action', '=', 'client.deleted').where('target', '=', id).executeTakeFirstOrThrow();
      expect(deleted).toMatchObject({ actor: 'schedule', reason: 'not used for 1h (IDP_DYNAMIC_CLIENT_TTL)', details: { registered_by: 'metadata_document' } });

      // Its next use brings it back (the client cache learns of the deletion by notification: polled).
      await eventually(async () => {
        expect((await authorize()).status).toBe(200);
        expect(await exists(id)).toBe(true);
      }, 5_000);
      expect(await created()).toHaveLength(2);
    } finally {
      await new Promise<void>((resolve) => documents.close(() => resolve()));
    }
  });
});

/**
 * The sweep's walk (src/clients/service.ts sweepUnusedClients): every self-registered client created
 * before the cutoff is looked at once, batch after batch, however many of a batch are kept because
 * they were used; and a client's recorded use goes with the client (the oauth_client_uses trigger).
 */
describe('the sweep walks the self-registered clients by creation, in batches', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  const NOW = new Date('2026-06-01T12:00:00.000Z');
  const HOUR = 60 * MINUTE;

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    await migrateToLatest(handle);
  });
  afterAll(async () => {
    await handle?.close();
    await database?.drop();
  });

  const make = async (registeredBy: 'dynamic' | 'metadata_document' | 'operator', createdAt: Date) => {
    const id = crypto.randomBytes(12).toString('base64url');
    await insertClient(handle.db, { id, name: 'c', secretHash: null, scopes: [], audiences: ['https://api.test'], tenantId: null, tokenTtlSeconds: null, registeredBy, now: createdAt });
    return id;
  };
  const remaining = async (ids: string[]) => (await handle.db.selectFrom('oauth_clients').select('id').where('id', 'in', ids).execute()).map((r) => r.id).sort();

  it('deletes every client unused for the TTL, across batches in which most clients are kept; audited once each', async () => {
    const unused: string[] = [];
    const used: string[] = [];
    const recent: string[] = [];
    // 20 old clients of each kind, created a minute apart (two in the same instant, microseconds apart), every third one unused.
    for (const kind of ['dynamic', 'metadata_document'] as const) {
      for (let i = 0; i < 20; i++) {
        const id = await make(kind, new Date(NOW.getTime() - 10 * HOUR + i * MINUTE));
        (i % 3 === 0 ? unused : used).push(id);
      }
    }
    const twin = await make('dynamic', new Date(NOW.getTime() - 10 * HOUR));
    await sql`update oauth_clients set created_at = created_at + interval '1 microsecond' where id = ${twin}`.execute(handle.db);
    unused.push(twin);
    for (let i = 0; i < 3; i++) recent.push(await make('dynamic', new Date(NOW.getTime() - 10 * MINUTE)));
    const operators = [await make('operator', new Date(NOW.getTime() - 100 * HOUR))];
    // Used 30 minutes ago (within the hour's TTL), in two statements.
    const usedAt = new Date(NOW.getTime() - 30 * MINUTE);
    expect(await touchClients(handle, used.slice(0, 10), usedAt, MINUTE)).toBe(10);
    expect(await touchClients(handle, used.slice(10), usedAt, MINUTE)).toBe(used.length - 10);

    const deleted = await sweepUnusedClients(handle.db, NOW, HOUR, { batchSize: 4, pauseMs: 0 });
    expect(deleted).toBe(unused.length);
    expect(await remaining([...unused, ...used, ...recent, ...operators])).toEqual([...used, ...recent, ...operators].sort());
    const audited = await handle.db.selectFrom('audit_events').select('target').where('action', '=', 'client.deleted').where('target', 'in', unused).execute();
    expect(audited.map((a) => a.target).sort()).toEqual([...unused].sort());

    // An hour later the uses are over the TTL too: everything self-registered goes, the operator's client stays.
    expect(await sweepUnusedClients(handle.db, new Date(NOW.getTime() + HOUR), HOUR, { batchSize: 4, pauseMs: 0 })).toBe(used.length + recent.length);
    expect(await remaining([...used, ...recent, ...operators])).toEqual(operators);
  });

  it("a client's recorded use goes with it, and a client made again under the same id starts without it", async () => {
    const id = await make('metadata_document', new Date(NOW.getTime() - 10 * HOUR));
    expect(await touchClients(handle, [id], NOW, MINUTE)).toBe(1);
    const uses = async () => (await handle.db.selectFrom('oauth_client_uses').select('used_at').where('client_id', '=', id).execute()).map((r) => r.used_at);
    expect(await uses()).toEqual([NOW]);
    await handle.db.deleteFrom('oauth_clients').where('id', '=', id).execute();
    expect(await uses()).toEqual([]);
    // A use recorded for a client that no longer exists writes nothing.
    expect(await touchClients(handle, [id], NOW, MINUTE)).toBe(0);
    expect(await uses()).toEqual([]);
    // A row left behind by a use that raced the deletion does not outlive a new client of that id.
    await sql`insert into oauth_client_uses (client_id, used_at) values (${id}, ${NOW})`.execute(handle.db);
    await insertClient(handle.db, { id, name: 'c', secretHash: null, scopes: [], audiences: ['https://api.test'], tenantId: null, tokenTtlSeconds: null, registeredBy: 'metadata_document', now: NOW });
    expect(await uses()).toEqual([]);
  });
});
