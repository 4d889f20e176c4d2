import type { Page } from 'playwright-core';
import type { DatabaseHandle } from '../../src/db';
import { useBrowser, withPage } from '../helpers/browser';
import type { TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { authorizePath, landedAt, makeCodeClient, makeUser, pkce, signInOnPage, startCallback, startIssuer, type TestUser } from './support';

/**
 * docs/security.md "Abuse limits and the threat model" through the hosted sign-in page: the page counts failures against the same
 * limits as /auth/v1/token and answers a wrong password and an unknown email alike. An attacker's
 * address is blocked for the victim's email (the correct password included); the victim, from
 * another address, still signs in. Each browser sends its own X-Forwarded-For (IDP_TRUST_PROXY
 * trusts the loopback proxy, here the test itself).
 */
describe('sign-in for applications: sign-in limits through the pages', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let callback: Awaited<ReturnType<typeof startCallback>>;
  let app: { id: string };
  const browser = useBrowser();
  const ATTACKER = '203.0.113.9';
  const VICTIM = '198.51.100.4';

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle, { IDP_TRUST_PROXY: 'loopback', IDP_SIGNIN_FAILURES_PER_EMAIL_IP: '3' });
    callback = await startCallback();
    app = await makeCodeClient(server.services, { redirectUris: [callback.url], firstParty: true });
  });
  afterAll(async () => {
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  const from = (address: string) => ({ extraHTTPHeaders: { 'X-Forwarded-For': address } });
  const open = (page: Page) => page.goto(`${server.url}${authorizePath({ client_id: app.id, response_type: 'code', scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256' })}`);
  /** Submits the sign-in form; the status of the answer and the error the page shows. */
  async function attempt(page: Page, credentials: { email: string; password: string }): Promise<{ status: number; error: string | null; retryAfter?: string }> {
    const [answer] = await Promise.all([page.waitForResponse((res) => res.url().endsWith('/oauth/authorize') && res.request().method() === 'POST'), signInOnPage(page, credentials)]);
    const error = (await page.locator('[role=alert]').count()) > 0 ? await page.locator('[role=alert]').textContent() : null;
    return { status: answer.status(), error, retryAfter: answer.headers()['retry-after'] };
  }

  it('wrong password and unknown email answer alike; past the limit the pair is blocked, the victim elsewhere is not', async () => {
    const victim: TestUser = await makeUser(server.url, 'victim');
    await withPage(
      browser(),
      async (page) => {
        await open(page);
        const unknown = await attempt(page, { email: 'nobody-here@example.com', password: 'wrong password 1' });
        const wrong = await attempt(page, { email: victim.email, password: 'wrong password 1' });
        expect(wrong).toEqual(unknown);
        expect(wrong).toMatchObject({ status: 401, error: 'The email address or the password is not right.' });
        // The form keeps what was typed in the email field, never the password.
        await expect(page.getByLabel('Email').inputValue()).resolves.toBe(victim.email);
        await expect(page.getByLabel('Password').inputValue()).resolves.toBe('');

        await attempt(page, { email: victim.email, password: 'wrong password 2' });
        await attempt(page, { email: victim.email, password: 'wrong password 3' });
        const blocked = await attempt(page, victim);
        expect(blocked).toMatchObject({ status: 429, error: expect.stringContaining('Too many failed sign-ins'), retryAfter: expect.stringMatching(/^\d+$/) });
      },
      from(ATTACKER),
    );

    // The victim, from their own address, signs in at once.
    await withPage(
      browser(),
      async (page) => {
        await open(page);
        await signInOnPage(page, victim);
        expect((await landedAt(page, callback.url)).searchParams.get('code')).toEqual(expect.any(String));
      },
      from(VICTIM),
    );

    const events = await server.services.handle.db.selectFrom('audit_events').selectAll().where('action', 'in', ['signin.failed', 'signin.succeeded']).orderBy('occurred_at').execute();
    expect(events.filter((e) => e.action === 'signin.failed').map((e) => e.actor)).toEqual(Array(5).fill(`ip:${ATTACKER}`));
    expect(events.filter((e) => e.action === 'signin.succeeded')).toEqual([expect.objectContaining({ actor: `user:${victim.id}`, target: victim.id })]);
    expect(events.find((e) => e.action === 'signin.succeeded')?.details).toMatchObject({ ip: VICTIM, client_id: app.id });
    // No password in the audit log.
    expect(JSON.stringify(events)).not.toMatch(/wrong password|correct horse/);
  });
});
