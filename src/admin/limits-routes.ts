import type { Router } from 'express';
import { ApiError } from '../http/api-error';
import { requestId } from '../http/request';
import { blockView, clearBlock, isLimitKey } from '../ratelimit/operators';
import { type Guard } from './http';

/** /admin/v1/limits (docs/security.md "Abuse limits and the threat model": the blocks in force, and lifting one on every instance. */
export function limitRoutes(router: Router, guard: Guard): void {
  router.get(
    '/limits',
    guard('limits:read', async (_req, res, _caller, deps) => {
      const now = deps.now();
      res.json({ blocks: (await deps.failures.listBlocks()).map((block) => blockView(block, now)) });
    }),
  );
  router.delete(
    '/limits/:key',
    guard('limits:write', async (req, res, caller, deps) => {
      const key = String(req.params.key);
      if (!isLimitKey(key)) throw new ApiError('invalid_request', 'not a limit key such as oauth:ip:203.0.113.7 (see GET /admin/v1/limits)');
      const cleared = await clearBlock(deps.failures, deps.db, key, { actor: caller.actor, at: deps.now(), requestId: requestId(req) });
      if (!cleared) throw new ApiError('not_found', 'nothing is counted under this key');
      res.json({ cleared: key });
    }),
  );
}
