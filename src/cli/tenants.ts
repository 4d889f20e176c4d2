import crypto from 'node:crypto';
import type { Command } from 'commander';
import { recordAudit } from '../audit';
import { createTenant, findTenant, listTenants, setTenantDisabled, tenantView } from '../tenants/repository';
import { CliError, table, type CliContext, type OutputOptions } from './context';
import { quoted } from '../text';

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function registerTenantCommands(program: Command, context: CliContext): void {
  const tenants = program.command('tenants').description('tenants: groups of users and clients that can be disabled together');
  const now = () => (context.overrides.now ?? (() => new Date()))();

  tenants
    .command('create')
    .description('add a tenant')
    .requiredOption('--name <name>', 'display name')
    .option('--id <id>', 'tenant id (letters, digits, _ . -); default a new UUID')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { name: string; id?: string }) => {
      const id = opts.id ?? crypto.randomUUID();
      if (!TENANT_ID.test(id)) throw new CliError(`--id "${id}" must be letters, digits, _ . - (at most 64)`);
      const name = opts.name.trim();
      if (name.length === 0 || name.length > 200) throw new CliError('--name must be 1 to 200 characters');
      const tenant = await context.withMigratedDatabase(async (handle) => {
        return handle.db.transaction().execute(async (trx) => {
          if (await findTenant(trx, id)) throw new CliError(`tenant "${id}" already exists`);
          const row = await createTenant(trx, { id, name, now: now() });
          await recordAudit(trx, { at: now(), actor: 'cli', action: 'tenant.created', target: id, details: { name } });
          return row;
        });
      });
      context.print(opts, tenantView(tenant), `created tenant ${tenant.id} (${tenant.name})`);
    });
  tenants
    .command('list')
    .description('every tenant')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const list = await context.withMigratedDatabase(async (handle) => {
        return (await listTenants(handle.db)).map(tenantView);
      });
      context.print(opts, list, table(list, ['id', 'name', 'created_at', 'disabled_at']));
    });
  tenants
    .command('disable')
    .description('disable a tenant: its users and clients get no more tokens, and their tokens turn inactive')
    .argument('<id>', 'tenant id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      const tenant = await context.withMigratedDatabase(async (handle) => {
        return handle.db.transaction().execute(async (trx) => {
          const existing = await findTenant(trx, id);
          if (!existing) throw new CliError(`no tenant ${quoted(id)}`);
          if (existing.disabled_at) throw new CliError(`tenant "${id}" is already disabled since ${existing.disabled_at.toISOString()}`);
          await setTenantDisabled(trx, id, now());
          await recordAudit(trx, { at: now(), actor: 'cli', action: 'tenant.disabled', target: id });
          return (await findTenant(trx, id)) ?? existing;
        });
      });
      context.print(opts, { disabled: tenant.id, ...tenantView(tenant) }, `disabled tenant ${tenant.id}`);
    });
}
