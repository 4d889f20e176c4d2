import type { Command } from 'commander';
import { AdminTokenError, AdminTokens, adminTokenView } from '../admin/tokens';
import { PERMISSIONS } from '../admin/permissions';
import { parseDuration } from '../config/duration';
import { migrateToLatest } from '../db/migrate';
import { KeyCache } from '../keys/cache';
import { createSigner } from '../tokens/sign';
import { TokenVerifier } from '../tokens/verify';
import { CliError, table, type CliContext, type OutputOptions } from './context';
import { mekOf } from './services';

/** Runs `work` with the admin tokens (the server's when it runs the command); `signing` loads the current key. */
async function withAdminTokens<T>(context: CliContext, signing: boolean, work: (tokens: AdminTokens) => Promise<T>): Promise<T> {
  const run = async (tokens: AdminTokens) => {
    try {
      return await work(tokens);
    } catch (error) {
      if (error instanceof AdminTokenError) throw new CliError(error.message);
      throw error;
    }
  };
  const { host } = context.overrides;
  if (host && !context.overrides.now) return run(host.adminTokens);
  const mek = mekOf(context);
  return context.withDatabase(async (handle) => {
    const config = context.config();
    await migrateToLatest(handle);
    const keys = new KeyCache({ handle, mek, logger: context.logger(), refreshIntervalMs: config.keyRefreshIntervalMs });
    if (signing) {
      await keys.refresh();
      if (!keys.loaded) throw new CliError('no current signing key: start the server once, or run `idp keys check`');
    }
    return run(
      new AdminTokens({
        db: handle.db,
        verifier: new TokenVerifier(keys, config.issuer),
        sign: createSigner(keys),
        now: () => context.now(),
        settings: { issuer: config.issuer, defaultTtlMs: config.adminTokenTtlMs, retentionMs: config.retentionMs },
      }),
    );
  });
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerAdminTokenCommands(program: Command, context: CliContext): void {
  const adminToken = program.command('admin-token').description('tokens for the admin API (/admin/v1)');
  adminToken
    .command('issue')
    .description(`print a signed admin token (shown once); permissions: ${PERMISSIONS.join(', ')}`)
    .option('--permission <permission>', 'grant one permission (repeat for more)', collect, [] as string[])
    .option('--super', 'grant every permission (super admin)')
    .option('--ttl <duration>', 'lifetime such as 15m or 1h (default IDP_ADMIN_TOKEN_TTL; at most IDP_KEY_RETENTION)')
    .option('--description <text>', 'what the token is for, shown by `admin-token list`')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { permission: string[]; super?: boolean; ttl?: string; description?: string }) => {
      if (opts.super && opts.permission.length > 0) throw new CliError('give either --super or --permission, not both');
      let ttlMs: number | undefined;
      if (opts.ttl !== undefined) {
        ttlMs = parseDuration(opts.ttl);
        if (ttlMs === undefined || ttlMs <= 0) throw new CliError(`--ttl "${opts.ttl}" is not a duration such as 15m or 1h`);
      }
      const issued = await withAdminTokens(context, true, (tokens) =>
        tokens.issue({ permissions: opts.permission, superAdmin: opts.super === true, ttlMs, description: opts.description, actor: 'cli' }),
      );
      context.print(opts, issued, `${issued.token}\n\nid ${issued.id}, expires ${issued.expires_at}, permissions: ${issued.permissions.join(' ')}`);
    });
  adminToken
    .command('list')
    .description('every admin token ever issued (never the token itself)')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const list = (await withAdminTokens(context, false, (tokens) => tokens.list())).map(adminTokenView);
      const rows = list.map((t) => ({ ...t, permissions: t.is_super_admin ? '(super)' : t.permissions.join(' ') }));
      context.print(opts, list, table(rows, ['id', 'permissions', 'created_at', 'expires_at', 'revoked_at', 'description']));
    });
  adminToken
    .command('revoke')
    .description('revoke an admin token: refused by the admin API at once, on every instance')
    .argument('<id>', 'the token id (from `admin-token list`)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      const row = await withAdminTokens(context, false, (tokens) => tokens.revoke(id, 'cli'));
      context.print(opts, { revoked: row.id, revoked_at: (row.revoked_at as Date).toISOString() }, `revoked admin token ${row.id}`);
    });
}
