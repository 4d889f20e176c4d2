import type { Request, RequestHandler, Response } from 'express';
import { ApiError } from './api-error';
import { checkInputText } from './input';

/** Reading a JSON API request body (docs/http-api.md "Bad input, exact routes and names": media type, size, UTF-8, JSON, text Postgres can hold. */

/** The largest JSON body the APIs read (docs/security.md "Abuse limits and the threat model". */
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
 * - anything that is not UTF-8 JSON with an object or array at the top, that holds a string
 *   Postgres cannot store (a NUL character, a lone surrogate) anywhere in its keys or values, or
 *   that is nested more than MAX_JSON_DEPTH (32) levels deep: 400.
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
