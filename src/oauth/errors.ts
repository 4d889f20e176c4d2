import type { Logger } from '../observability/logger';

/** Every `error` code the OAuth endpoints answer (RFC 6749 §5.2, RFC 8707); each OAuthError class has one. */
export const OAUTH_ERROR_CODES = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'invalid_target',
  'temporarily_unavailable',
  'server_error',
] as const;

export type OAuthErrorCode = (typeof OAUTH_ERROR_CODES)[number];

/**
 * The error model of the OAuth endpoints: one class per error code (RFC 6749 §5.2, RFC 8707),
 * thrown wherever the problem is found, and one serializer (`oauthErrorResponse`) that
 * turns anything thrown into the wire shape. `description` is sent to the client; `detail`
 * (private) only goes to the log. Anything that is not an OAuthError becomes `server_error`.
 */
export abstract class OAuthError extends Error {
  /** The `error` member: a stable code, asserted on by tests (one of OAUTH_ERROR_CODES, which the OpenAPI document lists). */
  abstract readonly error: OAuthErrorCode;
  /** HTTP status; RFC 6749 §5.2 says 400 unless stated otherwise. */
  readonly status: number = 400;
  /** Extra response headers (WWW-Authenticate, Retry-After, Allow). */
  readonly headers: Record<string, string> = {};

  constructor(
    /** The `error_description` sent to the client: never a secret, never an internal detail. */
    readonly description: string,
    /** Private detail for the log. */
    readonly detail?: string,
  ) {
    super(description);
    this.name = new.target.name;
  }
}

export class InvalidRequest extends OAuthError {
  readonly error = 'invalid_request';
}

/**
 * Client authentication failed. Always 401 with `WWW-Authenticate: Basic`: RFC 6749 §5.2 requires it
 * when the client used the Authorization header, and RFC 7235 requires the header on any 401.
 */
export class InvalidClient extends OAuthError {
  readonly error = 'invalid_client';
  override readonly status = 401;
  override readonly headers = { 'WWW-Authenticate': 'Basic realm="idp", charset="UTF-8"' };
}

export class InvalidGrant extends OAuthError {
  readonly error = 'invalid_grant';
}

export class UnauthorizedClient extends OAuthError {
  readonly error = 'unauthorized_client';
}

export class UnsupportedGrantType extends OAuthError {
  readonly error = 'unsupported_grant_type';
}

export class InvalidScope extends OAuthError {
  readonly error = 'invalid_scope';
}

/** RFC 8707 §2: the requested resource (audience) is not allowed for this client. */
export class InvalidTarget extends OAuthError {
  readonly error = 'invalid_target';
}

/** 413: the body is over the limit of docs/security.md "Abuse limits and the threat model"; refused before it is parsed. */
export class PayloadTooLarge extends OAuthError {
  readonly error = 'invalid_request';
  override readonly status = 413;
}

export class MethodNotAllowed extends OAuthError {
  readonly error = 'invalid_request';
  override readonly status = 405;
  override readonly headers = { Allow: 'POST' };
}

/**
 * 429 after too many failed client authentications (docs/security.md "Abuse limits and the threat model". RFC 6749 has no code for it;
 * `temporarily_unavailable` is the registered code closest in meaning, and Retry-After says when.
 */
export class TooManyFailures extends OAuthError {
  readonly error = 'temporarily_unavailable';
  override readonly status = 429;
  override readonly headers: Record<string, string>;
  constructor(readonly retryAfterSeconds: number) {
    super('too many failed client authentications; retry later');
    this.headers = { 'Retry-After': String(retryAfterSeconds) };
  }
}

export class ServerError extends OAuthError {
  readonly error = 'server_error';
  override readonly status = 500;
}

export class TemporarilyUnavailable extends OAuthError {
  readonly error = 'temporarily_unavailable';
  override readonly status = 503;
  override readonly headers = { 'Retry-After': '1' };
}

/** Headers on every OAuth response, success or error (RFC 6749 §5.1: tokens must not be cached). */
export const NO_STORE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  Pragma: 'no-cache',
});

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: { error: string; error_description: string };
  /** The error as the client sees it (for metrics). */
  error: OAuthError;
}

/** The one serializer: any thrown value → status, headers and the RFC 6749 §5.2 body. */
export function oauthErrorResponse(thrown: unknown, logger: Logger, context: Record<string, unknown> = {}): ErrorResponse {
  let error: OAuthError;
  if (thrown instanceof OAuthError) {
    error = thrown;
    if (error.detail !== undefined) logger.info({ ...context, error: error.error, detail: error.detail }, error.description);
  } else {
    error = new ServerError('internal error');
    logger.error({ ...context, err: thrown }, 'unexpected error at an OAuth endpoint');
  }
  return {
    status: error.status,
    headers: { ...NO_STORE_HEADERS, ...error.headers },
    body: { error: error.error, error_description: error.description },
    error,
  };
}
