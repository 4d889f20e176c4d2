import crypto from 'node:crypto';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Logger } from '../observability/logger';

/**
 * The error codes of the JSON APIs (/auth/v1, /admin/v1), SPEC §4: `{"error": code, "message": text}`.
 * Each code has one HTTP status, so no handler picks a status on its own.
 */
export const API_ERRORS = {
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
  too_many_requests: 429,
  server_error: 500,
  temporarily_unavailable: 503,
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

/**
 * A failure the caller can act on. `message` goes to the caller and must help a developer without
 * helping an attacker; `logDetail` (which check failed, on which input) goes only to the log.
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

/** The request id of the audit log: the caller's `X-Request-Id` when sane, else a new one. */
export function requestId(req: Request): string {
  const existing = locals(req).requestId;
  if (typeof existing === 'string') return existing;
  const header = req.get('x-request-id');
  const id = header && /^[\w.:-]{1,128}$/.test(header) ? header : crypto.randomUUID();
  locals(req).requestId = id;
  return id;
}

function locals(req: Request): Record<string, unknown> {
  return (req.res?.locals ?? {}) as Record<string, unknown>;
}

/** JSON bodies up to 64 KiB (SPEC §7); larger ones are refused from Content-Length before any parsing. */
export function jsonBody(): RequestHandler {
  return express.json({ limit: '64kb', strict: true, type: () => true });
}

/** Runs the JSON body parser inside a handler: routes that must authenticate first read the body only afterwards. */
export function readJsonBody(req: Request, res: Response): Promise<void> {
  const parser = jsonBody();
  return new Promise((resolve, reject) => parser(req, res, (error?: unknown) => (error ? reject(error) : resolve())));
}

/** Every request gets an id, echoed in `X-Request-Id` and written into audit events. */
export const withRequestId: RequestHandler = (req, res, next) => {
  res.set('X-Request-Id', requestId(req));
  next();
};

/** The one serializer for the JSON APIs: ApiError as is, body-parser errors mapped, anything else a logged 500. */
export function apiErrorHandler(logger: Logger) {
  return (error: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const apiError = toApiError(error);
    if (apiError.status >= 500) {
      logger.error({ err: error, requestId: requestId(req), path: req.path }, 'unhandled error');
    } else if (apiError.options.logDetail) {
      logger.info({ requestId: requestId(req), path: req.path, code: apiError.code, detail: apiError.options.logDetail }, 'request refused');
    }
    res.status(apiError.status).set('Cache-Control', 'no-store');
    for (const [name, value] of Object.entries(apiError.options.headers ?? {})) res.set(name, value);
    if (apiError.status === 401) res.set('WWW-Authenticate', `Bearer error="${apiError.code === 'unauthorized' ? 'invalid_request' : 'invalid_token'}"`);
    res.json({ error: apiError.code, message: apiError.message, ...apiError.options.details });
  };
}

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const parserError = error as { type?: string; status?: number };
  if (parserError.type === 'entity.too.large') return new ApiError('payload_too_large', 'request body is larger than 64 KiB');
  if (parserError.type === 'entity.parse.failed') return new ApiError('invalid_request', 'request body is not valid JSON');
  if (parserError.type === 'encoding.unsupported' || parserError.type === 'charset.unsupported') {
    return new ApiError('invalid_request', 'request body must be UTF-8 JSON');
  }
  if (typeof parserError.status === 'number' && parserError.status >= 400 && parserError.status < 500) {
    return new ApiError('invalid_request', 'malformed request');
  }
  return new ApiError('server_error', 'internal error; the request id is in the X-Request-Id header');
}

/** The bearer token of `Authorization`, or an `unauthorized` error saying what is missing. */
export function bearerToken(req: Request): string {
  const header = req.get('authorization');
  if (!header) throw new ApiError('unauthorized', 'missing Authorization header: send "Authorization: Bearer <access token>"');
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  if (!match) throw new ApiError('unauthorized', 'Authorization header must be "Bearer <access token>"');
  return match[1] as string;
}
