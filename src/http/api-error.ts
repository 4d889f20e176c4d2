import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../observability/logger';
import { ServiceError, type ServiceErrorCode } from '../errors';
import { requestId } from './request';

/**
 * The error codes of the JSON APIs (/auth/v1, /admin/v1), docs/http-api.md "HTTP": `{"error": code, "message": text}`.
 * Each code has one HTTP status, so no handler picks a status on its own.
 */
export const API_ERRORS: Readonly<Record<ApiErrorCode, number>> = {
  invalid_request: 400,
  invalid_credentials: 400,
  invalid_grant: 400,
  weak_password: 422,
  unauthorized: 401,
  invalid_token: 401,
  token_expired: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  user_already_exists: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  too_many_requests: 429,
  server_error: 500,
  temporarily_unavailable: 503,
};

export type ApiErrorCode = ServiceErrorCode | 'payload_too_large' | 'unsupported_media_type' | 'server_error';

/**
 * A failure the caller can act on, raised by the HTTP layer itself (body reading, routing, input
 * checks). `message` goes to the caller and must help a developer without helping an attacker;
 * `logDetail` (which check failed, on which input) goes only to the log. Domain code throws a
 * ServiceError (src/errors.ts) instead, which the serializer maps the same way.
 */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly options: { headers?: Record<string, string>; logDetail?: string; details?: Record<string, unknown> } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = API_ERRORS[code];
  }
}

/** A domain refusal as the HTTP layer answers it: its code's status, Retry-After when it says when. */
export function fromServiceError(error: ServiceError): ApiError {
  const { retryAfterSeconds, logDetail, details } = error.refusal;
  return new ApiError(error.code, error.message, { headers: retryAfterSeconds === undefined ? undefined : { 'Retry-After': String(retryAfterSeconds) }, logDetail, details });
}

/**
 * Postgres class 22, "data exception": a value the database could not take (invalid input syntax,
 * invalid byte sequence, untranslatable character, a date or number out of range). Input is
 * validated before it reaches a query; should a value slip through, the caller still gets a 400,
 * never a 500, and the log says that a check is missing.
 */
export function isBadInputDatabaseError(error: unknown): boolean {
  const code = error !== null && typeof error === 'object' ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code) && code !== '22012'; // 22012: division by zero is ours
}

/** The one serializer for the JSON APIs: ApiError as is, body and input errors mapped, anything else a logged 500. */
export function apiErrorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const apiError = toApiError(error);
    // A 503 raised on purpose (starting, load shed) is the design working: whoever raised it logs what matters.
    if (apiError.status >= 500 && apiError.code !== 'temporarily_unavailable') {
      logger.error({ err: error, requestId: requestId(req), path: req.path }, 'unhandled error');
    } else if (isBadInputDatabaseError(error)) {
      // Only the SQLSTATE and the kind of error: the database's message quotes the offending value.
      const { code, message } = error as { code: string; message?: string };
      logger.warn({ requestId: requestId(req), path: req.path, sqlstate: code, detail: String(message ?? '').split(':')[0] }, 'unvalidated input reached the database');
    } else if (apiError.options.logDetail) {
      logger.info({ requestId: requestId(req), path: req.path, code: apiError.code, detail: apiError.options.logDetail }, 'request refused');
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(apiError.status).set('Cache-Control', 'no-store');
    for (const [name, value] of Object.entries(apiError.options.headers ?? {})) res.set(name, value);
    if (apiError.status === 401) res.set('WWW-Authenticate', `Bearer error="${apiError.code === 'unauthorized' ? 'invalid_request' : 'invalid_token'}"`);
    res.json({ error: apiError.code, message: apiError.message, ...apiError.options.details });
  };
}

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof ServiceError) return fromServiceError(error);
  if (isBadInputDatabaseError(error)) return new ApiError('invalid_request', 'a value in the request is not valid');
  const parserError = error as { type?: string; status?: number };
  if (typeof parserError.status === 'number' && parserError.status >= 400 && parserError.status < 500) {
    // Express's own refusals, e.g. a path parameter that is not valid percent-encoding.
    return new ApiError('invalid_request', 'malformed request');
  }
  return new ApiError('server_error', 'internal error; the request id is in the X-Request-Id header');
}
