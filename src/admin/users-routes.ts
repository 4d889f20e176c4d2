import type { Router } from 'express';
import { quoted } from '../text';
import { recordAudit } from '../audit';
import { ApiError } from '../http/api-error';
import { requestId } from '../http/request';
import { parseInput as parse } from '../http/input';
import { findTenant } from '../tenants/repository';
import { findUser, listUsers, publicUser, revokeUserSessions, updateUser } from '../users/repository';
import { normaliseEmail } from '../users/credentials';
import { listUsersQuery, patchUserBody } from './schemas';
import { type Guard } from './http';
import { pagePosition } from '../http/cursor';

/** /admin/v1/users. */
export function userRoutes(router: Router, guard: Guard): void {
  router.get(
    '/users',
    guard('users:read', async (req, res, _caller, deps) => {
      const query = parse(listUsersQuery, req.query, 'query');
      const page = await listUsers(deps.db, {
        email: query.email === undefined ? undefined : normaliseEmail(query.email),
        tenantId: query.tenant_id,
        limit: query.limit,
        after: pagePosition(deps.cursors, 'users', query.cursor),
      });
      res.json({ users: page.users.map(publicUser), next_cursor: page.next ? deps.cursors.encode('users', page.next) : null });
    }),
  );
  router.patch(
    '/users/:userId',
    guard('users:write', async (req, res, caller, deps) => {
      const body = parse(patchUserBody, req.body ?? {}, 'body');
      const id = String(req.params.userId);
      const db = deps.db;
      const existing = await findUser(db, id);
      if (!existing) throw new ApiError('not_found', `no user has id "${id}"`);
      if (body.tenant_id && !(await findTenant(db, body.tenant_id))) throw new ApiError('invalid_request', `tenant_id: no tenant ${quoted(body.tenant_id)}`);
      const now = deps.now();
      const updated = await db.transaction().execute(async (trx) => {
        const row = await updateUser(trx, id, {
          role: body.role,
          tenantId: body.tenant_id,
          disabledAt: body.disabled === undefined ? undefined : body.disabled ? (existing.disabled_at ?? now) : null,
          now,
        });
        const changed = Object.keys(body);
        await recordAudit(trx, { at: now, actor: caller.actor, action: 'user.updated', target: id, requestId: requestId(req), details: { changed, ...body } });
        if (body.disabled === true) {
          // A disabled account keeps no open session: its refresh tokens die with them.
          for (const sid of await revokeUserSessions(trx, id, 'account disabled', now)) {
            await recordAudit(trx, { at: now, actor: caller.actor, action: 'session.revoked', target: sid, reason: 'account disabled', requestId: requestId(req) });
          }
        }
        return row;
      });
      res.json(publicUser(updated ?? existing));
    }),
  );
}
