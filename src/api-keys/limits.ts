import type { Config } from '../config';
import { TooManyFailures } from '../oauth/errors';
import type { FailureKey, FailureLimiter, FailureRule } from '../ratelimit';

/** Failed API-key presentations per address (SPEC §7, §8): 20 a minute, like failed client authentications. */
const FAILURES_PER_ADDRESS: FailureRule = { limit: 20, windowMs: 60_000 };

/**
 * The one place that decides how a failed key presentation is counted: per address, unless the
 * address is on IDP_RATE_LIMIT_ALLOWLIST. Called on the failure path only, so a correct key is never
 * refused: a blocked address gets 429 (and the attempt is not counted); otherwise the failure is
 * counted and the caller refuses the key.
 */
export async function apiKeyPresentationFailed(limiter: FailureLimiter, settings: Pick<Config, 'rateLimitAllowlist'>, ip: string): Promise<void> {
  const keys: FailureKey[] = settings.rateLimitAllowlist(ip) ? [] : [{ key: `apikey:ip:${ip}`, rule: FAILURES_PER_ADDRESS }];
  if (keys.length === 0) return;
  const wait = limiter.retryAfterSeconds(keys.map((k) => k.key));
  if (wait > 0) throw new TooManyFailures(wait);
  await limiter.recordFailure(keys);
}
