import { decodeJwt } from 'jose';
import { AliasNode, SelectQueryNode, TableNode, type KyselyPlugin, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryId, type QueryResult, type RootOperationNode, type UnknownRow } from 'kysely';
import { disableClient } from '../../src/clients/service';
import type { DatabaseHandle } from '../../src/db';
import { startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, usingPostgres, type TestDatabase } from '../helpers/database';
import { clientNotificationsDelivered } from '../helpers/notifications';
import { waitFor } from '../multiprocess/processes';
import { basic, makeClient, type TestClient } from '../oauth/helpers';

/**
 * Counts the statements that read clients, as the service sends them through its database handle
 * (the only way it has to the database): every execution of a Kysely statement over oauth_clients
 * passes through transformResult, and every statement on the handle's statement lane through
 * `laneRows` below, so the count is exact however often a statement was compiled. The first such
 * read can be held back, as a slow database would hold it, so that a burst of requests is certain
 * to overlap it; the statement itself runs on the real database.
 */
class ClientReads implements KyselyPlugin {
  count = 0;
  private readonly reads = new WeakSet<QueryId>();
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  holdNext(): () => void {
    this.gate = new Promise((resolve) => (this.open = resolve));
    return () => this.open?.();
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const node = args.node;
    const from = SelectQueryNode.is(node) ? node.from?.froms[0] : undefined;
    const table = from && AliasNode.is(from) ? from.node : from;
    if (table && TableNode.is(table) && table.table.identifier.name === 'oauth_clients') this.reads.add(args.queryId);
    return node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (!this.reads.has(args.queryId)) return args.result;
    await this.counted();
    return args.result;
  }

  /** The handle's laneRows, counting (and holding) the reads of oauth_clients sent on it. */
  laneRows(handle: DatabaseHandle): DatabaseHandle['laneRows'] {
    return async (statement, parameters) => {
      const rows = await handle.laneRows(statement, parameters);
      if (/\bfrom "oauth_clients"/.test(statement.sql)) await this.counted();
      return rows;
    };
  }

  private async counted(): Promise<void> {
    this.count += 1;
    if (this.gate) {
      const gate = this.gate;
      this.gate = undefined;
      await gate;
    }
  }
}

describe(`cold clients: a burst of token requests for clients not in memory (${usingPostgres ? 'Postgres' : 'PGlite'})`, () => {
  const N = 20;
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let app: TestServer;
  const reads = new ClientReads();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    app = await startTestServer(testConfig(database), { ...handle, db: handle.db.withPlugin(reads), laneRows: reads.laneRows(handle) });
  });
  afterAll(async () => {
    await app?.close();
    await database?.drop();
  });

  const token = (authorization: string) =>
    fetch(`${app.url}/oauth/token`, {
      method: 'POST',
      headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    }).then(async (res) => ({ status: res.status, body: (await res.json()) as Record<string, string> }));

  it(`${N} concurrent requests for ${N} different clients cost at most two client reads, not ${N}; each answer is its own client's`, async () => {
    const clients: TestClient[] = [];
    for (let i = 0; i < N; i++) clients.push(await makeClient(app.services, { name: `cold ${i}` }));
    const [wrongSecret, disabled] = clients.slice(-2) as [TestClient, TestClient];
    await disableClient(handle.db, disabled.id, { actor: 'test', now: new Date() });
    await clientNotificationsDelivered(handle);
    expect(clients.every((c) => app.services.oauth.clients.peek(c.id) === undefined)).toBe(true);

    const before = reads.count;
    const release = reads.holdNext();
    let answered = 0;
    let results: Array<{ status: number; body: Record<string, string> }>;
    try {
      const answers = Promise.all(
        clients.map(async (c) => {
          const answer = await token(c === wrongSecret ? basic(c.id, `${c.secret}x`) : c.authorization);
          answered += 1;
          return answer;
        }),
      );
      // Every request has either been answered or is waiting for its client (the first read is held).
      await waitFor(`all ${N} requests reached the client cache`, () => (app.services.oauth.clients.waiting + answered === N ? true : undefined), 10_000);
      release();
      results = await answers;
    } finally {
      release();
    }

    expect(reads.count - before).toBeGreaterThanOrEqual(1);
    expect(reads.count - before).toBeLessThanOrEqual(2);
    for (const [i, client] of clients.entries()) {
      const { status, body } = results[i] as { status: number; body: Record<string, string> };
      if (client === wrongSecret || client === disabled) {
        expect({ status, error: body.error }).toEqual({ status: 401, error: 'invalid_client' });
      } else {
        expect(status).toBe(200);
        expect(decodeJwt(body.access_token as string)).toMatchObject({ client_id: client.id, sub: client.id });
      }
    }
    expect(results[N - 1]?.body.error_description).toBe('client is disabled');

    // They are in memory now (the cache holds them all): a second round reads nothing.
    const again = reads.count;
    const second = await Promise.all(clients.slice(0, 5).map((c) => token(c.authorization)));
    expect(second.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(reads.count).toBe(again);
  });
});
