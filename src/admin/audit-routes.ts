import type { Router } from 'express';
import { parseInput as parse } from '../http/input';
import { auditView, listAudit } from './audit';
import { auditQuery } from './schemas';
import { type Guard } from './http';
import { pagePosition } from '../http/cursor';

/** /admin/v1/audit: the audit log, newest first. */
export function auditRoutes(router: Router, guard: Guard): void {
  router.get(
    '/audit',
    guard('audit:read', async (req, res, _caller, deps) => {
      const query = parse(auditQuery, req.query, 'query');
      const { cursor, ...filter } = query;
      const page = await listAudit(deps.db, { ...filter, after: pagePosition(deps.cursors, 'audit', cursor) });
      res.json({ events: page.events.map(auditView), next_cursor: page.next ? deps.cursors.encode('audit', page.next) : null });
    }),
  );
}
