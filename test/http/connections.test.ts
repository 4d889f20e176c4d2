import net from 'node:net';
import { captureLogs, startTestServer, testConfig, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

/** Raw TCP: what a slow or vanishing client really sends, which an HTTP client library would not. */
function connect(url: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Resolves with what the server wrote once it closes the connection. */
function closed(socket: net.Socket): Promise<string> {
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return new Promise((resolve) => socket.on('close', () => resolve(text)));
}

describe('connections: clients that drip, stall or vanish (README: "Abuse limits")', () => {
  let database: TestDatabase;
  let app: TestServer;
  const logs = captureLogs();

  beforeAll(async () => {
    database = await createTestDatabase();
    app = await startTestServer(testConfig(database, { IDP_REQUEST_TIMEOUT: '1s', IDP_LOG_LEVEL: 'debug' }), await database.open(), undefined, { logs });
  });
  afterAll(async () => {
    await app.close();
    await database.drop();
  });

  it('closes a request whose headers never end once IDP_REQUEST_TIMEOUT has passed', async () => {
    const socket = await connect(app.url);
    const done = closed(socket);
    socket.write('POST /oauth/token HTTP/1.1\r\nHost: idp.test\r\nX-Drip: 1\r\n');
    expect(await done).toMatch(/^HTTP\/1\.1 408/);
  }, 15_000);

  it('closes a request whose declared body never comes, at /oauth and at /auth/v1', async () => {
    for (const path of ['/oauth/token', '/auth/v1/token']) {
      const socket = await connect(app.url);
      const done = closed(socket);
      const type = path.startsWith('/oauth') ? 'application/x-www-form-urlencoded' : 'application/json';
      socket.write(`POST ${path} HTTP/1.1\r\nHost: idp.test\r\nContent-Type: ${type}\r\nContent-Length: 100\r\n\r\ngrant`);
      await done; // the test's own timeout is the failure
    }
  }, 15_000);

  it('serves a request whose body comes in parts within IDP_REQUEST_TIMEOUT: only slow clients are closed', async () => {
    const socket = await connect(app.url);
    const done = closed(socket);
    const body = 'grant_type=client_credentials';
    socket.write(`POST /oauth/token HTTP/1.1\r\nHost: idp.test\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\ngrant_`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.write(body.slice('grant_'.length));
    // Answered (no client authentication: 401), not closed with 408.
    expect(await done).toMatch(/^HTTP\/1\.1 401 /);
  }, 15_000);

  it('a client that disconnects mid-body at /oauth/* is not an error: no error-level line, no server_error metric', async () => {
    for (const path of ['/oauth/token', '/oauth/introspect', '/oauth/revoke']) {
      const socket = await connect(app.url);
      const done = closed(socket);
      socket.write(`POST ${path} HTTP/1.1\r\nHost: idp.test\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\ngrant_type=client_cre`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
      await done;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    const levels = logs.lines.map((line) => line.level as number);
    expect(levels.filter((level) => level >= 50)).toEqual([]);
    const metrics = (await app.services.metrics.scrape()).body;
    expect(metrics).not.toMatch(/idp_oauth_errors_total\{[^}]*error="server_error"\} [1-9]/);
  });
});
