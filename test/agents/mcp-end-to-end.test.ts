import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, type OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { decodeJwt } from 'jose';
import { MCP_SCOPE, startExampleMcpServer } from '../../scripts/example-mcp-server';
import type { DatabaseHandle } from '../../src/db';
import { useBrowser, withPage } from '../helpers/browser';
import type { TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { landedAt, makeUser, registerResource, signInOnPage, startCallback, startIssuer, type TestUser } from '../authorization/support';

/**
 * docs/agents.md, end to end: the official MCP TypeScript SDK's client, with its OAuth client
 * provider, connects to the example MCP server (scripts/example-mcp-server.ts: the SDK's server
 * behind protectedResource + requireAuth), is refused with 401, finds the protected-resource and
 * authorization-server metadata, registers (dynamically, or as a Client ID Metadata Document served
 * on loopback), and a real headless Chromium signs in and consents on the hosted pages; the SDK
 * redeems the code with PKCE and calls the tool, which names the user.
 */

/** The agent's side of OAuth, as the SDK asks for it; "redirecting" is a real browser signing `user` in. */
class AgentProvider implements OAuthClientProvider {
  private saved: { info?: OAuthClientInformationMixed; tokens?: OAuthTokens; verifier?: string } = {};
  readonly authorizationUrls: URL[] = [];
  /** The code the browser brought back to the loopback redirect URI. */
  code: string | undefined;

  constructor(
    private readonly redirect: string,
    private readonly signIn: (url: URL) => Promise<URL>,
    info?: OAuthClientInformationMixed,
  ) {
    this.saved.info = info;
  }
  get redirectUrl(): string {
    return this.redirect;
  }
  get clientMetadata(): OAuthClientMetadata {
    return { client_name: 'Example Agent', redirect_uris: [this.redirect], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.saved.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.saved.info = info;
  }
  tokens(): OAuthTokens | undefined {
    return this.saved.tokens;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.saved.tokens = tokens;
  }
  async redirectToAuthorization(url: URL): Promise<void> {
    this.authorizationUrls.push(url);
    const back = await this.signIn(url);
    this.code = back.searchParams.get('code') ?? undefined;
  }
  saveCodeVerifier(verifier: string): void {
    this.saved.verifier = verifier;
  }
  codeVerifier(): string {
    if (this.saved.verifier === undefined) throw new Error('no code verifier saved');
    return this.saved.verifier;
  }
}

/** Every request the SDK makes (MCP and OAuth alike), as "METHOD url status". */
function recordingFetch(log: string[]): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    log.push(`${init?.method ?? 'GET'} ${input instanceof Request ? input.url : String(input)} ${res.status}`);
    return res;
  };
}

/** The agent's web server publishing its Client ID Metadata Document (played by the test, on loopback). */
async function documentHost(document: (url: string) => unknown): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/agent/client.json') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'max-age=300' }).end(JSON.stringify(document(url)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/agent/client.json`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('an MCP client (the official SDK) through the example MCP server', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let callback: Awaited<ReturnType<typeof startCallback>>;
  let mcpA: Awaited<ReturnType<typeof startExampleMcpServer>>;
  let mcpB: Awaited<ReturnType<typeof startExampleMcpServer>>;
  let documents: Awaited<ReturnType<typeof documentHost>>;
  const browser = useBrowser();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle, { IDP_DYNAMIC_REGISTRATION: 'open', IDP_CLIENT_ID_METADATA_DOCUMENTS: 'on' });
    callback = await startCallback();
    mcpA = await startExampleMcpServer({ issuer: server.url });
    mcpB = await startExampleMcpServer({ issuer: server.url });
    await registerResource(server.services, mcpA.resource, 'Example MCP server A', [MCP_SCOPE]);
    await registerResource(server.services, mcpB.resource, 'Example MCP server B', [MCP_SCOPE]);
    documents = await documentHost((url) => ({
      client_id: url,
      client_name: 'Document Agent',
      redirect_uris: [callback.url],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      scope: MCP_SCOPE,
    }));
  });
  afterAll(async () => {
    await documents?.close();
    await mcpA?.close();
    await mcpB?.close();
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  const metadataUrl = (resource: string) => `${new URL(resource).origin}/.well-known/oauth-protected-resource/mcp`;

  /** What the browser does at the authorization URL: sign in, check the consent page, allow, land at the callback. */
  const signInAndAllow = (user: TestUser, expectOnConsent: (text: string) => void) => (url: URL) =>
    withPage(browser(), async (page) => {
      await page.goto(url.href);
      await signInOnPage(page, user);
      expectOnConsent((await page.locator('main').textContent()) ?? '');
      await page.getByRole('button', { name: 'Allow' }).click();
      return landedAt(page, callback.url);
    });

  /** connect → 401 → the SDK's discovery, registration and redirect (UnauthorizedError); then finishAuth with the code, and a fresh connection. */
  async function authorizeAndConnect(provider: AgentProvider, resource: string, log: string[]): Promise<Client> {
    const first = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider, fetch: recordingFetch(log) });
    await expect(new Client({ name: 'example-agent', version: '1.0.0' }).connect(first)).rejects.toBeInstanceOf(UnauthorizedError);
    expect(provider.code).toEqual(expect.any(String));
    await first.finishAuth(provider.code as string);
    await first.close();
    const client = new Client({ name: 'example-agent', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider, fetch: recordingFetch(log) }));
    return client;
  }

  async function whoami(client: Client): Promise<string> {
    const result = await client.callTool({ name: 'whoami', arguments: {} });
    const content = result.content as Array<{ type: string; text: string }>;
    return content.map((c) => c.text).join('\n');
  }

  it('refuses a request without a token with the exact challenge, and serves the RFC 9728 metadata it names', async () => {
    const res = await fetch(mcpA.resource, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' }, body: '{}' });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Bearer resource_metadata="${metadataUrl(mcpA.resource)}", scope="${MCP_SCOPE}"`);
    const metadata = await fetch(metadataUrl(mcpA.resource));
    await expect(metadata.json()).resolves.toEqual({
      resource: mcpA.resource,
      authorization_servers: [server.url],
      scopes_supported: [MCP_SCOPE],
      bearer_methods_supported: ['header'],
      resource_name: 'Example MCP server',
    });
  });

  it('dynamic registration: 401, RFC 9728 then RFC 8414 discovery, registration, sign-in and consent in a browser, the code with PKCE, the tool names the user; the token is refused by another MCP server', async () => {
    const user = await makeUser(server.url, 'mcp-dcr');
    const log: string[] = [];
    const provider = new AgentProvider(
      callback.url,
      signInAndAllow(user, (text) => {
        expect(text).toContain('Example Agent');
        expect(text).toContain(MCP_SCOPE);
        expect(text).toContain(mcpA.resource);
      }),
    );
    const client = await authorizeAndConnect(provider, mcpA.resource, log);

    // What the SDK did, in order: refused, the resource's metadata, the authorization server's, registration.
    const oauthSteps = log.filter((line) => !line.startsWith(`POST ${mcpA.resource}`) || line.endsWith(' 401'));
    expect(oauthSteps.slice(0, 4)).toEqual([
      `POST ${mcpA.resource} 401`,
      `GET ${metadataUrl(mcpA.resource)} 200`,
      `GET ${server.url}/.well-known/oauth-authorization-server 200`,
      `POST ${server.url}/oauth/register 201`,
    ]);
    expect(log).toContain(`POST ${server.url}/oauth/token 200`);
    const info = provider.clientInformation() as { client_id: string };
    const stored = await handle.db.selectFrom('oauth_clients').select(['registered_by', 'token_endpoint_auth_method']).where('id', '=', info.client_id).executeTakeFirstOrThrow();
    expect(stored).toEqual({ registered_by: 'dynamic', token_endpoint_auth_method: 'none' });

    // The authorization request: PKCE S256, the resource and the scope the 401 named.
    const [authorization] = provider.authorizationUrls;
    expect(authorization?.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorization?.searchParams.get('resource')).toBe(mcpA.resource);
    expect(authorization?.searchParams.get('scope')).toBe(MCP_SCOPE);

    const accessToken = provider.tokens()?.access_token as string;
    expect(decodeJwt(accessToken)).toMatchObject({ sub: user.id, aud: mcpA.resource, client_id: info.client_id, scope: MCP_SCOPE });
    await expect(whoami(client)).resolves.toBe(`You are user ${user.id}, calling through client ${info.client_id} with scopes ${MCP_SCOPE}.`);
    await client.close();

    // A token for server A is not a token for server B.
    const refused = await fetch(mcpB.resource, { method: 'POST', headers: { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' }, body: '{}' });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toBe(
      `Bearer resource_metadata="${metadataUrl(mcpB.resource)}", error="invalid_token", error_description="audience '${mcpA.resource}' not accepted", scope="${MCP_SCOPE}"`,
    );
  });

  it('a Client ID Metadata Document on loopback: the document URL is the client_id, no registration; the consent page shows its host and port; the SDK gets the token and calls the tool', async () => {
    const user = await makeUser(server.url, 'mcp-cimd');
    const log: string[] = [];
    // The SDK's clientMetadataUrl must be https; the provider names the document URL as its client_id instead.
    const provider = new AgentProvider(
      callback.url,
      signInAndAllow(user, (text) => {
        expect(text).toContain('Document Agent');
        expect(text).toContain(new URL(documents.url).host);
      }),
      { client_id: documents.url },
    );
    const client = await authorizeAndConnect(provider, mcpA.resource, log);
    expect(log.some((line) => line.includes('/oauth/register'))).toBe(false);
    expect(provider.authorizationUrls[0]?.searchParams.get('client_id')).toBe(documents.url);
    const stored = await handle.db.selectFrom('oauth_clients').select('registered_by').where('id', '=', documents.url).executeTakeFirstOrThrow();
    expect(stored.registered_by).toBe('metadata_document');
    await expect(whoami(client)).resolves.toBe(`You are user ${user.id}, calling through client ${documents.url} with scopes ${MCP_SCOPE}.`);
    await client.close();
  });
});
