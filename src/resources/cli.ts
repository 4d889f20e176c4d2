import type { Command } from 'commander';
import { CliError, table, type CliContext, type OutputOptions } from '../cli/context';
import { parseScope } from '../clients/service';
import { ServiceError } from '../errors';
import { Resources } from './service';
import { resourceView } from './view';

/** `idp resources create|list|delete` (docs/oauth.md "Resources": the same service as /admin/v1/resources. */
export function registerResourceCommands(program: Command, context: CliContext): void {
  const resources = program.command('resources').description('the APIs users may grant applications access to (RFC 8707 resource indicators)');
  /** Opens and migrates the database, and turns a refusal into one line on stderr. */
  const withResources = <T>(work: (service: Resources) => Promise<T>) =>
    context.withMigratedDatabase(
      (handle) => work(new Resources({ db: handle.db, now: () => context.now(), policy: { production: context.config().production } })),
      [ServiceError],
    );

  resources
    .command('create')
    .description('register a resource: its URL is the aud of tokens for it')
    .argument('<url>', 'the resource indicator: an absolute https URL (http too outside production)')
    .requiredOption('--name <name>', 'display name (shown on the consent page)')
    .requiredOption('--scope <scopes>', 'its scopes, space-separated')
    .option('--json', 'print JSON')
    .action(async (url: string, opts: OutputOptions & { name: string; scope: string }) => {
      const scopes = parseScope(opts.scope);
      if (scopes === undefined) throw new CliError(`--scope "${opts.scope}" is not a space-separated list of scopes (RFC 6749 §3.3)`);
      const created = await withResources((service) => service.create({ url, name: opts.name, scopes }, { actor: 'cli' }));
      const view = resourceView(created);
      context.print(opts, view, `registered resource ${view.url} (${view.name}): ${view.scopes.join(' ')}`);
    });

  resources
    .command('list')
    .description('every resource, in URL order')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const list = (await withResources((service) => service.list())).map(resourceView);
      context.print(opts, list, table(list.map((r) => ({ ...r, scopes: r.scopes.join(' ') })), ['url', 'name', 'scopes', 'created_at']));
    });

  resources
    .command('delete')
    .description('delete a resource; tokens already issued for it keep their aud until they expire')
    .argument('<url>', 'the resource URL, exactly as registered')
    .option('--json', 'print JSON')
    .action(async (url: string, opts: OutputOptions) => {
      const deleted = await withResources((service) => service.delete(url, { actor: 'cli' }));
      context.print(opts, { url: deleted.url, deleted: true }, `deleted resource ${deleted.url}`);
    });
}
