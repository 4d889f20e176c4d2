import type { ApiKeyRow } from '../db/schema';

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

