import crypto from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from '../observability/logger';
import type { z } from 'zod';
import { quoted, textProblem } from '../text';
import { ServiceError, type ServiceErrorCode } from '../errors';

/**
 * The error codes of the JSON APIs (/auth/v1, /admin/v1), README: "HTTP": `{"error": code, "message": text}`.
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

/** The largest JSON body the APIs read (README: "Abuse limits"). */
export const JSON_BODY_LIMIT_BYTES = 64 * 1024;

const JSON_MEDIA_TYPE = /^application\/json[ \t]*(?:;|$)/i;
const CHARSET = /;[ \t]*charset[ \t]*=[ \t]*"?([^";\s]*)"?/i;

/**
 * Reads a JSON body into `req.body` (undefined when the request has none), refusing before any
 * byte is read what it would refuse anyway:
 * - a body without `Content-Type: application/json` (UTF-8): 415, so that a cross-site form or
 *   `text/plain` POST never reaches a handler; a request without a body may omit the header;
 * - a `Content-Length` over 64 KiB: 413 at once, and the connection is closed rather than drained;
 *   a chunked body is cut off the same way when it passes 64 KiB;
 * - anything that is not UTF-8 JSON with an object or array at the top, or that holds a string
 *   Postgres cannot store (a NUL character, a lone surrogate) anywhere in its keys or values: 400.
 */
export async function readJsonBody(req: Request, _res?: Response): Promise<void> {
  req.body = undefined;
  const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
  const chunked = req.headers['transfer-encoding'] !== undefined;
  if (!chunked && (declared === undefined || declared === 0)) return;
  const type = req.headers['content-type'] ?? '';
  if (!JSON_MEDIA_TYPE.test(type)) {
    throw new ApiError('unsupported_media_type', 'the request body must be JSON, sent with "Content-Type: application/json"', { headers: { Connection: 'close' } });
  }
  const charset = CHARSET.exec(type)?.[1]?.toLowerCase();
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new ApiError('unsupported_media_type', 'the request body must be UTF-8 JSON', { headers: { Connection: 'close' } });
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    throw new ApiError('unsupported_media_type', 'the request body must not be compressed', { headers: { Connection: 'close' } });
  }
  if (declared !== undefined && declared > JSON_BODY_LIMIT_BYTES) throw tooLarge();
  const bytes = await readAtMost(req, JSON_BODY_LIMIT_BYTES);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError('invalid_request', 'request body is not valid UTF-8');
  }
  if (!/^[\s]*[[{]/.test(text)) throw new ApiError('invalid_request', 'request body must be a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError('invalid_request', 'request body is not valid JSON');
  }
  checkInputText(value, 'body');
  req.body = value;
}

function tooLarge(): ApiError {
  // The rest of the body is never read: answering and closing costs the server nothing more.
  return new ApiError('payload_too_large', `request body is larger than ${JSON_BODY_LIMIT_BYTES / 1024} KiB`, { headers: { Connection: 'close' } });
}

/** The request's body bytes, or a 413 as soon as more than `limit` arrive (the rest is left unread). */
function readAtMost(req: Request, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (error?: Error) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (error) {
        req.pause();
        reject(error);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) done(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => done();
    // A client that goes away mid-body: nobody reads the answer; it is not a server error.
    const onError = () => done(new ApiError('invalid_request', 'the request body was cut short'));
    const onClose = () => done(new ApiError('invalid_request', 'the request body was cut short'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

/** `readJsonBody` as middleware, for routes that need no authentication before the body. */
export function jsonBody(): RequestHandler {
  return (req, res, next) => {
    readJsonBody(req, res).then(() => next(), next);
  };
}

/**
 * Refuses input that Postgres cannot store as text (a NUL character, a lone surrogate) anywhere in
 * `value`: strings, object keys, nested arrays. Iterative, so a deeply nested body cannot exhaust
 * the stack. `where` names the input in the message (`body`, `query`); the value itself is never echoed.
 */
export function checkInputText(value: unknown, where: string): void {
  const pending: Array<{ value: unknown; path: string }> = [{ value, path: '' }];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const { value: current, path } = item;
    if (typeof current === 'string') {
      const problem = textProblem(current);
      if (problem) throw new ApiError('invalid_request', `${where}${path ? ` ${quoted(path)}` : ''}: ${problem}`);
    } else if (Array.isArray(current)) {
      current.forEach((element, index) => pending.push({ value: element, path: `${path}[${index}]` }));
    } else if (current !== null && typeof current === 'object') {
      for (const [key, element] of Object.entries(current)) {
        const keyProblem = textProblem(key);
        if (keyProblem) throw new ApiError('invalid_request', `${where}: a key ${keyProblem}`);
        pending.push({ value: element, path: path ? `${path}.${key}` : key });
      }
    }
  }
}

/**
 * Refuses a query string that is not percent-encoded UTF-8 (`%ED%A0%80`, a lone surrogate's
 * bytes, or `%FF`: the query parser would silently turn them into U+FFFD) or whose values Postgres
 * cannot store (`%00`).
 */
export function checkQuery(req: Request): void {
  const url = req.originalUrl || req.url;
  const start = url.indexOf('?');
  if (start >= 0) {
    for (const part of url.slice(start + 1).split('&')) {
      try {
        decodeURIComponent(part.replace(/\+/g, ' '));
      } catch {
        throw new ApiError('invalid_request', 'the query string is not percent-encoded UTF-8');
      }
    }
  }
  checkInputText(req.query, 'query parameter');
}

/** `checkQuery` as middleware. */
export const checkQueryText: RequestHandler = (req, _res, next) => {
  checkQuery(req);
  next();
};

/** Every request gets an id, echoed in `X-Request-Id` and written into audit events. */
export const withRequestId: RequestHandler = (req, res, next) => {
  res.set('X-Request-Id', requestId(req));
  next();
};

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

/** The bearer token of `Authorization`, or an `unauthorized` error saying what is missing. */
export function bearerToken(req: Request): string {
  const header = req.get('authorization');
  if (!header) throw new ApiError('unauthorized', 'missing Authorization header: send "Authorization: Bearer <access token>"');
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  if (!match) throw new ApiError('unauthorized', 'Authorization header must be "Bearer <access token>"');
  return match[1] as string;
}

/** Input read with a zod schema; the first problem becomes a 400 naming where it is (`body: name: …`). */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${fieldPath(issue.path)}: ` : '';
    // zod's own message for an unknown key repeats it whole; keys are the caller's text.
    const message = issue?.code === 'unrecognized_keys' ? `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(quoted).join(', ')}` : (issue?.message ?? 'invalid');
    throw new ApiError('invalid_request', `${what}: ${where}${message}`);
  }
  return result.data;
}

/** A field's path for a message: our field names as they are, anything else (a caller's key) quoted and cut. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === 'number' ? String(part) : typeof part === 'string' && /^[A-Za-z0-9_]{1,32}$/.test(part) ? part : quoted(String(part)))).join('.');
}
