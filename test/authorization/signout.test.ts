import { generators, Issuer, type BaseClient, type TokenSet } from 'openid-client';
import type { Page } from 'playwright-core';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { useBrowser, withPage } from '../helpers/browser';
import type { TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { signIn as apiSignIn } from '../users/support';
import { landedAt, makeCodeClient, makeUser, signInOnPage, startCallback, startIssuer, type TestUser } from './support';

/**
 * docs/sign-in.md "Signing out" and "Consent": OpenID Connect RP-Initiated Logout with openid-client's
 * end-session URL in a real browser (confirmation unless the id_token_hint names this browser's
 * session; the flow's sessions end with it), and /auth/v1/grants: a user lists and withdraws a
 * remembered consent, and the application's refresh token ends with it.
 */
describe('sign-in for applications: signing out and withdrawing consent', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let callback: Awaited<ReturnType<typeof startCallback>>;
  let client: BaseClient;
  let clientId: string;
  let signedOut: string;
  const browser = useBrowser();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle);
    callback = await startCallback();
    signedOut = callback.url.replace('/callback', '/signed-out');
    const made = await makeCodeClient(server.services, { name: 'Notes', redirectUris: [callback.url], postLogoutRedirectUris: [signedOut] });
    clientId = made.id;
    const issuer = await Issuer.discover(server.url);
    client = new issuer.Client({ client_id: made.id, client_secret: made.secret, redirect_uris: [callback.url], post_logout_redirect_uris: [signedOut], response_types: ['code'] });
  });
  afterAll(async () => {
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  /** The whole flow in `page`: sign-in when asked, consent when asked; the tokens. */
  async function tokens(page: Page, user: TestUser): Promise<TokenSet> {
    const verifier = generators.codeVerifier();
    const state = generators.state();
    const nonce = generators.nonce();
    await page.goto(client.authorizationUrl({ scope: 'openid email offline_access', code_challenge: generators.codeChallenge(verifier), code_challenge_method: 'S256', state, nonce }));
    if ((await page.getByLabel('Password').count()) > 0) await signInOnPage(page, user);
    if (!page.url().startsWith(callback.url) && (await page.getByRole('button', { name: 'Allow' }).count()) > 0) await page.getByRole('button', { name: 'Allow' }).click();
    const back = await landedAt(page, callback.url);
    return client.callback(callback.url, client.callbackParams(back.href), { code_verifier: verifier, state, nonce, response_type: 'code' });
  }
  const refreshFails = async (set: TokenSet) => expect(client.refresh(set.refresh_token as string)).rejects.toMatchObject({ error: 'invalid_grant' });
  const userinfoStatus = async (set: TokenSet) => (await request(server.url).get('/oauth/userinfo').set('Authorization', `Bearer ${set.access_token}`)).status;
  const signInShown = async (page: Page) => {
    await page.goto(client.authorizationUrl({ scope: 'openid', code_challenge: generators.codeChallenge(generators.codeVerifier()), code_challenge_method: 'S256' }));
    return (await page.getByLabel('Password').count()) === 1;
  };

  it('with an id_token_hint of this browser session: signed out at once, back at the registered URI with state; its tokens end', async () => {
    const user = await makeUser(server.url);
    await withPage(browser(), async (page) => {
      const set = await tokens(page, user);
      await page.goto(client.endSessionUrl({ id_token_hint: set.id_token, post_logout_redirect_uri: signedOut, state: 'bye-1' }));
      const back = await landedAt(page, signedOut);
      expect(back.searchParams.get('state')).toBe('bye-1');
      await refreshFails(set);
      expect(await userinfoStatus(set)).toBe(401);
      expect(await signInShown(page)).toBe(true);
    });
  });

  it('without a hint the user confirms (decision=sign-out); "stay" keeps the session', async () => {
    const user = await makeUser(server.url);
    await withPage(browser(), async (page) => {
      const set = await tokens(page, user);
      const logout = `${server.url}/oauth/logout?client_id=${clientId}&post_logout_redirect_uri=${encodeURIComponent(signedOut)}&state=s2`;
      await page.goto(logout);
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Sign out?');
      await expect(page.locator('button[name="decision"][value="sign-out"]').count()).resolves.toBe(1);
      await page.getByRole('button', { name: 'Stay signed in' }).click();
      await landedAt(page, signedOut);
      expect(await userinfoStatus(set)).toBe(200);

      await page.goto(logout);
      await page.getByRole('button', { name: 'Sign out', exact: true }).click();
      expect((await landedAt(page, signedOut)).searchParams.get('state')).toBe('s2');
      await refreshFails(set);
      expect(await signInShown(page)).toBe(true);
    });
  });

  it('a hint naming another browser session asks first; a post_logout_redirect_uri not registered is an error page, never followed', async () => {
    const user = await makeUser(server.url);
    let otherHint = '';
    await withPage(browser(), async (page) => {
      otherHint = (await tokens(page, user)).id_token as string;
    });
    await withPage(browser(), async (page) => {
      await tokens(page, user);
      await page.goto(client.endSessionUrl({ id_token_hint: otherHint, post_logout_redirect_uri: signedOut }));
      await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toBe('Sign out?');
    });
    const refused = await request(server.url).get(`/oauth/logout?client_id=${clientId}&post_logout_redirect_uri=${encodeURIComponent('https://attacker.example/')}`);
    expect(refused.status).toBe(400);
    expect(refused.headers.location).toBeUndefined();
    expect(refused.headers['x-frame-options']).toBe('DENY');
    const forged = await request(server.url).get(`/oauth/logout?id_token_hint=${otherHint.slice(0, -4)}AAAA&post_logout_redirect_uri=${encodeURIComponent(signedOut)}`);
    expect(forged.status).toBe(400);
  });

  it('/auth/v1/grants lists the consent; withdrawing it ends the refresh token and asks for consent again (audited)', async () => {
    const user = await makeUser(server.url);
    await withPage(browser(), async (page) => {
      const set = await tokens(page, user);
      const session = await apiSignIn(server.url, user.email, user.password);
      const auth = `Bearer ${session.access_token}`;
      const listed = await request(server.url).get('/auth/v1/grants').set('Authorization', auth);
      expect(listed.status).toBe(200);
      expect(listed.body.grants).toEqual([
        { client_id: clientId, client_name: 'Notes', scopes: ['email', 'offline_access', 'openid'], resources: [], granted_at: expect.any(String), updated_at: expect.any(String) },
      ]);
      // The application's own token is not the user's key to /auth/v1.
      expect((await request(server.url).get('/auth/v1/grants').set('Authorization', `Bearer ${set.access_token}`)).status).toBe(401);

      expect((await request(server.url).delete(`/auth/v1/grants/${clientId}`).set('Authorization', auth)).status).toBe(204);
      expect((await request(server.url).get('/auth/v1/grants').set('Authorization', auth)).body.grants).toEqual([]);
      await refreshFails(set);
      expect(await userinfoStatus(set)).toBe(401);
      // Still signed in to the pages, but asked again.
      await page.goto(client.authorizationUrl({ scope: 'openid', code_challenge: generators.codeChallenge(generators.codeVerifier()), code_challenge_method: 'S256' }));
      await expect(page.getByRole('button', { name: 'Allow' }).count()).resolves.toBe(1);
    });
    const events = await server.services.handle.db.selectFrom('audit_events').select(['action', 'actor', 'target']).where('action', 'in', ['consent.granted', 'consent.withdrawn']).where('actor', '=', `user:${user.id}`).orderBy('occurred_at').execute();
    expect(events).toEqual([
      { action: 'consent.granted', actor: `user:${user.id}`, target: clientId },
      { action: 'consent.withdrawn', actor: `user:${user.id}`, target: clientId },
    ]);
  });
});
