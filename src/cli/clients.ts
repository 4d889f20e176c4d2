import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import { findClient, listClients } from '../clients/repository';
import { clientView } from '../clients/view';
import { ClientError, clientPolicy, createClient, deleteClient, disableClient, parseScope, rotateClientSecret } from '../clients/service';
import { parseDuration } from '../config/duration';
import { migrateToLatest } from '../db/migrate';
import type { Database } from '../db/schema';
import { CliError, table, type CliContext, type OutputOptions } from './context';

const collect = (value: string, previous: string[]) => [...previous, value];

function durationOption(name: string, text: string, allowZero: boolean): number {
  const ms = /^0+[smhd]?$/.test(text) && allowZero ? 0 : parseDuration(text);
  if (ms === undefined || (ms <= 0 && !allowZero)) throw new CliError(`${name} "${text}" is not a duration such as 90s, 15m, 1h or 7d`);
  return ms;
}

export function registerClientCommands(program: Command, context: CliContext): void {
  const clients = program.command('clients').description('OAuth clients (client credentials)');
  const now = () => (context.overrides.now ?? (() => new Date()))();
  /** Opens and migrates the database, and turns a refused change into one line on stderr. */
  const withDb = <T>(work: (db: Kysely<Database>) => Promise<T>) =>
    context.withDatabase(async (handle) => {
      await migrateToLatest(handle);
      try {
        return await work(handle.db);
      } catch (error) {
        if (error instanceof ClientError) throw new CliError(error.message);
        throw error;
      }
    });

  clients
    .command('create')
    .description('add a client; prints its client_id and client_secret (the secret is shown once)')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--scope <scopes>', 'allowed scopes, space-separated')
    .option('--audience <audience>', 'an allowed audience (repeat for more; the first is the default)', collect, [])
    .option('--tenant <id>', 'the tenant the client belongs to')
    .option('--token-ttl <duration>', 'access token lifetime for this client (at most IDP_CLIENT_TOKEN_TTL)')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { name: string; scope: string; audience: string[]; tenant?: string; tokenTtl?: string }) => {
      const config = context.config();
      const scopes = parseScope(opts.scope);
      if (scopes === undefined) throw new CliError(`--scope "${opts.scope}" is not a space-separated list of scopes (RFC 6749 §3.3)`);
      const ttlMs = opts.tokenTtl === undefined ? undefined : durationOption('--token-ttl', opts.tokenTtl, false);
      if (ttlMs !== undefined && ttlMs % 1000 !== 0) throw new CliError('--token-ttl must be whole seconds');
      const { client, secret } = await withDb((db) =>
        createClient(
          db,
          { name: opts.name, scopes, audiences: opts.audience, tenantId: opts.tenant ?? null, tokenTtlSeconds: ttlMs === undefined ? null : ttlMs / 1000 },
          clientPolicy(config),
          { actor: 'cli', now: now() },
        ),
      );
      context.print(
        opts,
        { client_id: client.id, client_secret: secret, name: client.name, scopes: client.scopes, audiences: client.audiences },
        `client_id:     ${client.id}\nclient_secret: ${secret}\n(the secret is shown once: store it now)`,
      );
    });

  clients
    .command('list')
    .description('every client (never a secret)')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const list = (await withDb((db) => listClients(db))).map(clientView);
      const rows = list.map((c) => ({ ...c, scopes: c.scopes.join(' '), audiences: c.audiences.join(' ') }));
      context.print(opts, list, table(rows, ['client_id', 'name', 'scopes', 'audiences', 'tenant_id', 'disabled_at', 'created_at']));
    });

  clients
    .command('show')
    .description('one client')
    .argument('<id>', 'client_id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      const client = await withDb((db) => findClient(db, id));
      if (!client) throw new CliError(`no client ${id}`);
      const view = clientView(client);
      const text = Object.entries(view)
        .map(([k, v]) => `${k.padEnd(28)} ${Array.isArray(v) ? v.join(' ') : (v ?? '-')}`)
        .join('\n');
      context.print(opts, view, text);
    });

  clients
    .command('rotate-secret')
    .description('issue a new secret; the previous one keeps working for the grace period')
    .argument('<id>', 'client_id')
    .option('--grace <duration>', 'how long the previous secret keeps working (default IDP_CLIENT_SECRET_GRACE; 0s after a leak)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions & { grace?: string }) => {
      const graceMs = opts.grace === undefined ? context.config().clientSecretGraceMs : durationOption('--grace', opts.grace, true);
      const { secret, previousValidUntil } = await withDb((db) => rotateClientSecret(db, id, graceMs, { actor: 'cli', now: now() }));
      const until = previousValidUntil?.toISOString() ?? null;
      context.print(
        opts,
        { client_id: id, client_secret: secret, previous_secret_valid_until: until },
        `client_secret: ${secret}\n(the secret is shown once)\nprevious secret valid until: ${until ?? 'no longer valid'}`,
      );
    });

  clients
    .command('disable')
    .description('refuse tokens to a client from now on; its tokens introspect as inactive')
    .argument('<id>', 'client_id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      const client = await withDb((db) => disableClient(db, id, { actor: 'cli', now: now() }));
      context.print(opts, { client_id: id, disabled: true, disabled_at: client.disabledAt?.toISOString() ?? null }, `disabled client ${id}`);
    });

  clients
    .command('delete')
    .description('delete a client; its tokens introspect as inactive')
    .argument('<id>', 'client_id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      await withDb((db) => deleteClient(db, id, { actor: 'cli', now: now() }));
      context.print(opts, { client_id: id, deleted: true }, `deleted client ${id}`);
    });
}
