import { decodeJwt } from 'jose';
import { BaseClient, generators, Issuer } from 'openid-client';
import type { DatabaseHandle } from '../../src/db';
import { useBrowser, withPage } from '../helpers/browser';
import type { TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { eventually } from '../oauth/helpers';
import { testKey } from '../oauth/private-key-jwt-support';
import { landedAt, makeUser, registerResource, signInOnPage, startCallback, startIssuer } from '../authorization/support';

const MCP = 'https://mcp.example/mcp';

/**
 * docs/agents.md "Dynamic client registration", end to end: openid-client (a certified relying party) finds
 * the registration endpoint by discovery, registers itself, and a real headless Chromium signs in and
 * consents on the hosted pages; the client redeems the code as it registered (a public client by
 * client_id alone, a private_key_jwt client with an assertion of its own key).
 */
describe('a dynamically registered client through the authorization-code flow in a real browser', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let callback: Awaited<ReturnType<typeof startCallback>>;
  const browser = useBrowser();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle, { IDP_DYNAMIC_REGISTRATION: 'open' });
    callback = await startCallback();
    await registerResource(server.services, MCP, 'Example MCP server', ['mcp:read', 'mcp:write']);
  });
  afterAll(async () => {
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  function start(client: BaseClient, scope: string) {
    const verifier = generators.codeVerifier();
    const state = generators.state();
    const nonce = generators.nonce();
    const url = client.authorizationUrl({ scope, resource: MCP, code_challenge: generators.codeChallenge(verifier), code_challenge_method: 'S256', state, nonce });
    return { url, checks: { code_verifier: verifier, state, nonce, response_type: 'code' } };
  }
  // openid-client's types leave the static register() off the issuer's Client class (it is there at run time).
  const clientClass = (issuer: Issuer) => issuer.Client as unknown as typeof BaseClient;
  const lastUsed = async (id: string) => (await handle.db.selectFrom('oauth_client_uses').select('used_at').where('client_id', '=', id).executeTakeFirst())?.used_at ?? null;

  it('a public client: discovery, registration, sign-in, a consent page that says nobody vetted it, the code with PKCE, tokens for the resource, refresh; a wider request asks again', async () => {
    const user = await makeUser(server.url);
    const issuer = await Issuer.discover(server.url);
    expect(issuer.metadata.registration_endpoint).toBe(`${server.url}/oauth/register`);
    const client = await clientClass(issuer).register({
      client_name: 'Example Agent',
      redirect_uris: [callback.url],
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'openid email offline_access mcp:read',
    });
    const id = client.metadata.client_id;
    expect(client.metadata).toMatchObject({ token_endpoint_auth_method: 'none', scope: 'openid email offline_access mcp:read' });
    expect(client.metadata.client_secret).toBeUndefined();
    expect(await lastUsed(id)).toBeNull();

    await withPage(browser(), async (page) => {
      const first = start(client, 'openid offline_access mcp:read');
      await page.goto(first.url);
      await signInOnPage(page, user);
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Allow Example Agent?');
      await expect(page.getByRole('note').textContent()).resolves.toContain('This application registered itself');
      await page.getByRole('button', { name: 'Allow' }).click();
      const back = await landedAt(page, callback.url);
      // The code it was given is a use, before it is redeemed.
      await eventually(async () => expect(await lastUsed(id)).toBeInstanceOf(Date), 5_000);

      const tokens = await client.callback(callback.url, client.callbackParams(back.href), first.checks);
      expect(tokens.scope).toBe('openid offline_access mcp:read');
      expect(tokens.claims()).toMatchObject({ iss: server.url, sub: user.id, aud: id });
      expect(decodeJwt(tokens.access_token as string)).toMatchObject({ client_id: id, sub: user.id, aud: MCP, scope: 'openid offline_access mcp:read' });
      const refreshed = await client.refresh(tokens.refresh_token as string);
      expect(decodeJwt(refreshed.access_token as string)).toMatchObject({ client_id: id, aud: MCP });

      // Third-party: what was granted is remembered, anything more is asked again.
      const again = start(client, 'openid mcp:read');
      await page.goto(again.url);
      await landedAt(page, callback.url);
      await page.goto(start(client, 'openid email mcp:read').url);
      await expect(page.getByRole('button', { name: 'Allow' }).count()).resolves.toBe(1);
    });
  });

  it('a private_key_jwt client: registered with its public key, it redeems the code with an assertion of its own key', async () => {
    const user = await makeUser(server.url);
    const key = testKey('ES256');
    const issuer = await Issuer.discover(server.url);
    // openid-client sends only the public part of the keys it is given.
    const client = await clientClass(issuer).register(
      { client_name: 'Example Keyed Agent', redirect_uris: [callback.url], token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256' },
      { jwks: { keys: [key.privateJwk as never] } },
    );
    const id = client.metadata.client_id;
    const stored = await handle.db.selectFrom('oauth_clients').select(['token_endpoint_auth_method', 'jwks', 'secret_hash']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(stored).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', secret_hash: null });
    expect(JSON.stringify(stored.jwks)).not.toContain('"d"');

    await withPage(browser(), async (page) => {
      const flow = start(client, 'openid mcp:write');
      await page.goto(flow.url);
      await signInOnPage(page, user);
      await page.getByRole('button', { name: 'Allow' }).click();
      const back = await landedAt(page, callback.url);
      const tokens = await client.callback(callback.url, client.callbackParams(back.href), flow.checks);
      expect(decodeJwt(tokens.access_token as string)).toMatchObject({ client_id: id, sub: user.id, aud: MCP, scope: 'openid mcp:write' });
    });
  });
});
