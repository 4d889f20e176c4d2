import { spawn } from 'node:child_process';
import path from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { generators, Issuer } from 'openid-client';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { useBrowser, withPage } from '../helpers/browser';
import type { TestServer } from '../helpers/context';
import { eventually } from '../oauth/helpers';
import { landedAt, makeCodeClient, makeUser, signInOnPage, startCallback, startIssuer, type TestUser } from './support';

/**
 * docs/sign-in.md "Sign-in for applications", end to end: a real headless Chromium signs in and consents on
 * the hosted pages, and openid-client (a certified OpenID Connect relying party) drives a
 * confidential client through discovery, PKCE, state, nonce, iss, the ID token and userinfo.
 */
describe('sign-in for applications in a real browser', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let callback: Awaited<ReturnType<typeof startCallback>>;
  const browser = useBrowser();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle);
    callback = await startCallback();
  });
  afterAll(async () => {
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  async function confidentialClient(input: { firstParty?: boolean } = {}) {
    const made = await makeCodeClient(server.services, { name: 'Example Web App', redirectUris: [callback.url], postLogoutRedirectUris: [`${callback.url}?signed-out`], ...input });
    const issuer = await Issuer.discover(server.url);
    const client = new issuer.Client({ client_id: made.id, client_secret: made.secret, redirect_uris: [callback.url], response_types: ['code'] });
    return { id: made.id, client, issuer };
  }

  function start(client: Awaited<ReturnType<typeof confidentialClient>>['client'], scope = 'openid email offline_access', extra: Record<string, string> = {}) {
    const verifier = generators.codeVerifier();
    const state = generators.state();
    const nonce = generators.nonce();
    const url = client.authorizationUrl({ scope, code_challenge: generators.codeChallenge(verifier), code_challenge_method: 'S256', state, nonce, ...extra });
    return { url, checks: { code_verifier: verifier, state, nonce, response_type: 'code' } };
  }

  it('openid-client: discovery, sign-in, consent, code with PKCE, ID token, userinfo, refresh; a second sign-in skips the page', async () => {
    const user: TestUser = await makeUser(server.url);
    const { id, client, issuer } = await confidentialClient();
    expect(issuer.metadata).toMatchObject({
      authorization_endpoint: `${server.url}/oauth/authorize`,
      userinfo_endpoint: `${server.url}/oauth/userinfo`,
      end_session_endpoint: `${server.url}/oauth/logout`,
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
    });

    await withPage(browser(), async (page) => {
      const first = start(client);
      await page.goto(first.url);
      await expect(page.title()).resolves.toContain('Sign in');
      await signInOnPage(page, user);
      // The consent page: the client's name, where the answer goes, each scope.
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Allow Example Web App?');
      const text = await page.locator('main').textContent();
      expect(text).toContain('127.0.0.1');
      for (const scope of ['openid', 'email', 'offline_access']) expect(text).toContain(scope);
      await page.getByRole('button', { name: 'Allow' }).click();
      const back = await landedAt(page, callback.url);
      expect(back.searchParams.get('iss')).toBe(server.url);
      expect(back.searchParams.get('state')).toBe(first.checks.state);

      const tokens = await client.callback(callback.url, client.callbackParams(back.href), first.checks);
      expect(tokens.token_type).toBe('Bearer');
      expect(tokens.scope).toBe('openid email offline_access');
      expect(tokens.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const claims = tokens.claims();
      expect(decodeProtectedHeader(tokens.id_token as string)).toMatchObject({ alg: 'RS256', typ: 'JWT', kid: expect.any(String) });
      expect(claims).toMatchObject({ iss: server.url, sub: user.id, aud: id, nonce: first.checks.nonce, email: user.email, email_verified: false });
      expect(typeof claims.auth_time).toBe('number');
      const access = decodeJwt(tokens.access_token as string);
      expect(decodeProtectedHeader(tokens.access_token as string).typ).toBe('at+jwt');
      expect(access).toMatchObject({ sub: user.id, client_id: id, aud: server.url, scope: 'openid email offline_access', sid: claims.sid, token_type: 'user' });

      await expect(client.userinfo(tokens)).resolves.toEqual({ sub: user.id, email: user.email, email_verified: false });

      // Rotated on every use; the new access token keeps the client, scope and session.
      const refreshed = await client.refresh(tokens.refresh_token as string);
      expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
      expect(decodeJwt(refreshed.access_token as string)).toMatchObject({ client_id: id, sid: claims.sid, scope: 'openid email offline_access' });

      // Comes back with its session and its consent: no page at all, straight back with a code.
      const second = start(client);
      await page.goto(second.url);
      const again = await landedAt(page, callback.url);
      const tokens2 = await client.callback(callback.url, client.callbackParams(again.href), second.checks);
      expect(tokens2.claims()).toMatchObject({ sub: user.id, auth_time: claims.auth_time });
      expect(tokens2.claims().sid).not.toBe(claims.sid);
    });
  });

  it('oauth4webapi: a public client (client_id alone, PKCE its proof) on a loopback redirect of any port: tokens, ID token, userinfo, refresh', async () => {
    const user = await makeUser(server.url);
    // Registered without a port; the app listens wherever it could (RFC 8252 §7.3).
    const app = await makeCodeClient(server.services, { name: 'Example CLI', redirectUris: ['http://127.0.0.1/callback'], public: true });
    const child = spawn(process.execPath, [path.join(__dirname, '../fixtures/oauth4webapi-code.mjs'), server.url, app.id, callback.url]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await eventually(async () => expect(stdout).toContain('\n'), 15_000).catch(() => {
      throw new Error(`oauth4webapi did not start: ${stderr}`);
    });
    const { url } = JSON.parse(stdout.split('\n')[0] as string) as { url: string };
    await withPage(browser(), async (page) => {
      await page.goto(url);
      await signInOnPage(page, user);
      await page.getByRole('button', { name: 'Allow' }).click();
      const back = await landedAt(page, callback.url);
      child.stdin.end(`${back.href}\n`);
    });
    expect({ code: await exited, stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(stdout.split('\n')[1] as string);
    expect(result.claims).toMatchObject({ iss: server.url, sub: user.id, aud: app.id, email: user.email });
    expect(result.userinfo).toEqual({ sub: user.id, email: user.email, email_verified: false });
    expect(decodeJwt(result.tokens.access_token)).toMatchObject({ client_id: app.id, sub: user.id });
    expect(result.refreshed.refresh_token).not.toBe(result.tokens.refresh_token);
    expect(decodeJwt(result.refreshed.access_token)).toMatchObject({ client_id: app.id, sid: result.claims.sid });
  });

  it('deny: the client gets access_denied with its state and the issuer; nothing is remembered', async () => {
    const user = await makeUser(server.url);
    const { client } = await confidentialClient();
    await withPage(browser(), async (page) => {
      const flow = start(client, 'openid');
      await page.goto(flow.url);
      await signInOnPage(page, user);
      await page.getByRole('button', { name: 'Deny' }).click();
      const back = await landedAt(page, callback.url);
      expect(Object.fromEntries(back.searchParams)).toMatchObject({ error: 'access_denied', state: flow.checks.state, iss: server.url });
      expect(back.searchParams.has('code')).toBe(false);

      // Signed in but not consented: the next authorization asks again.
      await page.goto(start(client, 'openid').url);
      await expect(page.getByRole('button', { name: 'Allow' }).count()).resolves.toBe(1);
    });
  });

  it('consent is remembered per client for what was granted; asking for more asks again, and the union is kept', async () => {
    const user = await makeUser(server.url);
    const { id, client } = await confidentialClient();
    await withPage(browser(), async (page) => {
      await page.goto(start(client, 'openid').url);
      await signInOnPage(page, user);
      await page.getByRole('button', { name: 'Allow' }).click();
      await landedAt(page, callback.url);
      await page.goto(start(client, 'openid').url);
      await landedAt(page, callback.url);
      await page.goto(start(client, 'openid email').url);
      await expect(page.getByRole('button', { name: 'Allow' }).count()).resolves.toBe(1);
      await page.getByRole('button', { name: 'Allow' }).click();
      await landedAt(page, callback.url);
      await page.goto(start(client, 'email').url);
      await landedAt(page, callback.url);
    });
    const row = await server.services.handle.db.selectFrom('consents').select(['scopes', 'resources']).where('client_id', '=', id).executeTakeFirstOrThrow();
    expect(row).toEqual({ scopes: ['email', 'openid'], resources: [] });
  });

  it('a tampered CSRF token: the form is refused with 403 and no code is issued', async () => {
    const user = await makeUser(server.url);
    const { client } = await confidentialClient();
    await withPage(browser(), async (page) => {
      await page.goto(start(client, 'openid').url);
      // Edit the DOM the way an attacker's page could not: the browser still submits the form as it now is.
      await page.locator('input[name="csrf_token"]').evaluate((input) => {
        (input as unknown as { value: string }).value = 'A'.repeat(43);
      });
      const [answer] = await Promise.all([
        page.waitForResponse((res) => res.url().endsWith('/oauth/authorize') && res.request().method() === 'POST'),
        signInOnPage(page, user),
      ]);
      expect(answer.status()).toBe(403);
      await expect(page.locator('main').textContent()).resolves.toContain('could not be verified');
    });
    expect(callback.hits.some((hit) => hit.searchParams.has('code') && hit.searchParams.get('state') === null)).toBe(false);
  });

  it('works without JavaScript: sign-in, consent and the code', async () => {
    const user = await makeUser(server.url);
    const { client } = await confidentialClient();
    await withPage(
      browser(),
      async (page) => {
        const flow = start(client, 'openid email');
        await page.goto(flow.url);
        await signInOnPage(page, user);
        await page.getByRole('button', { name: 'Allow' }).click();
        const back = await landedAt(page, callback.url);
        const tokens = await client.callback(callback.url, client.callbackParams(back.href), flow.checks);
        expect(tokens.claims().sub).toBe(user.id);
      },
      { javaScriptEnabled: false },
    );
  });

  it('a first-party client is never asked for consent', async () => {
    const user = await makeUser(server.url);
    const { client } = await confidentialClient({ firstParty: true });
    await withPage(browser(), async (page) => {
      const flow = start(client, 'openid email offline_access');
      await page.goto(flow.url);
      await signInOnPage(page, user);
      const back = await landedAt(page, callback.url);
      const tokens = await client.callback(callback.url, client.callbackParams(back.href), flow.checks);
      expect(tokens.refresh_token).toBeDefined();
    });
  });

  it('pages: headers, labels, language, viewport, stylesheet', async () => {
    const { id } = await confidentialClient();
    const res = await request(server.url).get(`/oauth/authorize?client_id=${id}&response_type=code&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256&scope=openid`);
    expect(res.status).toBe(200);
    expect(res.headers['content-security-policy']).toBe(
      `default-src 'none'; style-src 'self'; form-action 'self' ${new URL(callback.url).origin}; frame-ancestors 'none'; base-uri 'none'`,
    );
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.text).toMatch(/<html lang="en">/);
    expect(res.text).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    expect(res.text).toMatch(/<label for="email">Email<\/label>\s*<input id="email" name="email"/);
    expect(res.text).toMatch(/<label for="password">Password<\/label>\s*<input id="password" name="password" type="password"/);
    expect(res.text).toMatch(/<input type="hidden" name="csrf_token" value="[A-Za-z0-9_-]{43}">/);
    expect(res.text).not.toMatch(/<script/i);
    const css = await request(server.url).get('/assets/idp.css');
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
  });
});
