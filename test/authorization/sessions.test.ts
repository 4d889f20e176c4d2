import { decodeJwt } from 'jose';
import type { Page } from 'playwright-core';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { useBrowser, withPage } from '../helpers/browser';
import { FakeClock, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic } from '../oauth/helpers';
import { authorizePath, landedAt, makeCodeClient, makeUser, pkce, signInOnPage, startCallback, startIssuer, type TestUser } from './support';

const FORM = 'application/x-www-form-urlencoded';

/**
 * docs/sign-in.md "Sessions and cookies": the browser session the hosted pages keep (a cookie naming a
 * server-side row), its idle and absolute lifetimes, and what forces a new sign-in (prompt=login,
 * max_age). The server's clock is a fake one, moved instead of waited for; a real browser signs in.
 */
describe('sign-in for applications: the browser session', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer & { env: Record<string, string> };
  let callback: Awaited<ReturnType<typeof startCallback>>;
  let app: { id: string; secret?: string };
  const clock = new FakeClock(new Date());
  const browser = useBrowser();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle, { IDP_SESSION_TTL: '2h', IDP_SESSION_IDLE_TTL: '30m' }, clock.now);
    callback = await startCallback();
    app = await makeCodeClient(server.services, { name: 'First Party', redirectUris: [callback.url], firstParty: true });
  });
  afterAll(async () => {
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  /** Opens an authorization request; resolves to `signin` when the sign-in page is shown, or the code when the browser came straight back. */
  async function authorize(page: Page, extra: Record<string, string> = {}): Promise<{ shown: 'signin' } | { shown: 'code'; code: string; verifier: string }> {
    const { verifier, challenge } = pkce();
    await page.goto(`${server.url}${authorizePath({ client_id: app.id, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', ...extra })}`);
    if (page.url().startsWith(callback.url)) return { shown: 'code', code: new URL(page.url()).searchParams.get('code') as string, verifier };
    await expect(page.getByLabel('Password').count()).resolves.toBe(1);
    return { shown: 'signin' };
  }
  async function authTime(code: string, verifier: string): Promise<number> {
    const res = await request(server.url)
      .post('/oauth/token')
      .set('Content-Type', FORM)
      .set('Authorization', basic(app.id, app.secret as string))
      .send(new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier }).toString());
    expect(res.status).toBe(200);
    return decodeJwt(res.body.id_token).auth_time as number;
  }
  async function signIn(page: Page, user: TestUser, extra: Record<string, string> = {}) {
    const { verifier, challenge } = pkce();
    await page.goto(`${server.url}${authorizePath({ client_id: app.id, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', ...extra })}`);
    await signInOnPage(page, user);
    const back = await landedAt(page, callback.url);
    return { code: back.searchParams.get('code') as string, verifier };
  }

  it('the cookie: HttpOnly, SameSite=Lax, Path=/, no __Host- or Secure on a plain-http issuer; a new one at each sign-in', async () => {
    const user = await makeUser(server.url);
    await withPage(browser(), async (page) => {
      await signIn(page, user);
      const cookies = await page.context().cookies(server.url);
      const session = cookies.find((c) => c.name === 'idp_session');
      expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/', secure: false });
      expect(session?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Only its hash is stored.
      const rows = await server.services.handle.db.selectFrom('browser_sessions').select('token_hash').execute();
      expect(JSON.stringify(rows)).not.toContain(session?.value);
      await signIn(page, user, { prompt: 'login' });
      const again = (await page.context().cookies(server.url)).find((c) => c.name === 'idp_session');
      expect(again?.value).not.toBe(session?.value);
    });
  });

  it('skips the page while the session lives; prompt=login and max_age ask again, and auth_time moves with the sign-in', async () => {
    const user = await makeUser(server.url);
    await withPage(browser(), async (page) => {
      const first = await signIn(page, user);
      const signedInAt = await authTime(first.code, first.verifier);

      clock.advance(10 * 60_000);
      const silent = await authorize(page);
      expect(silent.shown).toBe('code');
      if (silent.shown === 'code') expect(await authTime(silent.code, silent.verifier)).toBe(signedInAt);
      const within = await authorize(page, { max_age: '3600' });
      expect(within.shown).toBe('code');

      expect((await authorize(page, { max_age: '300' })).shown).toBe('signin');
      expect((await authorize(page, { prompt: 'login' })).shown).toBe('signin');
      const fresh = await signIn(page, user, { prompt: 'login' });
      expect(await authTime(fresh.code, fresh.verifier)).toBe(signedInAt + 600);
    });
  });

  it('ends after IDP_SESSION_IDLE_TTL unused, and after IDP_SESSION_TTL however busy', async () => {
    const user = await makeUser(server.url);
    await withPage(browser(), async (page) => {
      await signIn(page, user);
      clock.advance(31 * 60_000);
      expect((await authorize(page)).shown).toBe('signin');

      await signIn(page, user);
      // Used every 20 minutes: never idle, but over after 2 hours.
      for (let minutes = 20; minutes < 120; minutes += 20) {
        clock.advance(20 * 60_000);
        expect((await authorize(page)).shown).toBe('code');
      }
      clock.advance(20 * 60_000);
      expect((await authorize(page)).shown).toBe('signin');
    });
  });

  it('prompt=none answers login_required once the session is over, a code while it lives', async () => {
    const user = await makeUser(server.url);
    await withPage(browser(), async (page) => {
      await signIn(page, user);
      const { challenge } = pkce();
      const params = { client_id: app.id, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256', prompt: 'none', state: 's' };
      await page.goto(`${server.url}${authorizePath(params)}`);
      expect(new URL(page.url()).searchParams.get('code')).toEqual(expect.any(String));
      clock.advance(31 * 60_000);
      await page.goto(`${server.url}${authorizePath(params)}`);
      expect(Object.fromEntries(new URL(page.url()).searchParams)).toMatchObject({ error: 'login_required', state: 's', iss: server.url });
    });
  });

  it('an https issuer: __Host- prefixed and Secure cookies', async () => {
    const secure = await startIssuer(database, handle, { IDP_ISSUER: 'https://idp.example', IDP_MEK: server.env.IDP_MEK as string });
    try {
      const res = await request(secure.url).get(authorizePath({ client_id: app.id, response_type: 'code', scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256' }));
      expect(res.status).toBe(200);
      const cookies = res.headers['set-cookie'] as unknown as string[];
      expect(cookies).toEqual([expect.stringMatching(/^__Host-idp_browser=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/)]);
    } finally {
      await secure.close();
    }
  });
});
