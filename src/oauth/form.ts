import type { IncomingMessage } from 'node:http';
import { InvalidRequest, PayloadTooLarge } from './errors';
import type { FormParams } from './types';
import { quoted } from '../text';

/**
 * The client went away before its request was whole (connection reset or closed mid-body). Not an
 * error of ours: nothing is answered, nothing is counted as a failure, and it is logged at debug.
 */
export class ClientGone extends Error {
  readonly code = 'ERR_CLIENT_GONE';
  constructor() {
    super('the client closed the connection before the request body was complete');
    this.name = 'ClientGone';
  }
}

/** docs/security.md "Abuse limits and the threat model": bodies over 64 KiB are refused with 413 before they are parsed. */
export const MAX_BODY_BYTES = 64 * 1024;

export type { FormParams } from './types';

const FORM_TYPE = /^application\/x-www-form-urlencoded\s*(;|$)/i;

/**
 * Reads an `application/x-www-form-urlencoded` body of at most MAX_BODY_BYTES. A declared length over
 * the limit is refused before a byte is read; a chunked body is refused as soon as it passes it.
 */
export function readForm(req: IncomingMessage): Promise<FormParams> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) {
    return Promise.reject(new PayloadTooLarge(`request body over ${MAX_BODY_BYTES} bytes`));
  }
  if (!FORM_TYPE.test(req.headers['content-type'] ?? '')) {
    return Promise.reject(new InvalidRequest('the body must be application/x-www-form-urlencoded'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.off('data', onData);
        req.off('end', onEnd);
        reject(new PayloadTooLarge(`request body over ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      try {
        resolve(parseForm(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8')));
      } catch (error) {
        reject(error);
      }
    };
    const onGone = () => {
      if (!req.complete) reject(new ClientGone());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}

/** RFC 6749 §3.2: no parameter may appear more than once. */
export function parseForm(body: string): FormParams {
  const params = new Map<string, string>();
  const seen = new Set<string>();
  for (const [name, value] of new URLSearchParams(body)) {
    if (seen.has(name)) throw new InvalidRequest(`parameter ${quoted(name)} appears more than once`);
    seen.add(name);
    if (value !== '') params.set(name, value);
  }
  return params;
}
