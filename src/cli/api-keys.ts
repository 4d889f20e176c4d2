import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import { API_KEY_ID } from '../api-keys/format';
import { listApiKeys } from '../api-keys/repository';
import type { KeysetPosition } from '../http/cursor';
import { ApiKeyError, createApiKey, plausibleOwnerId, revokeApiKey, type ApiKeyOwner, type ApiKeyPolicy } from '../api-keys/service';
import { apiKeyView } from '../api-keys/view';
import { parseScope } from '../clients/service';
import { parseDuration } from '../config/duration';
import type { ApiKeyRow, Database } from '../db/schema';
import { USER_SCOPE } from '../users/access-token';
import { CliError, table, type CliContext, type OutputOptions } from './context';
import { quoted } from '../text';

interface OwnerOptions {
  user?: string;
  client?: string;
}

function ownerOption(opts: OwnerOptions, required: boolean): ApiKeyOwner | undefined {
  if (opts.user !== undefined && opts.client !== undefined) throw new CliError('give --user or --client, not both', 2);
  if (opts.user !== undefined) return { kind: 'user', id: opts.user.toLowerCase() };
  if (opts.client !== undefined) return { kind: 'client', id: opts.client };
  if (required) throw new CliError('give the owner: --user <id> or --client <id>', 2);
  return undefined;
}

/** `idp api-keys create|list|revoke` (docs/operating.md "The admin CLI", "API keys"): the same service functions as the admin API, actor `cli`. */
export function registerApiKeyCommands(program: Command, context: CliContext): void {
  const apiKeys = program.command('api-keys').description('API keys of users and clients (idpk_…)');
  const now = () => context.now();
  const policy = (): ApiKeyPolicy => ({ maxTtlMs: context.config().apiKeyMaxTtlMs, userScopes: [USER_SCOPE] });
  /** Opens and migrates the database, and turns a refused change into one line on stderr. */
  const withDb = <T>(work: (db: Kysely<Database>) => Promise<T>) => context.withMigratedDatabase((handle) => work(handle.db), [ApiKeyError]);

  apiKeys
    .command('create')
    .description('create a key for a user or a client; prints the key (shown once)')
    .option('--user <id>', 'the owning user')
    .option('--client <id>', 'the owning client')
    .requiredOption('--name <name>', 'what the key is for')
    .option('--scope <scopes>', "space-separated, a subset of the owner's (default: all of them)")
    .option('--expires <duration>', 'lifetime such as 90d, at most IDP_API_KEY_MAX_TTL (default: that maximum; `never` when it allows)')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & OwnerOptions & { name: string; scope?: string; expires?: string }) => {
      const owner = ownerOption(opts, true) as ApiKeyOwner;
      const scopes = opts.scope === undefined ? undefined : parseScope(opts.scope);
      if (opts.scope !== undefined && scopes === undefined) throw new CliError(`--scope "${opts.scope}" is not a space-separated list of scopes (RFC 6749 §3.3)`);
      const at = now();
      let expiresAt: Date | undefined;
      if (opts.expires === 'never') {
        if (policy().maxTtlMs !== undefined) throw new CliError('--expires never: IDP_API_KEY_MAX_TTL requires every key to expire');
      } else if (opts.expires !== undefined) {
        const ms = parseDuration(opts.expires);
        if (ms === undefined || ms <= 0) throw new CliError(`--expires "${opts.expires}" is not a duration such as 30d, 12h or 90m`);
        expiresAt = new Date(at.getTime() + ms);
      }
      const { key, row } = await withDb((db) => createApiKey(db, { owner, name: opts.name, scopes, expiresAt }, policy(), { actor: 'cli', now: at }));
      const expires = row.expires_at?.toISOString() ?? null;
      context.print(
        opts,
        { id: row.id, key, name: row.name, scopes: row.scopes, expires_at: expires },
        `id:         ${row.id}\nkey:        ${key}\nscopes:     ${row.scopes.join(' ') || '-'}\nexpires_at: ${expires ?? 'never'}\n(the key is shown once: store it now)`,
      );
    });

  apiKeys
    .command('list')
    .description('API keys, newest first (never a key or its hash)')
    .option('--user <id>', "only this user's keys")
    .option('--client <id>', "only this client's keys")
    .option('--tenant <id>', "only this tenant's keys")
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & OwnerOptions & { tenant?: string }) => {
      const owner = ownerOption(opts, false);
      const rows: ApiKeyRow[] =
        owner && !plausibleOwnerId(owner)
          ? []
          : await withDb(async (db) => {
              const all: ApiKeyRow[] = [];
              let cursor: KeysetPosition | undefined;
              do {
                const page = await listApiKeys(db, {
                  userId: owner?.kind === 'user' ? owner.id : undefined,
                  clientId: owner?.kind === 'client' ? owner.id : undefined,
                  tenantId: opts.tenant,
                  limit: 500,
                  cursor,
                });
                all.push(...page.rows);
                cursor = page.next;
              } while (cursor);
              return all;
            });
      const at = now();
      const views = rows.map((row) => apiKeyView(row, at));
      const text = views.map((v) => ({ ...v, owner: v.user_id ? `user:${v.user_id}` : `client:${v.client_id}`, scopes: v.scopes.join(' ') }));
      context.print(opts, views, table(text, ['id', 'name', 'owner', 'tenant_id', 'scopes', 'status', 'expires_at', 'last_used_at', 'created_at']));
    });

  apiKeys
    .command('revoke')
    .description('revoke a key at once, on every instance')
    .argument('<id>', 'the key id (the part after idpk_, before the second _)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      if (!API_KEY_ID.test(id)) throw new CliError(`no API key ${quoted(id)} (an id is 16 letters and digits)`);
      const row = await withDb((db) => revokeApiKey(db, id, { actor: 'cli', now: now(), reason: 'revoked with idp api-keys revoke' }));
      const revokedAt = row.revoked_at?.toISOString() ?? null;
      context.print(opts, { id, revoked: true, revoked_at: revokedAt }, `revoked API key ${id} (at ${revokedAt})`);
    });
}
