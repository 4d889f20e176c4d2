import crypto from 'node:crypto';
import { z } from 'zod';
import { PRESENTED_CLIENT_ID } from '../clients/client-id';
import type { MekProvider } from '../crypto/mek';
import { ApiError } from './api-error';

/** A position in a keyset page over (timestamp, id), newest first. */
export interface KeysetPosition {
  at: Date;
  id: string;
}

/**
 * The page of a newest-first keyset read of `limit + 1` rows: the first `limit`, and where the next
 * page starts (the last of them) when the extra row said there is one.
 */
export function keysetPage<R>(rows: readonly R[], limit: number, positionOf: (row: R) => KeysetPosition): { items: R[]; next?: KeysetPosition } {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return rows.length > limit && last !== undefined ? { items, next: positionOf(last) } : { items };
}

/** What a cursor pages over; a cursor of one list is refused by another. */
export type CursorKind = 'users' | 'audit' | 'api-keys' | 'clients';

// Version 2 added the MAC; version 1 cursors are refused.
const CURSOR_VERSION = 2;
const CURSOR_TEXT = /^[A-Za-z0-9_-]+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * The row ids of each list: users and audit events are UUIDs, API keys 16 base62 characters. A
 * client's id is one this server issued (base64url, at most 128) or the URL of a Client ID Metadata
 * Document (at most 256): printable ASCII either way, the presented form of src/clients/client-id.ts.
 */
const ROW_ID: Record<CursorKind, RegExp> = { users: UUID, audit: UUID, 'api-keys': /^[0-9A-Za-z]{16}$/, clients: PRESENTED_CLIENT_ID };
/**
 * The longest cursor text of each list, checked before anything is decoded (and the bound of its
 * `cursor` query parameter). A clients cursor of the longest id, each of its 256 characters escaped
 * in the JSON (`"` or `\`), is 786 characters; the others' are under 200.
 */
export const CURSOR_MAX_LENGTH: Readonly<Record<CursorKind, number>> = { users: 400, audit: 400, 'api-keys': 400, clients: 1024 };

// Exactly what `encode` writes: the timestamp as toISOString() prints it, so that it round-trips
// (no year -5000 or 2026-02-31), and the row's id (checked per kind below; none is longer than 256).
const payload = z
  .object({
    v: z.literal(CURSOR_VERSION),
    k: z.enum(['users', 'audit', 'api-keys', 'clients']),
    at: z.iso.datetime({ precision: 3 }).refine((t) => {
      const date = new Date(t);
      return !Number.isNaN(date.getTime()) && date.toISOString() === t;
    }),
    id: z.string().max(256),
  })
  .strict();

/** The HKDF label of the cursor key (src/crypto/mek.ts `deriveKeys`). */
const CURSOR_KEY_LABEL = 'paging cursor v2';
const TAG_BYTES = 16;

function tag(key: Buffer, body: Buffer): Buffer {
  return crypto.createHmac('sha256', key).update(body).digest().subarray(0, TAG_BYTES);
}

/**
 * The `next_cursor` of a page: opaque to callers, base64url of a small versioned JSON document and
 * its HMAC-SHA256 (truncated to 16 bytes), so an edited, truncated or foreign cursor is a 400 and
 * never reaches a query (docs/http-api.md "Bad input, exact routes and names". It carries nothing the caller could not read on the
 * page itself (the last row's time and id); the MAC is there so that only positions we handed out
 * are ever queried.
 *
 * The key is derived from the MEK ring (HKDF, `deriveKeys`) rather than drawn per process: every
 * instance and worker shares the ring, so each accepts the others' cursors, and the key is as
 * secret as the MEK without a table of its own. A cursor is signed under the primary and accepted
 * under any key of the ring, so one handed out before a MEK rotation keeps working until its MEK
 * leaves the ring.
 */
export class CursorCodec {
  private readonly keys: readonly Buffer[];

  constructor(mek: Pick<MekProvider, 'deriveKeys'>) {
    this.keys = mek.deriveKeys(CURSOR_KEY_LABEL);
    if (this.keys.length === 0) throw new Error('CursorCodec: the MEK ring has no key');
  }

  encode(kind: CursorKind, position: KeysetPosition): string {
    const body = Buffer.from(JSON.stringify({ v: CURSOR_VERSION, k: kind, at: position.at.toISOString(), id: position.id }));
    return Buffer.concat([body, tag(this.keys[0] as Buffer, body)]).toString('base64url');
  }

  /** The position of a cursor this codec's ring encoded for `kind`, or undefined for anything else. */
  decode(kind: CursorKind, text: string): KeysetPosition | undefined {
    if (text.length > CURSOR_MAX_LENGTH[kind] || !CURSOR_TEXT.test(text)) return undefined;
    const bytes = Buffer.from(text, 'base64url');
    // Only the canonical spelling: base64url's spare low bits of the last character must be zero.
    if (bytes.length <= TAG_BYTES || bytes.toString('base64url') !== text) return undefined;
    const body = bytes.subarray(0, bytes.length - TAG_BYTES);
    const mac = bytes.subarray(bytes.length - TAG_BYTES);
    if (!this.keys.some((key) => crypto.timingSafeEqual(tag(key, body), mac))) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      return undefined;
    }
    // Authentic, so this only guards against our own mistakes (and a cursor of another list).
    const parsed = payload.safeParse(json);
    if (!parsed.success || parsed.data.k !== kind || !ROW_ID[kind].test(parsed.data.id)) return undefined;
    // UUIDs compare in lower case; base62 ids and client ids are case-sensitive.
    return { at: new Date(parsed.data.at), id: ROW_ID[kind] === UUID ? parsed.data.id.toLowerCase() : parsed.data.id };
  }
}

/**
 * The keyset position of a list's `cursor` query parameter (undefined on the first page), or a 400
 * for anything this endpoint did not hand out: the one reading of a cursor every paged list shares.
 */
export function pagePosition(cursors: CursorCodec, kind: CursorKind, text: string | undefined): KeysetPosition | undefined {
  if (text === undefined) return undefined;
  const position = cursors.decode(kind, text);
  if (!position) throw new ApiError('invalid_request', 'cursor: not a cursor returned by this endpoint (pass next_cursor back unchanged)');
  return position;
}
