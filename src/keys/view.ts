import type { SigningKeyRow } from '../db/schema';

/** The `keys list` JSON shape (SPEC §6). */
export interface KeyView {
  kid: string;
  state: string;
  alg: string;
  bits: number;
  created_at: string;
  published_at: string | null;
  activated_at: string | null;
  deactivated_at: string | null;
  retired_at: string | null;
  mek_id: string | null;
}

export function keyView(row: SigningKeyRow): KeyView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    kid: row.kid,
    state: row.state,
    alg: row.alg,
    bits: row.bits,
    created_at: row.created_at.toISOString(),
    published_at: iso(row.published_at),
    activated_at: iso(row.activated_at),
    deactivated_at: iso(row.deactivated_at),
    retired_at: iso(row.retired_at),
    mek_id: row.mek_id,
  };
}
