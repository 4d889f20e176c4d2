import type { Request, RequestHandler } from 'express';
import type { z } from 'zod';
import { MAX_JSON_DEPTH } from '../json-depth';
import { quoted, textProblem } from '../text';
import { ApiError } from './api-error';

/** Input checks of the JSON APIs: text Postgres can hold, well-formed query strings, zod schemas with a 400 naming where, the bearer token. */

/**
 * Refuses input that Postgres cannot store as text (a NUL character, a lone surrogate) anywhere in
 * `value`: strings, object keys, nested arrays; and input nested more than MAX_JSON_DEPTH levels deep,
 * before anything recursive (JSON.stringify, zod) can run out of stack on it. Iterative, so a deeply
 * nested body cannot exhaust the stack here either. `where` names the input in the message (`body`,
 * `query`); the value itself is never echoed.
 */
export function checkInputText(value: unknown, where: string): void {
  const pending: Array<{ value: unknown; path: string; depth: number }> = [{ value, path: '', depth: 0 }];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    const { value: current, path } = item;
    if (typeof current === 'string') {
      const problem = textProblem(current);
      if (problem) throw new ApiError('invalid_request', `${where}${path ? ` ${quoted(path)}` : ''}: ${problem}`);
      continue;
    }
    if (current === null || typeof current !== 'object') continue;
    const depth = item.depth + 1;
    if (depth > MAX_JSON_DEPTH) throw new ApiError('invalid_request', `${where} is nested more than ${MAX_JSON_DEPTH} levels deep`);
    if (Array.isArray(current)) {
      current.forEach((element, index) => pending.push({ value: element, path: `${path}[${index}]`, depth }));
    } else {
      for (const [key, element] of Object.entries(current)) {
        const keyProblem = textProblem(key);
        if (keyProblem) throw new ApiError('invalid_request', `${where}: a key ${keyProblem}`);
        pending.push({ value: element, path: path ? `${path}.${key}` : key, depth });
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

/** The bearer token of `Authorization`, or an `unauthorized` error saying what is missing. */
export function bearerToken(req: Request): string {
  const header = req.get('authorization');
  if (!header) throw new ApiError('unauthorized', 'missing Authorization header: send "Authorization: Bearer <access token>"');
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  if (!match) throw new ApiError('unauthorized', 'Authorization header must be "Bearer <access token>"');
  return match[1] as string;
}
