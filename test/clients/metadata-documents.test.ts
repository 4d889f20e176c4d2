import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { clientIdUrl, MetadataDocumentClients } from '../../src/clients/metadata-documents';
import { findClient } from '../../src/clients/repository';
import type { DatabaseHandle } from '../../src/db';
import { createLogger } from '../../src/observability/logger';
import { useBrowser, withPage } from '../helpers/browser';
import type { TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { assertion, FORM, JWT_BEARER, jwksOf, testKey } from '../oauth/private-key-jwt-support';
import { authorizePath, landedAt, makeUser, pkce, registerResource, signInOnPage, startCallback, startIssuer } from '../authorization/support';

/** The client's web server, played by the test: each path answers as `routes` says, and counts its requests. */
async function documentHost(): Promise<{ url: string; routes: Map<string, http.RequestListener>; hits: Map<string, number>; close(): Promise<void> }> {
  const routes = new Map<string, http.RequestListener>();
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const route = routes.get(path);
    if (route) return route(req, res);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    routes,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const json = (body: unknown, cacheControl = 'max-age=600'): http.RequestListener => (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': cacheControl }).end(JSON.stringify(body));
};

/**
 * docs/oauth.md "Client ID Metadata Documents": a client whose client_id is the URL of its metadata
 * document, served here on loopback by a real HTTP server, signs a user in through the hosted pages
 * in a real browser; every way a document can fail to qualify leaves the request refused and no
 * client behind.
 */
describe('Client ID Metadata Documents', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let callback: Awaited<ReturnType<typeof startCallback>>;
  let host: Awaited<ReturnType<typeof documentHost>>;
  const browser = useBrowser();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle, { IDP_LOG_LEVEL: 'warn' });
    callback = await startCallback();
    host = await documentHost();
  });
  afterAll(async () => {
    await host?.close();
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  let n = 0;
  /** A fresh document path on the host, and its client id URL. */
  const publish = (document: (id: string) => unknown, listener?: http.RequestListener): string => {
    const path = `/clients/app-${++n}/metadata.json`;
    const id = `${host.url}${path}`;
    host.routes.set(path, listener ?? json(document(id)));
    return id;
  };
  const authorize = (clientId: string, extra: Record<string, string | undefined> = {}) =>
    request(server.url).get(
      authorizePath({ client_id: clientId, redirect_uri: callback.url, response_type: 'code', scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256', ...extra }),
    );
  const noClient = async (id: string) => expect(await findClient(handle.db, id)).toBeUndefined();

  it('a public client by its document completes the code flow in a browser; the consent page names the document host:port; the document is fetched once while fresh', async () => {
    const metadata = await request(server.url).get('/.well-known/oauth-authorization-server');
    expect(metadata.body.client_id_metadata_document_supported).toBe(true);

    const id = publish((clientId) => ({ client_id: clientId, client_name: 'Doc App', redirect_uris: [callback.url], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'client_credentials'] }));
    const path = new URL(id).pathname;
    const user = await makeUser(server.url, 'cimd');
    const { verifier, challenge } = pkce();
    await withPage(browser(), async (page) => {
      await page.goto(`${server.url}${authorizePath({ client_id: id, redirect_uri: callback.url, response_type: 'code', scope: 'openid email', state: 's1', code_challenge: challenge, code_challenge_method: 'S256' })}`);
      await signInOnPage(page, user);
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Allow Doc App?');
      const warning = await page.getByRole('note').textContent();
      expect(warning).toContain(`client metadata document at ${new URL(host.url).host}`);
      await page.getByRole('button', { name: 'Allow' }).click();
      const back = await landedAt(page, callback.url);
      expect(back.searchParams.get('state')).toBe('s1');
      const code = back.searchParams.get('code') as string;
      const token = await request(server.url)
        .post('/oauth/token')
        .type('form')
        .send({ grant_type: 'authorization_code', code, redirect_uri: callback.url, client_id: id, code_verifier: verifier });
      expect(token.status).toBe(200);
      expect(token.body.access_token).toEqual(expect.any(String));
    });
    const stored = await findClient(handle.db, id);
    expect(stored).toMatchObject({ registeredBy: 'metadata_document', firstParty: false, tokenEndpointAuthMethod: 'none', grantTypes: ['authorization_code'] });
    // client_credentials, asked for, was dropped.
    // Cache-Control max-age=600: the authorize request, the page's post and the token request used one fetch.
    expect(host.hits.get(path)).toBe(1);
  });

  it('a private_key_jwt client by its document authenticates with its keys, and never gets client_credentials', async () => {
    const key = testKey('ES256');
    const id = publish((clientId) => ({ client_id: clientId, redirect_uris: [callback.url], token_endpoint_auth_method: 'private_key_jwt', jwks: jwksOf(key), grant_types: ['client_credentials', 'authorization_code', 'refresh_token'] }));
    const tokenRequest = async (grant: Record<string, string>) =>
      request(server.url)
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .send(new URLSearchParams({ ...grant, client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, id, server.url) }).toString());
    const credentials = await tokenRequest({ grant_type: 'client_credentials' });
    expect(credentials.status).toBe(400);
    expect(credentials.body.error).toBe('unauthorized_client');
    // Authenticated (the grant's own check answers), not refused as a client.
    const refresh = await tokenRequest({ grant_type: 'refresh_token', refresh_token: 'not-a-refresh-token' });
    expect(refresh.body.error).toBe('invalid_grant');
    // Another key's assertion is refused as a client.
    const other = await request(server.url)
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .send(new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion(testKey('ES256'), id, server.url) }).toString());
    expect(other.status).toBe(401);
    expect(other.body.error).toBe('invalid_client');
  });

  it('the scope a document registers bounds the resource scopes its client may ask for', async () => {
    await registerResource(server.services, 'https://api.cimd.test', 'CIMD API', ['read', 'write']);
    const id = publish((clientId) => ({ client_id: clientId, redirect_uris: [callback.url], scope: 'openid read' }));
    const refused = await authorize(id, { scope: 'openid write', resource: 'https://api.cimd.test' });
    expect(refused.status).toBe(302);
    expect(new URL(refused.headers.location as string).searchParams.get('error')).toBe('invalid_scope');
    const allowed = await authorize(id, { scope: 'openid read', resource: 'https://api.cimd.test' });
    expect(new URL(allowed.headers.location as string, server.url).searchParams.get('error')).toBeNull();
  });

  const refusals: Array<[string, (clientId: string) => unknown, http.RequestListener | undefined]> = [
    ['its client_id is another URL', (clientId) => ({ client_id: `${clientId}?other`, redirect_uris: [callback.url] }), undefined],
    ['a secret auth method', (clientId) => ({ client_id: clientId, redirect_uris: [callback.url], token_endpoint_auth_method: 'client_secret_basic' }), undefined],
    ['not JSON', () => undefined, (_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"client_id":')],
    ['oversized (over 64 KiB)', (clientId) => ({ client_id: clientId, redirect_uris: [callback.url], padding: 'x'.repeat(70 * 1024) }), undefined],
    ['a redirect (3xx)', () => undefined, (_req, res) => void res.writeHead(302, { Location: `${host.url}/elsewhere.json` }).end()],
    ['slow (past the 2 s deadline)', () => undefined, (req) => void req.resume()],
  ];
  it.each(refusals)('a document that is %s: the authorize request shows the error page, the token endpoint answers invalid_client, no client is kept', async (_why, document, listener) => {
    const id = publish(document, listener);
    const page = await authorize(id);
    expect(page.status).toBe(400);
    expect(page.text).toContain('client metadata document could not be used');
    const token = await request(server.url).post('/oauth/token').type('form').send({ grant_type: 'authorization_code', code: 'x', redirect_uri: callback.url, client_id: id, code_verifier: 'v'.repeat(43) });
    expect(token.status).toBe(401);
    expect(token.body.error).toBe('invalid_client');
    await noClient(id);
  });

  it('a redirect URI the document does not list is refused on the error page, never redirected to', async () => {
    const id = publish((clientId) => ({ client_id: clientId, redirect_uris: [callback.url] }));
    const page = await authorize(id, { redirect_uri: `${callback.url}/elsewhere` });
    expect(page.status).toBe(400);
    expect(page.headers.location).toBeUndefined();
  });
});

describe('client id URLs and their destinations', () => {
  const dev = { production: false };
  const production = { production: true };

  it('is an https URL with a path in its normal form; outside production also http on loopback', () => {
    expect(clientIdUrl('https://app.example/client.json', production)?.href).toBe('https://app.example/client.json');
    expect(clientIdUrl('https://app.example/', production)).toBeUndefined();
    expect(clientIdUrl('https://app.example', production)).toBeUndefined();
    expect(clientIdUrl('https://app.example/a/../client.json', production)).toBeUndefined();
    expect(clientIdUrl('https://user@app.example/client.json', production)).toBeUndefined();
    expect(clientIdUrl('https://app.example/client.json#x', production)).toBeUndefined();
    expect(clientIdUrl('HTTPS://app.example/client.json', production)).toBeUndefined();
    expect(clientIdUrl('http://127.0.0.1:8080/client.json', dev)).toBeDefined();
    expect(clientIdUrl('http://[::1]:8080/client.json', dev)).toBeDefined();
    expect(clientIdUrl('http://localhost:8080/client.json', dev)).toBeDefined();
    expect(clientIdUrl('http://app.example/client.json', dev)).toBeUndefined();
    expect(clientIdUrl('abcdefghijklmnopqrstuv', dev)).toBeUndefined();
  });

  it('in production: no http, no private, loopback, link-local or reserved address, no localhost; a name resolving to one is refused at connection', async () => {
    for (const id of [
      'http://127.0.0.1:8080/client.json',
      'https://127.0.0.1/client.json',
      'https://10.1.2.3/client.json',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/client.json',
      'https://[fd00::1]/client.json',
      'https://localhost/client.json',
    ]) {
      expect(clientIdUrl(id, production)).toBeUndefined();
    }
    // A host name is checked at connection, on every address it resolves to (localhost.localtest.me-like names are not
    // needed: the fetcher's lookup is the same one jwks_uri uses, exercised in test/oauth/private-key-jwt-uri.test.ts).
    const clients = { get: async () => undefined, forget: () => undefined };
    const documents = new MetadataDocumentClients({ db: undefined as never, clients, defaultAudience: 'https://api.test', maxEntries: 10, production: true, logger: createLogger('silent'), now: () => new Date() });
    await expect(documents.resolve('https://10.1.2.3/client.json')).resolves.toBeUndefined();
    expect(documents.isClientIdUrl('https://169.254.169.254/latest/meta-data')).toBe(false);
  });
});
