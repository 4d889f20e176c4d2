import type { NextFunction, Request, Response } from 'express';
import { parseDuration } from '../config/duration';
import { ApiError } from '../http/api-error';
import { API_KEY_ID } from './format';
import { ApiKeyError } from './service';
import { quoted } from '../text';

/** Shared pieces of the two HTTP surfaces of API keys (/auth/v1/api-keys, /admin/v1/api-keys). */

/** ApiKeyError → the JSON API's error; anything else is rethrown. */
export function apiKeyError(error: unknown): never {
  if (error instanceof ApiKeyError) {
    switch (error.code) {
      case 'ERR_API_KEY_NOT_FOUND':
        throw new ApiError('not_found', error.message);
      case 'ERR_TOO_MANY_KEYS':
        throw new ApiError('conflict', error.message);
      default:
        throw new ApiError('invalid_request', error.message);
    }
  }
  throw error;
}

export function requestedExpiry(body: { expires_in?: string; expires_at?: string }, now: Date): Date | undefined {
  if (body.expires_in !== undefined && body.expires_at !== undefined) throw new ApiError('invalid_request', 'give expires_in or expires_at, not both');
  if (body.expires_in !== undefined) {
    const ms = parseDuration(body.expires_in);
    if (ms === undefined || ms <= 0) throw new ApiError('invalid_request', `expires_in: ${quoted(body.expires_in)} is not a duration such as 30d or 12h`);
    return new Date(now.getTime() + ms);
  }
  return body.expires_at === undefined ? undefined : new Date(body.expires_at);
}

/** A key id from the path; anything that cannot be one is not found without a query. */
export function keyIdParam(req: Request): string {
  const id = String(req.params.id);
  if (!API_KEY_ID.test(id)) throw new ApiError('not_found', `no API key ${quoted(id)}`);
  return id;
}

/**
 * docs/security.md "Abuse limits and the threat model": routes are exact and case-sensitive. Express matches a mount path case-insensitively
 * and ignores a trailing slash; a router mounted at `base` passes anything else on (to a 404).
 */
export function exactMount(base: string) {
  return (req: Request, _res: Response, next: NextFunction): void => {
    const path = req.originalUrl.split('?')[0] ?? '';
    if (req.baseUrl !== base || path.endsWith('/')) return next('router');
    next();
  };
}
