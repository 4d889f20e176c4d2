import type { ApiKeyRow } from '../db/schema';
import { API_KEY_ID } from './format';
import type { ApiKeyCursor } from './repository';

/** An API key as every list and show prints it: never the key, never its hash. */
export interface ApiKeyView {
  id: string;
  name: string;
  user_id: string | null;
  client_id: string | null;
  tenant_id: string | null;
  scopes: string[];
  /** From the key alone; a disabled owner makes an `active` key inactive too. */
  status: 'active' | 'expired' | 'revoked';
  expires_at: string | null;
  created_at: string;
  created_by: string;
  last_used_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
}

export function apiKeyView(row: ApiKeyRow, now: Date): ApiKeyView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  const status = row.revoked_at ? 'revoked' : row.expires_at && row.expires_at.getTime() <= now.getTime() ? 'expired' : 'active';
  return {
    id: row.id,
    name: row.name,
    user_id: row.user_id,
    client_id: row.client_id,
    tenant_id: row.tenant_id,
    scopes: [...row.scopes],
    status,
    expires_at: iso(row.expires_at),
    created_at: row.created_at.toISOString(),
    created_by: row.created_by,
    last_used_at: iso(row.last_used_at),
    revoked_at: iso(row.revoked_at),
    revoked_by: row.revoked_by,
  };
}

/** What creation answers, once: the view and the key. */
export type CreatedApiKeyView = ApiKeyView & { key: string };

const CURSOR_TEXT = /^[A-Za-z0-9_-]{1,200}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * The `next_cursor` of a page of keys: opaque (base64url of a small versioned JSON document),
 * validated strictly when it comes back, so a tampered cursor is refused before any query. It holds
 * nothing the page itself does not show (the last key's creation time and id).
 */
export function encodeApiKeyCursor(cursor: ApiKeyCursor): string {
  return Buffer.from(JSON.stringify({ v: 1, k: 'api-keys', at: cursor.createdAt.toISOString(), id: cursor.id })).toString('base64url');
}

/** The position of a cursor made by encodeApiKeyCursor, or undefined for anything else. */
export function decodeApiKeyCursor(text: string): ApiKeyCursor | undefined {
  if (!CURSOR_TEXT.test(text)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const { v, k, at, id, ...rest } = json as Record<string, unknown>;
  if (v !== 1 || k !== 'api-keys' || Object.keys(rest).length > 0) return undefined;
  if (typeof at !== 'string' || !ISO_MS.test(at) || typeof id !== 'string' || !API_KEY_ID.test(id)) return undefined;
  const createdAt = new Date(at);
  if (Number.isNaN(createdAt.getTime()) || createdAt.toISOString() !== at) return undefined;
  return { createdAt, id };
}
