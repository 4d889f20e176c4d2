import type { Command } from 'commander';
import type { KeyChange, KeyLifecycle } from '../keys/lifecycle';
import { createMetrics } from '../observability/metrics';
import { buildLifecycle } from '../services';
import { keyView } from '../keys/view';
import { table, type CliContext, type OutputOptions } from './context';

/** Runs `work` with the key lifecycle over a database opened for this command (migrated, MEK checked). */
export function withLifecycle<T>(context: CliContext, work: (lifecycle: KeyLifecycle) => Promise<T>): Promise<T> {
  return context.withDatabase(async (handle) => {
    const { lifecycle } = await buildLifecycle({
      config: context.config(),
      logger: context.logger(),
      metrics: createMetrics(),
      handle,
      now: context.overrides.now,
    });
    return work(lifecycle);
  });
}

const changeLines = (changes: readonly KeyChange[]) => changes.map((c) => `${c.action.padEnd(16)} ${c.kid}`).join('\n');

export function registerKeyCommands(program: Command, context: CliContext): void {
  const keys = program.command('keys').description('signing keys');
  keys
    .command('list')
    .description('every key, with its state and timestamps')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const list = (await withLifecycle(context, (lifecycle) => lifecycle.list())).map(keyView);
      context.print(opts, list, table(list, ['kid', 'state', 'bits', 'created_at', 'activated_at', 'deactivated_at', 'retired_at', 'mek_id']));
    });
  keys
    .command('rotate')
    .description('promote the next key now (only once it has been published for IDP_KEY_PREPUBLISH, unless --force)')
    .option('--force', 'promote whatever the next key’s age')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions & { force?: boolean }) => {
      const changes = await withLifecycle(context, (lifecycle) => lifecycle.rotate('cli', { force: opts.force === true }));
      if (opts.force) {
        context.io.stderr(
          'warning: forced rotation; verifiers that have not refreshed the JWKS since the next key was published will reject new tokens until they do\n',
        );
      }
      context.print(opts, { rotated: true, changes }, changeLines(changes));
    });
  keys
    .command('revoke')
    .description('emergency: remove a key from the JWKS and destroy its private material')
    .argument('<kid>', 'the key to revoke')
    .option('--reason <text>', 'recorded in the audit log', 'revoked by operator')
    .option('--json', 'print JSON')
    .action(async (kid: string, opts: OutputOptions & { reason: string }) => {
      const result = await withLifecycle(context, (lifecycle) => lifecycle.revoke('cli', kid, opts.reason));
      const trust =
        `verifiers may keep trusting ${kid} for up to ${result.verifierCacheSeconds}s (the JWKS max-age); ` +
        'libraries with their own JWKS cache (jwks-rsa: 10 min by default) until that cache expires';
      context.print(
        opts,
        { revoked: kid, previous_state: result.previousState, changes: result.changes, verifier_cache_seconds: result.verifierCacheSeconds },
        `${changeLines(result.changes)}\n${trust}`,
      );
    });
  keys
    .command('check')
    .description('run the rotation check once, as the schedule does')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const result = await withLifecycle(context, (lifecycle) => lifecycle.check('cli'));
      const text =
        result.changes.length > 0 ? changeLines(result.changes) : result.alreadyRotated ? 'already rotated by another instance' : 'nothing to do';
      context.print(opts, { changes: result.changes, already_rotated: result.alreadyRotated }, text);
    });
}
