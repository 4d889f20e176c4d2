import type { Router } from 'express';
import { parseInput as parse } from '../http/input';
import { keyView } from '../keys/view';
import { revokeKeyBody, rotateKeysBody } from './schemas';
import { keyError, type Guard } from './http';

/** /admin/v1/keys (docs/http-api.md "Admin tokens and the admin API (`/admin/v1`)". */
export function keyRoutes(router: Router, guard: Guard): void {
  router.get(
    '/keys',
    guard('keys:read', async (_req, res, _caller, deps) => {
      res.json({ keys: (await deps.lifecycle.list()).map(keyView) });
    }),
  );
  router.post(
    '/keys/rotate',
    guard('keys:rotate', async (req, res, caller, deps) => {
      const body = parse(rotateKeysBody, req.body ?? {}, 'body');
      const changes = await deps.lifecycle.rotate(caller.actor, { force: body.force, reason: body.reason }).catch(keyError);
      await deps.keys.refresh();
      res.json({ rotated: true, changes });
    }),
  );
  router.post(
    '/keys/:kid/revoke',
    guard('keys:revoke', async (req, res, caller, deps) => {
      const body = parse(revokeKeyBody, req.body ?? {}, 'body');
      const result = await deps.lifecycle.revoke(caller.actor, String(req.params.kid), body.reason ?? 'revoked through the admin API').catch(keyError);
      await deps.keys.refresh();
      res.json({
        revoked: result.kid,
        previous_state: result.previousState,
        changes: result.changes,
        verifier_cache_seconds: result.verifierCacheSeconds,
      });
    }),
  );
}
