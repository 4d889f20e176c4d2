/**
 * Refusals of the domain (user accounts, admin tokens, ...): a stable `code` that tests and the HTTP
 * layer read, a `message` for the person who made the request, and private detail for the log.
 * Domain code throws these and knows nothing of HTTP; src/http/api-error.ts maps each code to its
 * status and the `{"error", "message"}` body, and src/users/oauth.ts to RFC 6749 codes. A leaf module.
 */
export const SERVICE_ERROR_CODES = [
  'invalid_request',
  'invalid_credentials',
  'invalid_grant',
  'weak_password',
  'unauthorized',
  'invalid_token',
  'token_expired',
  'forbidden',
  'not_found',
  'conflict',
  'user_already_exists',
  'too_many_requests',
  'temporarily_unavailable',
] as const;

export type ServiceErrorCode = (typeof SERVICE_ERROR_CODES)[number];

export interface ServiceErrorOptions {
  /** A limit or an overloaded queue: when to try again. */
  retryAfterSeconds?: number;
  /** Which check failed, on which input: the log only, never the caller. */
  logDetail?: string;
  /** Members added to the answer (e.g. `safe_at`). */
  details?: Record<string, unknown>;
}

export class ServiceError extends Error {
  constructor(
    readonly code: ServiceErrorCode,
    message: string,
    readonly refusal: ServiceErrorOptions = {},
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}
