import { decodeJwt, type JWTPayload } from 'jose';
import type { Kysely } from 'kysely';
import { recordAudit } from '../audit';
import type { Database } from '../db/schema';
import type { TokenVerifier } from '../tokens/verify';
import { findSessionWithUser, revokeBrowserSessionSessions, revokeSession } from '../users/repository';
import { looksLikeToken, tokenHash } from './cookies';
import { PageError } from './errors';
import type { AuthorizationFlow, BrowserRequest, Outcome } from './flow';
import * as repo from './repository';
import type { AuthorizationClient, RequestParams } from './request';

export const LOGOUT_PATH = '/oauth/logout';

export interface SignOutDeps {
  db: Kysely<Database>;
  now(): Date;
  /** Verifies our own JWTs (the ID token of `id_token_hint`). */
  verifier: Pick<TokenVerifier, 'verify'>;
  client(id: string): Promise<AuthorizationClient | undefined>;
  flow: AuthorizationFlow;
}

/** What a sign-out request asked for, kept in the confirmation page's interaction. */
interface SignOutRequest {
  clientId?: string;
  postLogoutRedirectUri?: string;
  state?: string;
  /** The session the id_token_hint named (its `sid`). */
  hintedSessionId?: string;
}

/**
 * OpenID Connect RP-Initiated Logout 1.0 at GET|POST /oauth/logout (docs/sign-in.md "Signing out": ends
 * this browser's session and every session applications got from it, then returns to the
 * registered `post_logout_redirect_uri` with `state`, or shows that the user is signed out. Asks the
 * user first unless `id_token_hint` names a session of this very browser session (so a link on
 * another site cannot sign anyone out).
 */
export class SignOut {
  constructor(private readonly deps: SignOutDeps) {}

  async request(params: RequestParams, browser: BrowserRequest): Promise<Outcome> {
    const read = await this.read(params);
    const current = await this.cookieSession(browser);
    const hinted = read.hintedSessionId ? await findSessionWithUser(this.deps.db, read.hintedSessionId) : undefined;
    if (!current || (hinted && hinted.session.browser_session_id === current.session.id)) {
      await this.end(current?.session.id, read.hintedSessionId, current ? `user:${current.user.id}` : `client:${read.clientId ?? 'unknown'}`, browser);
      return this.done(read, current !== undefined);
    }
    const { id, csrfToken, cookies } = await this.deps.flow.openInteraction('logout', { ...read }, browser);
    const client = read.clientId ? await this.deps.client(read.clientId) : undefined;
    return {
      kind: 'page',
      status: 200,
      page: this.deps.flow.signOutConfirmation(current.user.email, client?.name, { action: LOGOUT_PATH, interaction: id, csrfToken }),
      formTargets: read.postLogoutRedirectUri ? [read.postLogoutRedirectUri] : [],
      cookies,
    };
  }

  /** The confirmation page's form. */
  async confirm(form: RequestParams, browser: BrowserRequest): Promise<Outcome> {
    const row = await this.deps.flow.answered(form, browser, 'logout');
    const read = row.request as SignOutRequest;
    await repo.deleteInteraction(this.deps.db, row.id);
    const decision = form.get('decision');
    if (decision === 'stay') {
      if (read.postLogoutRedirectUri) return { kind: 'redirect', location: this.returnUri(read), cookies: [] };
      return { kind: 'page', status: 200, page: { ...this.deps.flow.signedOutPage(), title: 'Still signed in' }, formTargets: [], cookies: [] };
    }
    if (decision !== 'sign-out') throw new PageError('Choose Sign out or Stay signed in.');
    const current = await this.cookieSession(browser);
    await this.end(current?.session.id, read.hintedSessionId, current ? `user:${current.user.id}` : 'anonymous', browser);
    return this.done(read, true);
  }

  private async read(params: RequestParams): Promise<SignOutRequest> {
    const hintText = params.get('id_token_hint');
    const hint = hintText !== undefined ? await this.verifyHint(hintText) : undefined;
    const hintAudience = typeof hint?.aud === 'string' ? hint.aud : Array.isArray(hint?.aud) && hint.aud.length === 1 ? hint.aud[0] : undefined;
    const statedClient = params.get('client_id');
    if (statedClient !== undefined && hintAudience !== undefined && statedClient !== hintAudience) {
      throw new PageError('client_id is not the application the id_token_hint was issued to.');
    }
    const clientId = statedClient ?? hintAudience;
    const client = clientId !== undefined ? await this.deps.client(clientId) : undefined;
    if (clientId !== undefined && !client) throw new PageError('The application is not known here (client_id).');
    const postLogoutRedirectUri = params.get('post_logout_redirect_uri');
    if (postLogoutRedirectUri !== undefined) {
      if (!client) throw new PageError('post_logout_redirect_uri needs client_id or id_token_hint, to know whose it is.');
      // Exact string comparison, as OpenID Connect RP-Initiated Logout 1.0 §3 requires.
      if (!client.postLogoutRedirectUris.includes(postLogoutRedirectUri)) {
        throw new PageError('The address the application asked to return to after signing out is not registered for it (post_logout_redirect_uri).');
      }
    }
    const state = params.get('state');
    if (state !== undefined && state.length > 2048) throw new PageError('state is over 2048 characters.');
    return {
      ...(clientId !== undefined && { clientId }),
      ...(postLogoutRedirectUri !== undefined && { postLogoutRedirectUri }),
      ...(state !== undefined && { state }),
      ...(typeof hint?.sid === 'string' && { hintedSessionId: hint.sid }),
    };
  }

  /**
   * An ID token this provider issued (signature, issuer, `typ: JWT`); expired ones are accepted, as
   * RP-Initiated Logout §2 asks: a user signs out long after signing in.
   */
  private async verifyHint(token: string): Promise<JWTPayload> {
    let decoded: JWTPayload;
    try {
      decoded = decodeJwt(token);
    } catch {
      throw new PageError('id_token_hint is not an ID token.');
    }
    const aud = decoded.aud;
    if (typeof decoded.iat !== 'number' || (typeof aud !== 'string' && !Array.isArray(aud))) throw new PageError('id_token_hint is not an ID token of this provider.');
    try {
      // Verified as at its issue: only its expiry is forgiven.
      return await this.deps.verifier.verify(token, { audience: aud, typ: 'JWT', now: new Date(decoded.iat * 1000) });
    } catch {
      throw new PageError('id_token_hint is not an ID token of this provider (or its signing key has been retired).', 400, 'id_token_hint does not verify');
    }
  }

  /** This browser's session row when it has not ended (idle or not: signing out ends it either way). */
  private async cookieSession(browser: BrowserRequest) {
    const token = browser.cookies.get(this.deps.flow.cookies.session);
    if (!looksLikeToken(token)) return undefined;
    const found = await repo.findBrowserSession(this.deps.db, tokenHash(token));
    return found && !found.session.ended_at ? found : undefined;
  }

  private async end(browserSessionId: string | undefined, hintedSessionId: string | undefined, actor: string, browser: BrowserRequest): Promise<void> {
    const now = this.deps.now();
    await this.deps.db.transaction().execute(async (trx) => {
      const ended: string[] = [];
      if (browserSessionId && (await repo.endBrowserSession(trx, browserSessionId, 'signed out', now))) {
        ended.push(...(await revokeBrowserSessionSessions(trx, browserSessionId, 'signed out', now)));
      }
      if (hintedSessionId && (await revokeSession(trx, hintedSessionId, 'signed out', now))) ended.push(hintedSessionId);
      if (browserSessionId || ended.length > 0) {
        await recordAudit(trx, {
          at: now,
          actor,
          action: 'signout',
          target: browserSessionId ?? hintedSessionId,
          requestId: browser.requestId,
          details: { via: 'hosted page', ended_sessions: ended, ip: browser.ip },
        });
      }
    });
  }

  private done(read: SignOutRequest, hadCookie: boolean): Outcome {
    const cookies = hadCookie ? [this.deps.flow.clearSessionCookie()] : [];
    if (read.postLogoutRedirectUri) return { kind: 'redirect', location: this.returnUri(read), cookies };
    return { kind: 'page', status: 200, page: this.deps.flow.signedOutPage(), formTargets: [], cookies };
  }

  private returnUri(read: SignOutRequest): string {
    const url = new URL(read.postLogoutRedirectUri as string);
    if (read.state !== undefined) url.searchParams.append('state', read.state);
    return url.href;
  }
}
