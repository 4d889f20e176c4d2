import type { Config } from '../config';
import type { FailureLimiter } from '../ratelimit';
import type { SignInLimiter } from './service';

/**
 * SPEC §7 sign-in limits on the shared Postgres failure counter: keys `email:<address>` and
 * `ip:<address>` become `signin:email:...` / `signin:ip:...` with their own limits and window.
 */
export function signInLimiter(failures: FailureLimiter, limits: Config['signInFailureLimits']): SignInLimiter {
  const namespaced = (keys: readonly string[]) => keys.map((k) => `signin:${k}`);
  return {
    async retryAfterSeconds(keys) {
      return failures.retryAfterSeconds(namespaced(keys));
    },
    async recordFailure(keys) {
      const counted = keys.map((key) => ({
        key: `signin:${key}`,
        rule: { limit: key.startsWith('email:') ? limits.perEmail : limits.perIp, windowMs: limits.windowMs },
      }));
      const wait = await failures.recordFailure(counted);
      if (wait === 0) return [];
      // Which of the keys is now blocked, for the audit event.
      return keys.filter((key) => failures.retryAfterSeconds([`signin:${key}`]) > 0);
    },
  };
}
