import type { SigningKeyRow } from '../db/schema';

/** The `keys list` JSON shape (docs/operating.md "The admin CLI". */
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

/** The lifecycle settings that decide when a key changes state (a subset of LifecyclePolicy). */
export interface TransitionPolicy {
  rotationIntervalMs: number;
  prepublishMs: number;
  retentionMs: number;
}

/** What happens to a key next, and when it is due (`keys list`, `status`). */
export interface KeyTransition {
  /** `promotion` (next → current), `deactivation` (current → previous), `retirement` (previous → retired); null once a key is retired or revoked. */
  next_transition: 'promotion' | 'deactivation' | 'retirement' | null;
  /**
   * When the rotation check may make it (it does so at its first run from then on, IDP_ROTATION_CRON):
   * promotion and deactivation at max(current.activated_at + IDP_KEY_ROTATION_INTERVAL,
   * next.published_at + IDP_KEY_PREPUBLISH); retirement at deactivated_at + IDP_KEY_RETENTION.
   * Null when it cannot be known yet (a current key with no next key: the check creates one first).
   */
  next_transition_at: string | null;
}

/** The next transition of `row` among `rows` (every live key), by the same rules as `planRotation`. */
export function keyTransition(row: SigningKeyRow, rows: readonly SigningKeyRow[], policy: TransitionPolicy): KeyTransition {
  const at = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  const current = rows.find((k) => k.state === 'current');
  const next = rows.find((k) => k.state === 'next');
  // Both limits must have passed; a missing current key lets the next one take over at once.
  const promotionDue = () => {
    if (!next?.published_at) return undefined;
    const published = next.published_at.getTime() + policy.prepublishMs;
    return current?.activated_at ? Math.max(current.activated_at.getTime() + policy.rotationIntervalMs, published) : next.published_at.getTime();
  };
  switch (row.state) {
    case 'next':
      return { next_transition: 'promotion', next_transition_at: at(promotionDue()) };
    case 'current':
      return { next_transition: 'deactivation', next_transition_at: at(promotionDue()) };
    case 'previous':
      return { next_transition: 'retirement', next_transition_at: at(row.deactivated_at ? row.deactivated_at.getTime() + policy.retentionMs : undefined) };
    default:
      return { next_transition: null, next_transition_at: null };
  }
}
