import crypto from 'node:crypto';
import type { Request, RequestHandler } from 'express';

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

/** Every request gets an id, echoed in `X-Request-Id` and written into audit events. */
export const withRequestId: RequestHandler = (req, res, next) => {
  res.set('X-Request-Id', requestId(req));
  next();
};
