import type { Response } from 'express';
import { STYLESHEET_PATH } from './stylesheet';

export { STYLESHEET, STYLESHEET_PATH } from './stylesheet';

/**
 * The hosted pages (docs/sign-in.md "Sign-in for applications": sign-in, consent, sign-out confirmation,
 * signed out, and an error page. Server-rendered HTML without a line of JavaScript, one stylesheet
 * of our own, every value escaped. The field names are a contract: `email`, `password`, `decision`
 * (`allow`, `deny`, `sign-out`), `csrf_token`, and `interaction` (which request the form answers).
 */

/** Text for HTML content and attribute values (always quoted). */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** Builds HTML from a template: interpolated values are escaped unless they are `Html` already. */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

type Part = Html | string | number | undefined | null | false | Part[];

function render(part: Part): string {
  if (part === undefined || part === null || part === false) return '';
  if (Array.isArray(part)) return part.map(render).join('');
  if (part instanceof Html) return part.text;
  return escapeHtml(String(part));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] as string;
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] as string);
  });
  return new Html(out);
}

/** What every page needs to know besides its content. */
export interface PageContext {
  brand: string;
  /** Origins (besides 'self') a form on the page may lead to: the validated redirect URI's, since the form's redirect follows it. */
  formTargets?: readonly string[];
}

/** The form's hidden members: which request it answers and the CSRF token. */
export interface FormState {
  action: string;
  interaction: string;
  csrfToken: string;
}

function hidden(form: FormState): Html {
  return html`<input type="hidden" name="interaction" value="${form.interaction}"><input type="hidden" name="csrf_token" value="${form.csrfToken}">`;
}

function layout(context: PageContext, title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${title} · ${context.brand}</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<main>
<p class="brand">${context.brand}</p>
<h1>${title}</h1>
${body}
</main>
</body>
</html>
`;
}

/**
 * A CSP source for a redirect URI's origin: `https://app.example:8443`, or `com.example.app:` for a
 * private-use scheme (which has no host). Undefined when it cannot be expressed safely.
 */
export function cspSource(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return undefined;
  }
  if (url.protocol === 'http:' || url.protocol === 'https:') return url.origin;
  return /^[a-z][a-z0-9+.-]*:$/.test(url.protocol) ? url.protocol : undefined;
}

/** The headers of every hosted page (docs/sign-in.md "Hosted pages". */
export function pageHeaders(context: PageContext): Record<string, string> {
  const targets = [...new Set((context.formTargets ?? []).map(cspSource).filter((s): s is string => s !== undefined))];
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Security-Policy': `default-src 'none'; style-src 'self'; form-action 'self'${targets.map((t) => ` ${t}`).join('')}; frame-ancestors 'none'; base-uri 'none'`,
    'X-Frame-Options': 'DENY',
    'Cache-Control': 'no-store',
    Pragma: 'no-cache',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
  };
}

/** Sends a page with its headers. */
export function sendPage(res: Response, status: number, context: PageContext, page: { title: string; body: Html }, extraHeaders: Record<string, string> = {}): void {
  res.status(status).set({ ...pageHeaders(context), ...extraHeaders });
  res.send(layout(context, page.title, page.body).text);
}

export interface SignInPage {
  /** The application the user signs in to. */
  clientName: string;
  form: FormState;
  /** Prefilled email (login_hint, or what was typed). */
  email?: string;
  /** Why the last attempt failed, shown above the form. */
  error?: string;
  /** Why a sign-in is asked although the browser is signed in (prompt=login, max_age). */
  notice?: string;
}

export function signInPage(page: SignInPage): { title: string; body: Html } {
  return {
    title: 'Sign in',
    body: html`<p class="muted">to continue to <strong>${page.clientName}</strong></p>
${page.notice ? html`<p>${page.notice}</p>` : ''}
${page.error ? html`<p class="error" role="alert" id="form-error">${page.error}</p>` : ''}
<form method="post" action="${page.form.action}">
${hidden(page.form)}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="254" value="${page.email ?? ''}"${page.error ? html` aria-describedby="form-error"` : ''}${page.email ? '' : html` autofocus`}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${page.email ? html` autofocus` : ''}>
<div class="actions"><button type="submit">Sign in</button></div>
</form>`,
  };
}

export interface ConsentItem {
  /** What the user reads. */
  text: string;
  /** The scope or resource as the application asked for it. */
  code: string;
}

export interface ConsentPage {
  clientName: string;
  /** The host of the redirect URI the answer goes to (with its port when it has one). */
  redirectHost: string;
  scopes: ConsentItem[];
  resources: ConsentItem[];
  /** The client registered itself (dynamic registration or a metadata document): nobody vetted it. */
  unvetted?: 'dynamic' | 'metadata_document';
  /** A metadata-document client: the host (and port) of its client id URL, where its document is published. */
  documentHost?: string;
  userEmail: string;
  form: FormState;
}

export function consentPage(page: ConsentPage): { title: string; body: Html } {
  const item = (i: ConsentItem) => html`<li>${i.text} <code>${i.code}</code></li>`;
  return {
    title: `Allow ${page.clientName}?`,
    body: html`<p><strong>${page.clientName}</strong> (answers go to <strong>${page.redirectHost}</strong>) asks to use your account <strong>${page.userEmail}</strong>:</p>
${page.unvetted
  ? html`<p class="warning" role="note">This application registered itself${page.documentHost !== undefined ? html` by publishing a client metadata document at <strong>${page.documentHost}</strong>` : page.unvetted === 'metadata_document' ? ' by publishing a client metadata document' : ''}: no administrator has reviewed it. Allow it only if you started this sign-in and trust <strong>${page.redirectHost}</strong>.</p>`
  : ''}
${page.scopes.length > 0 ? html`<ul class="grants" aria-label="Permissions">${page.scopes.map(item)}</ul>` : html`<p class="muted">No permissions beyond signing you in.</p>`}
${page.resources.length > 0 ? html`<p>for these APIs:</p><ul class="grants" aria-label="APIs">${page.resources.map(item)}</ul>` : ''}
<form method="post" action="${page.form.action}">
${hidden(page.form)}
<div class="actions"><button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny" class="secondary">Deny</button></div>
</form>
<p class="muted">You can withdraw this later; the application then loses access.</p>`,
  };
}

export interface SignOutPage {
  userEmail: string;
  /** The application that asked, when known. */
  clientName?: string;
  form: FormState;
}

export function signOutPage(page: SignOutPage): { title: string; body: Html } {
  return {
    title: 'Sign out?',
    body: html`<p>${page.clientName ? html`<strong>${page.clientName}</strong> asks to sign you out.` : 'An application asks to sign you out.'} You are signed in as <strong>${page.userEmail}</strong>.</p>
<form method="post" action="${page.form.action}">
${hidden(page.form)}
<div class="actions"><button type="submit" name="decision" value="sign-out">Sign out</button><button type="submit" name="decision" value="stay" class="secondary">Stay signed in</button></div>
</form>`,
  };
}

export function messagePage(title: string, message: string): { title: string; body: Html } {
  return { title, body: html`<p>${message}</p>` };
}

export function errorPage(message: string): { title: string; body: Html } {
  return { title: 'This request cannot be completed', body: html`<p class="error" role="alert">${message}</p><p class="muted">Go back to the application and try again. Nothing was changed.</p>` };
}
