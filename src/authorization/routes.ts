import { Router, type Request, type Response } from 'express';
import { checkQuery } from '../http/input';
import { requestId } from '../http/request';
import type { Logger } from '../observability/logger';
import { MAX_BODY_BYTES } from '../oauth/form';
import { errorPage, sendPage, STYLESHEET, STYLESHEET_PATH } from '../pages';
import { etagMatches } from '../keys/jwks';
import { textProblem } from '../text';
import { parseCookies } from './cookies';
import { PageError } from './errors';
import { AUTHORIZE_PATH, type AuthorizationFlow, type BrowserRequest, type Outcome } from './flow';
import { LOGOUT_PATH, type SignOut } from './logout';
import { requestParams, type RequestParams } from './request';
import { USERINFO_PATH, userinfoHandler, type UserinfoUsers } from './userinfo';

export interface PageRoutesDeps {
  flow: AuthorizationFlow;
  signOut: SignOut;
  users: UserinfoUsers;
  logger: Logger;
  brandName: string;
}

const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i;

/** The body of a page's form (or of a POSTed authorization request): at most 64 KiB, form-encoded, storable text. */
async function readForm(req: Request): Promise<RequestParams> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) throw new PageError('The form is too large.', 413);
  if (!FORM_TYPE.test(req.headers['content-type'] ?? '')) throw new PageError('The form must be sent as application/x-www-form-urlencoded.', 415);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new PageError('The form is too large.', 413);
    chunks.push(chunk);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
    // Percent-escapes that are not UTF-8 would silently become U+FFFD: refused instead.
    for (const part of text.split('&')) decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    throw new PageError('The form is not valid UTF-8.');
  }
  return checked(new URLSearchParams(text));
}

function checked(search: URLSearchParams): RequestParams {
  for (const [name, value] of search) {
    if (textProblem(name) ?? textProblem(value)) throw new PageError('The request holds characters that cannot be stored (a NUL or a lone surrogate).');
  }
  return requestParams(search);
}

/** The query of a GET, read as the raw URLSearchParams (repeated `resource` kept), refused when not UTF-8. */
function readQuery(req: Request): RequestParams {
  try {
    checkQuery(req);
  } catch {
    throw new PageError('The request is not percent-encoded UTF-8, or holds characters that cannot be stored.');
  }
  const url = req.originalUrl;
  const start = url.indexOf('?');
  return checked(new URLSearchParams(start < 0 ? '' : url.slice(start + 1)));
}

function browserOf(req: Request): BrowserRequest {
  return { cookies: parseCookies(req.headers.cookie), ip: req.ip ?? req.socket.remoteAddress ?? 'unknown', requestId: requestId(req) };
}

/**
 * The hosted pages' routes (docs/sign-in.md "Sign-in for applications": GET|POST /oauth/authorize (an
 * authorization request, or a page's form when it carries `interaction`), GET|POST /oauth/logout
 * (likewise), GET|POST /oauth/userinfo, and the pages' stylesheet.
 */
export function pageRoutes(deps: PageRoutesDeps): Router {
  const router = Router({ caseSensitive: true, strict: true });
  const context = { brand: deps.brandName };

  const send = (req: Request, res: Response, outcome: Outcome) => {
    res.set('X-Request-Id', requestId(req));
    if (outcome.cookies.length > 0) res.append('Set-Cookie', outcome.cookies);
    if (outcome.kind === 'redirect') {
      // 303 after a form, so the browser follows with a GET; Referrer-Policy keeps our URL off the client's logs.
      res.set({ 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' });
      res.redirect(req.method === 'POST' ? 303 : 302, outcome.location);
      return;
    }
    sendPage(res, outcome.status, { ...context, formTargets: outcome.formTargets }, outcome.page, outcome.headers);
  };

  const serve = (handle: (req: Request) => Promise<Outcome>) => async (req: Request, res: Response) => {
    let outcome: Outcome;
    try {
      outcome = await handle(req);
    } catch (error) {
      if (error instanceof PageError) {
        outcome = deps.flow.errorOutcome(error);
        if (error.status === 413) res.set('Connection', 'close');
      } else {
        deps.logger.error({ err: error, requestId: requestId(req), path: req.path }, 'hosted page failed');
        sendPage(res.status(500), 500, context, errorPage('Something went wrong on our side. Try again in a moment.'));
        return;
      }
    }
    send(req, res, outcome);
  };

  router.get(AUTHORIZE_PATH, serve((req) => deps.flow.authorize(readQuery(req), browserOf(req))));
  router.post(
    AUTHORIZE_PATH,
    serve(async (req) => {
      const form = await readForm(req);
      // A page's form names its interaction; anything else is an authorization request sent by POST (OpenID Connect Core §3.1.2.1).
      return form.get('interaction') !== undefined ? deps.flow.submit(form, browserOf(req)) : deps.flow.authorize(form, browserOf(req));
    }),
  );
  router.get(LOGOUT_PATH, serve((req) => deps.signOut.request(readQuery(req), browserOf(req))));
  router.post(
    LOGOUT_PATH,
    serve(async (req) => {
      const form = await readForm(req);
      return form.get('interaction') !== undefined ? deps.signOut.confirm(form, browserOf(req)) : deps.signOut.request(form, browserOf(req));
    }),
  );

  const userinfo = userinfoHandler(deps.users, deps.logger);
  const userinfoRoute = async (req: Request, res: Response) => {
    try {
      await userinfo(req, res);
    } catch (error) {
      deps.logger.error({ err: error, requestId: requestId(req) }, 'userinfo failed');
      res.status(500).set('Cache-Control', 'no-store').json({ error: 'server_error', error_description: 'internal error' });
    }
  };
  router.get(USERINFO_PATH, userinfoRoute);
  router.post(USERINFO_PATH, userinfoRoute);

  router.get(STYLESHEET_PATH, (req, res) => {
    res.set({ 'Cache-Control': 'public, max-age=86400', ETag: STYLESHEET.etag, 'X-Content-Type-Options': 'nosniff' });
    if (etagMatches(req.get('if-none-match'), STYLESHEET.etag)) {
      res.status(304).end();
      return;
    }
    res.type('text/css; charset=utf-8').send(STYLESHEET.body);
  });
  return router;
}
