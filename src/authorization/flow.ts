import crypto from 'node:crypto';
import type { Kysely } from 'kysely';
import { recordAudit } from '../audit';
import type { Database, UserRow } from '../db/schema';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import { consentPage, errorPage, messagePage, signInPage, signOutPage, type ConsentItem, type Html } from '../pages';
import { readCredentials, type Credentials } from '../users/credentials';
import { cookieNames, looksLikeToken, randomToken, sameHash, setCookie, tokenHash, type CookieNames } from './cookies';
import { PageError, RedirectError } from './errors';
import * as repo from './repository';
import { readAuthorizationRequest, type AuthorizationClient, type AuthorizationRequest, type RequestLookups, type RequestParams } from './request';

export const AUTHORIZE_PATH = '/oauth/authorize';

/** How long a page shown (sign-in, consent, sign-out) may take to come back. */
const INTERACTION_TTL_MS = 30 * 60_000;
/** The binding cookie outlives interactions; a new one is set whenever a page is shown. */
const BROWSER_COOKIE_MAX_AGE_S = 24 * 3600;

/** Where a request came from, for limits, the audit log and the cookies it carries. */
export interface BrowserRequest {
  cookies: ReadonlyMap<string, string>;
  ip: string;
  requestId: string;
}

/** What the HTTP layer sends: a redirect (302 for GET, 303 after a form), or a page. */
export type Outcome =
  | { kind: 'redirect'; location: string; cookies: string[] }
  | { kind: 'page'; status: number; page: { title: string; body: Html }; formTargets: string[]; cookies: string[]; headers?: Record<string, string> };

/** The users module as the flow uses it (UserAccounts has these members). */
export interface FlowUsers {
  /** The /auth/v1 sign-in check with its limits; a ServiceError when refused. */
  verifyCredentials(credentials: Credentials, origin: { ip: string; requestId: string }): Promise<UserRow>;
}

export interface FlowSettings {
  issuer: string;
  brandName: string;
  authCodeTtlMs: number;
  sessionTtlMs: number;
  sessionIdleTtlMs: number;
}

export interface FlowDeps {
  db: Kysely<Database>;
  logger: Logger;
  now(): Date;
  users: FlowUsers;
  lookups: RequestLookups;
  settings: FlowSettings;
  /** A code counts as a use of its client (what the sweep of unused dynamically registered clients reads). */
  recordClientUse?(client: Pick<AuthorizationClient, 'id' | 'registeredBy'>): void;
}

/** A browser session usable now, with its user. */
export interface LiveBrowserSession {
  id: string;
  user: UserRow;
  authTime: Date;
}

/** The scope descriptions of the consent page. */
const SCOPE_TEXT: Record<string, string> = {
  openid: 'Know who you are (your account id)',
  email: 'See your email address',
  offline_access: 'Keep access while you are not using it',
};

/**
 * The authorization endpoint and its hosted pages (docs/sign-in.md "Sign-in for applications": reads the
 * request, consults the browser session and the remembered consent, shows the sign-in or consent
 * page when needed (the request kept server-side in an interaction row bound to this browser and
 * to the form's CSRF token), and answers the client with a code or an error.
 */
export class AuthorizationFlow {
  readonly cookies: CookieNames;

  constructor(private readonly deps: FlowDeps) {
    this.cookies = cookieNames(deps.settings.issuer);
  }

  // ---- GET|POST /oauth/authorize with an authorization request

  async authorize(params: RequestParams, browser: BrowserRequest): Promise<Outcome> {
    let read: { client: AuthorizationClient; request: AuthorizationRequest };
    try {
      read = await readAuthorizationRequest(params, this.deps.lookups, { ip: browser.ip, requestId: browser.requestId });
    } catch (error) {
      if (error instanceof RedirectError && error.target) return this.redirectTo(error.target.redirectUri, error.target.state, error);
      throw error;
    }
    const { client, request } = read;
    try {
      const session = await this.currentSession(browser);
      return await this.proceed(client, request, browser, session, { signedInNow: false, consentedNow: false });
    } catch (error) {
      if (error instanceof RedirectError) return this.errorRedirect(request, error);
      throw error;
    }
  }

  private redirectTo(redirectUri: string, state: string | undefined, error: RedirectError): Outcome {
    return { kind: 'redirect', location: this.responseUri(redirectUri, { error: error.error, error_description: error.description, state }), cookies: [] };
  }

  private errorRedirect(request: AuthorizationRequest, error: RedirectError): Outcome {
    return this.redirectTo(request.redirectUri, request.state, error);
  }

  /** RFC 9207: every answer names the issuer. */
  private responseUri(redirectUri: string, params: Record<string, string | undefined>): string {
    const url = new URL(redirectUri);
    for (const [name, value] of Object.entries({ ...params, iss: this.deps.settings.issuer })) if (value !== undefined) url.searchParams.append(name, value);
    return url.href;
  }

  /**
   * The next step of an authorization: the sign-in page, the consent page, or the code. `signedInNow`
   * and `consentedNow` say what this interaction has already done (prompt=login and prompt=consent
   * are then satisfied).
   */
  private async proceed(
    client: AuthorizationClient,
    request: AuthorizationRequest,
    browser: BrowserRequest,
    session: LiveBrowserSession | undefined,
    done: { signedInNow: boolean; consentedNow: boolean; interactionId?: string; cookies?: string[] },
  ): Promise<Outcome> {
    const now = this.deps.now();
    const cookies = done.cookies ?? [];
    const tooOld = request.maxAge !== undefined && session !== undefined && now.getTime() - session.authTime.getTime() > request.maxAge * 1000;
    const signInNeeded = session === undefined || (!done.signedInNow && (request.prompt.includes('login') || tooOld));
    if (signInNeeded) {
      if (request.prompt.includes('none')) throw new RedirectError('login_required', session ? 'the sign-in is older than max_age' : 'the user is not signed in');
      const notice = session ? 'Please sign in again to continue.' : undefined;
      return this.showPage(request, browser, done.interactionId, cookies, (form) => ({
        status: 200,
        page: signInPage({ clientName: client.name, form, email: request.loginHint, notice }),
      }));
    }
    const { user } = session;
    // Tenants are a boundary: a tenant's application is for that tenant's users only.
    if (client.tenantId !== null && user.tenant_id !== client.tenantId) throw new RedirectError('access_denied', 'this application belongs to another tenant than the account');
    if (!done.consentedNow && !client.firstParty) {
      const consent = await repo.findConsent(this.deps.db, user.id, client.id);
      const covered = consent !== undefined && request.scopes.every((s) => consent.scopes.includes(s)) && request.resources.every((r) => consent.resources.includes(r));
      if (!covered || request.prompt.includes('consent')) {
        if (request.prompt.includes('none')) throw new RedirectError('consent_required', 'the user has not granted this application what it asks for');
        const page = await this.consentPage(client, request, user);
        return this.showPage(request, browser, done.interactionId, cookies, (form) => ({ status: 200, page: consentPage({ ...page, form }) }));
      }
    }
    // An interaction gives one code: of two submissions of the same form, the second finds it gone.
    if (done.interactionId && !(await repo.deleteInteraction(this.deps.db, done.interactionId))) {
      throw new PageError('This page was already used. Go back to the application and start again.');
    }
    const code = await this.issueCode(client, request, session, now);
    return { kind: 'redirect', location: this.responseUri(request.redirectUri, { code, state: request.state }), cookies };
  }

  private async consentPage(client: AuthorizationClient, request: AuthorizationRequest, user: UserRow) {
    const resources = await Promise.all(request.resources.map((url) => this.deps.lookups.resource(url)));
    const scopeOf = (scope: string): ConsentItem => {
      if (SCOPE_TEXT[scope]) return { text: SCOPE_TEXT[scope] as string, code: scope };
      const owners = resources.filter((r) => r?.scopes.includes(scope)).map((r) => r?.name);
      return { text: owners.length > 0 ? `${owners.join(', ')}:` : 'Permission', code: scope };
    };
    return {
      clientName: client.name,
      redirectHost: redirectHost(request.redirectUri),
      scopes: request.scopes.map(scopeOf),
      resources: request.resources.map((url, i) => ({ text: resources[i]?.name ?? url, code: url })),
      ...(client.registeredBy !== 'operator' && { unvetted: client.registeredBy }),
      // Its id is the URL of its document: the host (with its port) is who vouches for the name above.
      ...(client.registeredBy === 'metadata_document' && { documentHost: new URL(client.id).host }),
      userEmail: user.email,
    };
  }

  /** Shows a page of the interaction (created now when there is none yet), with a fresh CSRF token. */
  private async showPage(
    request: AuthorizationRequest,
    browser: BrowserRequest,
    interactionId: string | undefined,
    cookies: string[],
    build: (form: { action: string; interaction: string; csrfToken: string }) => { status: number; page: { title: string; body: Html }; headers?: Record<string, string> },
  ): Promise<Outcome> {
    const { id, csrfToken, cookies: bindingCookies } = await this.interaction('authorize', { request }, browser, interactionId);
    const shown = build({ action: AUTHORIZE_PATH, interaction: id, csrfToken });
    return { kind: 'page', ...shown, formTargets: [request.redirectUri], cookies: [...cookies, ...bindingCookies] };
  }

  /**
   * The interaction row behind a page: created (bound to this browser's binding cookie, which is set
   * when absent), or given a fresh CSRF token when the page is shown again.
   */
  private async interaction(
    kind: 'authorize' | 'logout',
    state: Record<string, unknown>,
    browser: BrowserRequest,
    existing: string | undefined,
  ): Promise<{ id: string; csrfToken: string; cookies: string[] }> {
    const csrfToken = randomToken();
    if (existing) {
      await repo.replaceInteractionCsrf(this.deps.db, existing, tokenHash(csrfToken));
      return { id: existing, csrfToken, cookies: [] };
    }
    const present = browser.cookies.get(this.cookies.browser);
    const binding = looksLikeToken(present) ? present : randomToken();
    const now = this.deps.now();
    const id = crypto.randomBytes(16).toString('base64url');
    await repo.insertInteraction(this.deps.db, {
      id,
      kind,
      binding_hash: tokenHash(binding),
      csrf_hash: tokenHash(csrfToken),
      request: state,
      created_at: now,
      expires_at: new Date(now.getTime() + INTERACTION_TTL_MS),
    });
    return { id, csrfToken, cookies: [setCookie(this.cookies.browser, binding, { secure: this.cookies.secure, maxAgeSeconds: BROWSER_COOKIE_MAX_AGE_S })] };
  }

  /**
   * The interaction a form answers, when the form came from this browser with the right CSRF token;
   * a PageError otherwise (403 for a wrong token or browser: docs/sign-in.md "Hosted pages".
   */
  private async answeredInteraction(form: RequestParams, browser: BrowserRequest, kind: 'authorize' | 'logout'): Promise<repo.InteractionRow> {
    const id = form.get('interaction');
    const row = id !== undefined && /^[A-Za-z0-9_-]{22}$/.test(id) ? await repo.findInteraction(this.deps.db, id) : undefined;
    if (!row || row.kind !== kind || row.expires_at <= this.deps.now()) {
      throw new PageError('This page has expired or was already used. Go back to the application and start again.');
    }
    const csrf = form.get('csrf_token');
    const binding = browser.cookies.get(this.cookies.browser);
    const csrfOk = looksLikeToken(csrf) && sameHash(tokenHash(csrf), row.csrf_hash);
    const browserOk = looksLikeToken(binding) && sameHash(tokenHash(binding), row.binding_hash);
    if (!csrfOk || !browserOk) {
      throw new PageError('This form could not be verified (its security token is missing or wrong). Reload the application and try again.', 403, !csrfOk ? 'wrong csrf_token' : 'wrong browser binding');
    }
    return row;
  }

  // ---- POST /oauth/authorize from the pages

  /** A form of the sign-in or consent page. */
  async submit(form: RequestParams, browser: BrowserRequest): Promise<Outcome> {
    const row = await this.answeredInteraction(form, browser, 'authorize');
    const request = (row.request as { request: AuthorizationRequest }).request;
    const client = await this.deps.lookups.client(request.clientId, { ip: browser.ip, requestId: browser.requestId });
    if (!client || client.disabledAt !== null || client.tenantDisabled) throw new PageError('This application has been disabled.');
    try {
      if (form.get('decision') !== undefined) return await this.consentAnswer(form, browser, row, client, request);
      return await this.signInAnswer(form, browser, row, client, request);
    } catch (error) {
      if (error instanceof RedirectError) {
        await repo.deleteInteraction(this.deps.db, row.id);
        return this.errorRedirect(request, error);
      }
      throw error;
    }
  }

  private async signInAnswer(form: RequestParams, browser: BrowserRequest, row: repo.InteractionRow, client: AuthorizationClient, request: AuthorizationRequest): Promise<Outcome> {
    const typedEmail = form.get('email') ?? '';
    const again = (status: number, error: string, headers?: Record<string, string>) =>
      this.showPage(request, browser, row.id, [], (f) => ({ status, headers, page: signInPage({ clientName: client.name, form: f, email: typedEmail.slice(0, 254), error }) }));
    let credentials: Credentials;
    try {
      credentials = readCredentials({ email: typedEmail, password: form.get('password') ?? '' }, 'signin');
    } catch (error) {
      if (error instanceof ServiceError) return again(400, 'Enter your email address and your password.');
      throw error;
    }
    const origin = { ip: browser.ip, requestId: browser.requestId };
    let user: UserRow;
    try {
      user = await this.deps.users.verifyCredentials(credentials, origin);
    } catch (error) {
      if (!(error instanceof ServiceError)) throw error;
      await this.audit({ actor: `ip:${browser.ip}`, action: 'signin.failed', target: credentials.email, requestId: browser.requestId, details: { via: 'hosted page', client_id: client.id, ip: browser.ip, reason: error.code } });
      const retryAfter = error.refusal.retryAfterSeconds !== undefined ? { 'Retry-After': String(error.refusal.retryAfterSeconds) } : undefined;
      switch (error.code) {
        case 'too_many_requests':
          return again(429, 'Too many failed sign-ins. Wait a while before trying again.', retryAfter);
        case 'forbidden':
          return again(403, error.message);
        case 'temporarily_unavailable':
          return again(503, 'Too many sign-ins are in progress. Try again in a moment.', retryAfter ?? { 'Retry-After': '1' });
        default:
          // Wrong password and unknown email alike (docs/security.md "Abuse limits and the threat model".
          return again(401, 'The email address or the password is not right.');
      }
    }
    const now = this.deps.now();
    const replaced = await this.currentSessionRow(browser);
    const session = await this.openBrowserSession(user, now, replaced);
    await this.audit({ actor: `user:${user.id}`, action: 'signin.succeeded', target: user.id, requestId: browser.requestId, details: { via: 'hosted page', client_id: client.id, ip: browser.ip } });
    const cookie = setCookie(this.cookies.session, session.token, { secure: this.cookies.secure, maxAgeSeconds: this.deps.settings.sessionTtlMs / 1000 });
    try {
      return await this.proceed(client, request, browser, session.live, { signedInNow: true, consentedNow: false, interactionId: row.id, cookies: [cookie] });
    } catch (error) {
      // Refused after the sign-in (another tenant's application): the browser keeps its new session.
      if (!(error instanceof RedirectError)) throw error;
      await repo.deleteInteraction(this.deps.db, row.id);
      return { ...this.errorRedirect(request, error), cookies: [cookie] };
    }
  }

  private async consentAnswer(form: RequestParams, browser: BrowserRequest, row: repo.InteractionRow, client: AuthorizationClient, request: AuthorizationRequest): Promise<Outcome> {
    const decision = form.get('decision');
    const session = await this.currentSession(browser);
    // The consent comes from the user this browser is signed in as now; when the request demanded a
    // fresh sign-in (prompt=login, max_age), that sign-in must have happened by then.
    const signedInHere = session !== undefined && session.authTime >= row.created_at;
    const tooOld = session !== undefined && request.maxAge !== undefined && this.deps.now().getTime() - session.authTime.getTime() > request.maxAge * 1000;
    if (!session || (!signedInHere && (request.prompt.includes('login') || tooOld))) {
      return this.proceed(client, request, browser, session, { signedInNow: false, consentedNow: false, interactionId: row.id });
    }
    if (decision === 'deny') {
      await repo.deleteInteraction(this.deps.db, row.id);
      return this.errorRedirect(request, new RedirectError('access_denied', 'the user denied the request'));
    }
    if (decision !== 'allow') throw new PageError('Choose Allow or Deny.');
    const now = this.deps.now();
    await this.deps.db.transaction().execute(async (trx) => {
      await repo.grantConsent(trx, { userId: session.user.id, clientId: client.id, scopes: request.scopes, resources: request.resources, now });
      await recordAudit(trx, {
        at: now,
        actor: `user:${session.user.id}`,
        action: 'consent.granted',
        target: client.id,
        requestId: browser.requestId,
        details: { client_id: client.id, scopes: request.scopes, resources: request.resources },
      });
    });
    return this.proceed(client, request, browser, session, { signedInNow: signedInHere, consentedNow: true, interactionId: row.id });
  }

  // ---- Browser sessions

  /** The browser session of this request's cookie when it is usable now (not ended, not past either TTL, user and tenant enabled). */
  async currentSession(browser: BrowserRequest): Promise<LiveBrowserSession | undefined> {
    const found = await this.currentSessionRow(browser);
    if (!found) return undefined;
    const { session, user, tenantDisabled } = found;
    const now = this.deps.now();
    const idleSince = now.getTime() - session.last_seen_at.getTime();
    if (session.ended_at || session.expires_at <= now || idleSince > this.deps.settings.sessionIdleTtlMs || user.disabled_at || tenantDisabled) return undefined;
    // Idle time is counted from the last use; at most one write a minute per session.
    if (idleSince > 60_000) await repo.touchBrowserSession(this.deps.db, session.id, now);
    return { id: session.id, user, authTime: session.auth_time };
  }

  private async currentSessionRow(browser: BrowserRequest) {
    const token = browser.cookies.get(this.cookies.session);
    if (!looksLikeToken(token)) return undefined;
    return repo.findBrowserSession(this.deps.db, tokenHash(token));
  }

  /** A new browser session (never the old cookie's: no fixation); the one this browser had ends. */
  private async openBrowserSession(user: UserRow, now: Date, replaced: Awaited<ReturnType<AuthorizationFlow['currentSessionRow']>>) {
    const token = randomToken();
    const id = crypto.randomUUID();
    await this.deps.db.transaction().execute(async (trx) => {
      if (replaced && !replaced.session.ended_at) await repo.endBrowserSession(trx, replaced.session.id, 'signed in again', now);
      await repo.insertBrowserSession(trx, { id, tokenHash: tokenHash(token), userId: user.id, now, authTime: now, expiresAt: new Date(now.getTime() + this.deps.settings.sessionTtlMs) });
    });
    return { token, live: { id, user, authTime: now } satisfies LiveBrowserSession };
  }

  // ---- Codes

  private async issueCode(client: AuthorizationClient, request: AuthorizationRequest, session: LiveBrowserSession, now: Date): Promise<string> {
    const code = randomToken();
    await repo.insertCode(this.deps.db, {
      codeHash: tokenHash(code),
      clientId: client.id,
      userId: session.user.id,
      redirectUri: request.redirectUri,
      redirectUriSent: request.redirectUriSent,
      codeChallenge: request.codeChallenge,
      scopes: request.scopes,
      resources: request.resources,
      nonce: request.nonce ?? null,
      authTime: session.authTime,
      browserSessionId: session.id,
      now,
      expiresAt: new Date(now.getTime() + this.deps.settings.authCodeTtlMs),
    });
    this.deps.recordClientUse?.(client);
    return code;
  }

  // ---- Pages shared with sign-out

  errorOutcome(error: PageError): Outcome {
    if (error.detail) this.deps.logger.info({ detail: error.detail, status: error.status }, `hosted page refused: ${error.message}`);
    return { kind: 'page', status: error.status, page: errorPage(error.message), formTargets: [], cookies: [] };
  }

  /** Opens an interaction for a page of another part of the flow (sign-out). */
  openInteraction(kind: 'logout', state: Record<string, unknown>, browser: BrowserRequest, existing?: string) {
    return this.interaction(kind, state, browser, existing);
  }

  answered(form: RequestParams, browser: BrowserRequest, kind: 'logout'): Promise<repo.InteractionRow> {
    return this.answeredInteraction(form, browser, kind);
  }

  signedOutPage(): { title: string; body: Html } {
    return messagePage('Signed out', 'You are signed out. You can close this page.');
  }

  signOutConfirmation(userEmail: string, clientName: string | undefined, form: { action: string; interaction: string; csrfToken: string }) {
    return signOutPage({ userEmail, clientName, form });
  }

  clearSessionCookie(): string {
    return setCookie(this.cookies.session, '', { secure: this.cookies.secure, maxAgeSeconds: 0 });
  }

  private async audit(event: { actor: string; action: string; target?: string; requestId?: string; details?: Record<string, unknown> }): Promise<void> {
    await recordAudit(this.deps.db, { ...event, at: this.deps.now() });
  }
}

/** The host (with its port when it has one) of a redirect URI, as the consent page shows it; a private-use scheme shows as `scheme:`. */
export function redirectHost(uri: string): string {
  try {
    const url = new URL(uri);
    return url.host !== '' ? url.host : url.protocol;
  } catch {
    return uri;
  }
}
