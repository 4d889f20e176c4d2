import { z } from 'zod';

/** A position in a keyset page over (timestamp, id), newest first. */
export interface KeysetPosition {
  at: Date;
  id: string;
}

/** What a cursor pages over; a cursor of one list is refused by another. */
export type CursorKind = 'users' | 'audit' | 'api-keys';

const CURSOR_VERSION = 1;
const CURSOR_TEXT = /^[A-Za-z0-9_-]{1,400}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The row ids of each list: users and audit events are UUIDs, API keys 16 base62 characters. */
const ROW_ID: Record<CursorKind, RegExp> = { users: UUID, audit: UUID, 'api-keys': /^[0-9A-Za-z]{16}$/ };

// Exactly what encodeCursor writes: the timestamp as toISOString() prints it, so that it round-trips
// (no year -5000 or 2026-02-31), and the row's id (checked per kind below).
const payload = z
  .object({
    v: z.literal(CURSOR_VERSION),
    k: z.enum(['users', 'audit', 'api-keys']),
    at: z.iso.datetime({ precision: 3 }).refine((t) => {
      const date = new Date(t);
      return !Number.isNaN(date.getTime()) && date.toISOString() === t;
    }),
    id: z.string().max(64),
  })
  .strict();

/**
 * The `next_cursor` of a page: opaque to callers (base64url of a small versioned JSON document),
 * validated strictly when it comes back, so a tampered cursor is a 400 and never reaches a query.
 * It carries nothing the caller could not read on the page itself (the last row's time and id).
 */
export function encodeCursor(kind: CursorKind, position: KeysetPosition): string {
  return Buffer.from(JSON.stringify({ v: CURSOR_VERSION, k: kind, at: position.at.toISOString(), id: position.id })).toString('base64url');
}

/** The position of a cursor returned by `encodeCursor(kind, …)`, or undefined for anything else. */
export function decodeCursor(kind: CursorKind, text: string): KeysetPosition | undefined {
  if (!CURSOR_TEXT.test(text)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const parsed = payload.safeParse(json);
  if (!parsed.success || parsed.data.k !== kind || !ROW_ID[kind].test(parsed.data.id)) return undefined;
  // UUIDs compare in lower case; base62 ids are case-sensitive.
  return { at: new Date(parsed.data.at), id: ROW_ID[kind] === UUID ? parsed.data.id.toLowerCase() : parsed.data.id };
}
