import type { Kysely } from 'kysely';
import { recordAudit } from '../audit';
import type { Database } from '../db/schema';
import type { ActiveBlock, FailureLimiter } from './index';

/** What `idp limits list` and `GET /admin/v1/limits` show of a block. */
export interface BlockView {
  key: string;
  failures: number;
  blocked_until: string;
  retry_after_seconds: number;
}

export function blockView(block: ActiveBlock, now: Date): BlockView {
  return {
    key: block.key,
    failures: block.failures,
    blocked_until: block.blockedUntil.toISOString(),
    retry_after_seconds: Math.max(1, Math.ceil((block.blockedUntil.getTime() - now.getTime()) / 1000)),
  };
}

/** Keys are namespaced printable text (`oauth:ip:203.0.113.7`); anything else cannot name a counter. */
const LIMIT_KEY = /^(oauth|signin|signup|register|apikey):[\x21-\x7e]{1,600}$/;

export function isLimitKey(key: string): boolean {
  return LIMIT_KEY.test(key);
}

/**
 * Lifts one block on every instance and forgets its count (an operator's decision, e.g. an office
 * NAT blocked after a misconfigured script); audited. False when nothing is counted under `key`.
 */
export async function clearBlock(
  limiter: FailureLimiter,
  db: Kysely<Database>,
  key: string,
  audit: { actor: string; at: Date; requestId?: string },
): Promise<boolean> {
  const cleared = await limiter.clear(key);
  if (cleared) await recordAudit(db, { at: audit.at, actor: audit.actor, action: 'limit.cleared', target: key, requestId: audit.requestId });
  return cleared;
}
