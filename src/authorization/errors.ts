/**
 * The errors of the authorization endpoint (RFC 6749 §4.1.2.1, OpenID Connect Core §3.1.2.6,
 * RFC 8707 §2). Two kinds, because where the answer may go differs:
 * - `PageError`: the client or its redirect URI is not established (unknown client, unmatched
 *   redirect URI, an expired or forged form): shown to the user as an error page, never redirected.
 * - `RedirectError`: everything else, sent back to the validated redirect URI with `error`,
 *   `error_description`, `state` and `iss`.
 */

export const AUTHORIZATION_ERROR_CODES = [
  'invalid_request',
  'unauthorized_client',
  'access_denied',
  'unsupported_response_type',
  'invalid_scope',
  'invalid_target',
  'server_error',
  'temporarily_unavailable',
  'login_required',
  'consent_required',
  'interaction_required',
  'request_not_supported',
  'request_uri_not_supported',
] as const;

export type AuthorizationErrorCode = (typeof AUTHORIZATION_ERROR_CODES)[number];

/** Sent back to the client's redirect URI. */
export class RedirectError extends Error {
  /** Where it goes and the `state` it echoes, once the request reader has established them. */
  target?: { redirectUri: string; state: string | undefined };

  constructor(
    readonly error: AuthorizationErrorCode,
    readonly description: string,
  ) {
    super(description);
    this.name = 'RedirectError';
  }
}

/** Shown as an error page (400 unless said otherwise); the message is for the person in front of the browser. */
export class PageError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    /** Private detail for the log. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'PageError';
  }
}
