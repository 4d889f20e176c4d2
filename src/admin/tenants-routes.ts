import crypto from 'node:crypto';
import { quoted } from '../text';
import type { Router } from 'express';
import { ApiError } from '../http/api-error';
import { parseInput as parse } from '../http/input';
import { createTenant, findTenant, listTenants, setTenantDisabled, tenantView } from '../tenants/repository';
import { createTenantBody } from './schemas';
import { tenantError, audit, type Guard } from './http';

/** /admin/v1/tenants: tenants are disabled, never deleted. */
export function tenantRoutes(router: Router, guard: Guard): void {
  router.get(
    '/tenants',
    guard('tenants:read', async (_req, res, _caller, deps) => {
      res.json({ tenants: (await listTenants(deps.db)).map(tenantView) });
    }),
  );
  router.get(
    '/tenants/:tenantId',
    guard('tenants:read', async (req, res, _caller, deps) => {
      const tenant = await findTenant(deps.db, String(req.params.tenantId));
      if (!tenant) throw new ApiError('not_found', `no tenant ${quoted(String(req.params.tenantId))}`);
      res.json(tenantView(tenant));
    }),
  );
  router.post(
    '/tenants',
    guard('tenants:write', async (req, res, caller, deps) => {
      const body = parse(createTenantBody, req.body ?? {}, 'body');
      const id = body.id ?? crypto.randomUUID();
      const db = deps.db;
      if (await findTenant(db, id)) throw new ApiError('conflict', `tenant ${quoted(id)} already exists`);
      const tenant = await createTenant(db, { id, name: body.name, now: deps.now() }).catch(tenantError);
      await audit(deps, req, caller, 'tenant.created', id, { name: tenant.name });
      res.status(201).json(tenantView(tenant));
    }),
  );
  router.delete(
    '/tenants/:tenantId',
    guard('tenants:write', async (req, res, caller, deps) => {
      const id = String(req.params.tenantId);
      const db = deps.db;
      const tenant = await findTenant(db, id);
      if (!tenant) throw new ApiError('not_found', `no tenant ${quoted(id)}`);
      // Disabled, not deleted: its users, clients and audit trail keep pointing at it.
      if (!tenant.disabled_at) {
        await setTenantDisabled(db, id, deps.now());
        await audit(deps, req, caller, 'tenant.disabled', id);
      }
      res.json(tenantView((await findTenant(db, id)) ?? tenant));
    }),
  );
}
