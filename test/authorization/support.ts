import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import request from 'supertest';
import { clientPolicy, createClient, createPublicClient, type NewClient } from '../../src/clients/service';
import type { Composition } from '../../src/compose';
import { loadConfig } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { Resources } from '../../src/resources';
import { startTestServer, testMek, type TestServer } from '../helpers/context';
import type { TestDatabase } from '../helpers/database';
import { freshEmail, signUp } from '../users/support';
import { freePort } from '../oauth/private-key-jwt-support';

export const PASSWORD = 'correct horse battery';

/** The environment of one test file's servers; the issuer is http://127.0.0.1:<port>. */
export function issuerEnv(database: TestDatabase, port: number, extra: Record<string, string> = {}): Record<string, string> {
  return { NODE_ENV: 'test', IDP_LOG_LEVEL: 'silent', IDP_ISSUER: `http://127.0.0.1:${port}`, IDP_MEK: testMek(), ...database.env, ...extra };
}

/** The real service listening at its issuer URL. */
export async function startIssuer(
  database: TestDatabase,
  handle: DatabaseHandle,
  extra: Record<string, string> = {},
  now?: () => Date,
): Promise<TestServer & { env: Record<string, string> }> {
  const port = await freePort();
  const env = issuerEnv(database, port, extra);
  const server = await startTestServer(loadConfig(env), handle, now, { port });
  return Object.assign(server, { env });
}

/** A client of the authorization-code flow, made through the clients service the CLI and admin API use. */
export async function makeCodeClient(
  services: Composition,
  input: Partial<NewClient> & { redirectUris: string[]; public?: boolean },
): Promise<{ id: string; secret?: string }> {
  const fields: NewClient = {
    name: input.name ?? 'Example App',
    scopes: input.scopes ?? ['read'],
    audiences: input.audiences,
    redirectUris: input.redirectUris,
    postLogoutRedirectUris: input.postLogoutRedirectUris,
    firstParty: input.firstParty,
    grantTypes: input.grantTypes,
    tenantId: input.tenantId,
    registeredBy: input.registeredBy,
  };
  const policy = clientPolicy(services.config);
  const change = { actor: 'test', now: services.now() };
  if (input.public) return { id: (await createPublicClient(services.handle.db, fields, policy, change)).id };
  const { client, secret } = await createClient(services.handle.db, fields, policy, change);
  return { id: client.id, secret };
}

/** A registered resource (docs/oauth.md "Resources", through the service the CLI and the admin API use. */
export async function registerResource(services: Composition, url: string, name: string, scopes: string[]): Promise<void> {
  await new Resources({ db: services.handle.db, now: services.now, policy: { production: false } }).create({ url, name, scopes }, { actor: 'test' });
}

export interface TestUser {
  id: string;
  email: string;
  password: string;
}

export async function makeUser(url: string, tag = 'signin'): Promise<TestUser> {
  const email = freshEmail(tag);
  const signed = await signUp(url, email, PASSWORD);
  return { id: signed.user.id, email, password: PASSWORD };
}

/** An RFC 7636 verifier and its S256 challenge. */
export function pkce(): { verifier: string; challenge: string } {
  const verifier = crypto.randomBytes(32).toString('base64url');
  return { verifier, challenge: crypto.createHash('sha256').update(verifier).digest('base64url') };
}

/** /oauth/authorize?… with the given parameters (undefined ones left out; arrays repeated). */
export function authorizePath(params: Record<string, string | string[] | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) search.append(name, v);
  }
  return `/oauth/authorize?${search.toString()}`;
}

/**
 * A loopback callback (the application's redirect URI): answers every request with a small page and
 * keeps the URLs it was sent to.
 */
export async function startCallback(): Promise<{ url: string; hits: URL[]; close(): Promise<void> }> {
  const hits: URL[] = [];
  const server = http.createServer((req, res) => {
    hits.push(new URL(req.url ?? '/', `http://${req.headers.host}`));
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Back at the app</title><p>Back at the app</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/callback`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Signs in on the hosted sign-in page the way a person does: labels, typing, the button. */
export async function signInOnPage(page: Page, user: { email: string; password: string }): Promise<void> {
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** Waits until the browser is back at the application's callback; the URL it landed on. */
export async function landedAt(page: Page, callback: string): Promise<URL> {
  await page.waitForURL((url) => url.href.startsWith(callback), { timeout: 15_000 });
  return new URL(page.url());
}

/**
 * Signs a user in with a real browser and returns the browser's cookies as a Cookie header, so that
 * further authorization requests can be made with that browser session by any HTTP client.
 */
export async function browserSession(browser: Browser, issuer: string, clientId: string, redirectUri: string, user: { email: string; password: string }): Promise<string> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const { challenge } = pkce();
    await page.goto(`${issuer}${authorizePath({ client_id: clientId, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })}`);
    await signInOnPage(page, user);
    await landedAt(page, redirectUri);
    return (await context.cookies(issuer)).map((c) => `${c.name}=${c.value}`).join('; ');
  } finally {
    await context.close();
  }
}

/** The Set-Cookie headers of a response as `name=value` pairs for a Cookie header. */
export function cookiesOf(res: request.Response): string {
  const set = res.headers['set-cookie'] as unknown as string[] | undefined;
  return (set ?? []).map((c) => c.split(';')[0]).join('; ');
}

/** The hidden members of the page's form (interaction, csrf_token). */
export function formState(html: string): { interaction: string; csrf_token: string } {
  const value = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1] ?? '';
  return { interaction: value('interaction'), csrf_token: value('csrf_token') };
}
