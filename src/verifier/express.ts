import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { errorResponse, VerifierError, type Challenge } from './errors';
import { protectedResourceOf } from './protected-resource';
import { checkRequirements, type AuthInfo, type AuthRequirements, type Verifier } from './verifier';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- the way Express's own types are augmented
  namespace Express {
    interface Request {
      /** The verified caller, set by `requireAuth`. */
      auth?: AuthInfo;
    }
  }
}

export interface RequireAuthOptions extends AuthRequirements {
  /** The verifier built once with `createVerifier`. */
  verifier: Verifier;
  /** `realm` of `WWW-Authenticate`. @default the verifier's realm; none behind `protectedResource` */
  realm?: string;
  /**
   * Called with every refusal before it is answered, e.g. to log `error.cause` (the private detail
   * of a 503). @default none
   */
  onError?(error: VerifierError, req: Request): void;
}

/**
 * Express middleware (docs/verifier-kit.md "Protecting an API": verifies the request's credential, checks the route's
 * requirements, sets `req.auth` and calls `next()`. A refusal is answered here, RFC 6750 style:
 * `401`/`400`/`403` with `WWW-Authenticate: Bearer realm=..., error=..., error_description=...`
 * (and `scope=...` for a missing scope), `503` with `Retry-After` when the identity provider is
 * needed and unreachable, and the same `{error, error_description}` as a JSON body. Anything that
 * is not a VerifierError (a bug) goes to `next(error)`.
 *
 * Behind `protectedResource` (docs/verifier-kit.md "Protecting an MCP server" the challenge is
 * `Bearer resource_metadata="<its metadata URL>"` instead of the realm, with the route's `scope`
 * on every refusal, so that a client can find the authorization server and the scopes to ask for.
 *
 * ```ts
 * app.get('/invoices', requireAuth({ verifier, scopes: ['invoices:read'] }), handler);
 * ```
 */
export function requireAuth(options: RequireAuthOptions): RequestHandler {
  if (options?.verifier === undefined || typeof options.verifier.authenticate !== 'function') {
    throw new TypeError('requireAuth: options.verifier is required (createVerifier)');
  }
  const { verifier, realm = options.verifier.realm, onError, ...rest } = options;
  const requirements = checkRequirements(rest);
  const scope = requirements.scopes !== undefined && requirements.scopes.length > 0 ? requirements.scopes.join(' ') : undefined;
  const refuse = (error: VerifierError, req: Request, res: Response) => {
    onError?.(error, req);
    const resource = protectedResourceOf(req);
    const challenge: string | Challenge = resource === undefined ? realm : { realm: options.realm, resourceMetadata: resource.metadataUrl, scope };
    const { status, headers, body } = errorResponse(error, challenge);
    res.status(status).set(headers).json(body);
  };
  return (req: Request, res: Response, next: NextFunction): void => {
    verifier
      .authenticate(req.headers, requirements)
      .then(
        (auth) => {
          req.auth = auth;
          next();
        },
        (error: unknown) => {
          if (error instanceof VerifierError) refuse(error, req, res);
          else next(error);
        },
      )
      .catch(next);
  };
}
