/**
 * The verifier's error model: one class per outcome, each with a stable `code` (what tests and
 * callers branch on), the HTTP `status` a resource server answers with, and an `error_description`
 * that names the cause precisely ("token expired at 2026-11-26T10:00:00Z"), never a secret.
 * Private detail (a network error, the IdP's answer) is kept in `cause`, for logs only.
 *
 * Codes: `invalid_request`, `invalid_token`, `insufficient_scope` (RFC 6750 §3.1),
 * `temporarily_unavailable` (the identity provider could not be asked; fail closed), and
 * `missing_credentials` (no credential at all: RFC 6750 §3.1 says such a 401 carries no error code
 * in `WWW-Authenticate`; the JSON body still needs one).
 */
export type VerifierErrorCode = 'missing_credentials' | 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'temporarily_unavailable';

/**
 * Why a token was refused, finer than the code: for logs, metrics and tests.
 * `expired`, `not_yet_valid`, `signature`, `unknown_key`, `algorithm`, `audience`, `issuer`,
 * `type` (not an access token), `claims` (a required claim missing or mistyped), `lifetime` (`exp` further
 * after `iat` than `maxTokenAge`), `kind` (not a
 * token kind this provider issues), `malformed`, `revoked` (introspection says inactive),
 * `api_keys_disabled` (the verifier has no client credentials to check API keys with).
 */
export type InvalidTokenReason =
  | 'expired'
  | 'not_yet_valid'
  | 'signature'
  | 'unknown_key'
  | 'algorithm'
  | 'audience'
  | 'issuer'
  | 'type'
  | 'claims'
  | 'lifetime'
  | 'kind'
  | 'malformed'
  | 'revoked'
  | 'api_keys_disabled';

export abstract class VerifierError extends Error {
  abstract readonly code: VerifierErrorCode;
  abstract readonly status: number;

  constructor(
    /** The `error_description`: sent to the caller, precise, never a secret or an internal address. */
    readonly description: string,
    options?: { cause?: unknown },
  ) {
    super(description, options);
    this.name = new.target.name;
  }

  /** RFC 6750 spelling of `description`. */
  get error_description(): string {
    return this.description;
  }
}

/** 401, no error code in `WWW-Authenticate` (RFC 6750 §3.1): the request carried no credential. */
export class MissingCredentials extends VerifierError {
  readonly code = 'missing_credentials';
  readonly status = 401;
}

/** 400: the credential was sent in a way this verifier refuses (two credentials, a non-Bearer scheme, an empty token). */
export class InvalidRequest extends VerifierError {
  readonly code = 'invalid_request';
  readonly status = 400;
}

/** 401: the token or API key is expired, revoked, forged, malformed or not meant for this audience. */
export class InvalidToken extends VerifierError {
  readonly code = 'invalid_token';
  readonly status = 401;

  constructor(
    readonly reason: InvalidTokenReason,
    description: string,
    options?: { cause?: unknown },
  ) {
    super(description, options);
  }
}

/**
 * 403: a valid token without what the route requires. `scope` is the scope the route needs (the
 * `scope` attribute of `WWW-Authenticate`), when scopes are what is missing.
 */
export class InsufficientScope extends VerifierError {
  readonly code = 'insufficient_scope';
  readonly status = 403;

  constructor(
    description: string,
    readonly scope?: string,
  ) {
    super(description);
  }
}

/**
 * 503: the answer needs the identity provider (an API key, `checkRevocation`, or a JWT whose key
 * set was never fetched) and it could not be asked. Fails closed; the next request tries again.
 */
export class TemporarilyUnavailable extends VerifierError {
  readonly code = 'temporarily_unavailable';
  readonly status = 503;
  /** Seconds a client should wait before trying again (`Retry-After`). */
  readonly retryAfter = 5;
}

/** `WWW-Authenticate` and JSON body of an error (RFC 6750 §3). */
export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { error: VerifierErrorCode; error_description: string };
}

/** The parameters of a `WWW-Authenticate: Bearer` challenge besides the error's own. */
export interface Challenge {
  realm?: string;
  /** RFC 9728 §5.1: where the protected resource's metadata is (set by `protectedResource`). */
  resourceMetadata?: string;
  /** The scope the route needs (RFC 6750 §3); an InsufficientScope's own `scope` takes precedence. */
  scope?: string;
}

/**
 * The one serializer: any VerifierError → status, headers and body. `challenge` is the realm, or
 * the challenge's parameters. `WWW-Authenticate` is sent on 400, 401 and 403, its parameters in
 * this order: `realm`, `resource_metadata`, `error`, `error_description` (none without a
 * credential: RFC 6750 §3.1), `scope`. RFC 6750 §3 allows only %x20-21 / %x23-5B / %x5D-7E inside
 * its quoted values, so there double quotes become single quotes and anything else outside that
 * range is dropped. The JSON body carries the description unchanged.
 */
export function errorResponse(error: VerifierError, challenge: string | Challenge): ErrorResponse {
  const { realm, resourceMetadata, scope }: Challenge = typeof challenge === 'string' ? { realm: challenge } : challenge;
  const headers: Record<string, string> = { 'Cache-Control': 'no-store', 'Content-Type': 'application/json' };
  if (error instanceof TemporarilyUnavailable) {
    headers['Retry-After'] = String(error.retryAfter);
  } else {
    const params: string[] = [];
    if (realm !== undefined) params.push(`realm="${headerValue(realm)}"`);
    if (resourceMetadata !== undefined) params.push(`resource_metadata="${headerValue(resourceMetadata)}"`);
    if (!(error instanceof MissingCredentials)) {
      params.push(`error="${error.code}"`, `error_description="${headerValue(error.description)}"`);
    }
    const required = (error instanceof InsufficientScope ? error.scope : undefined) ?? scope;
    if (required !== undefined) params.push(`scope="${headerValue(required)}"`);
    headers['WWW-Authenticate'] = params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`;
  }
  return { status: error.status, headers, body: { error: error.code, error_description: error.description } };
}

function headerValue(text: string): string {
  return text.replace(/"/g, "'").replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '');
}
