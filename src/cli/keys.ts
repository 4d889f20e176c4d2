import type { Command } from 'commander';
import type { KeyChange } from '../keys/lifecycle';
import { keyTransition, keyView } from '../keys/view';
import { table, type CliContext, type OutputOptions } from './context';
import { withLifecycle } from './services';

const changeLines = (changes: readonly KeyChange[]) => changes.map((c) => `${c.action.padEnd(16)} ${c.kid}`).join('\n');

export function registerKeyCommands(program: Command, context: CliContext): void {
  const keys = program.command('keys').description('signing keys');
  keys
    .command('list')
    .description('every key, with its state, timestamps and next transition')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const config = context.config();
      const rows = await withLifecycle(context, (lifecycle) => lifecycle.list());
      const list = rows.map((row) => ({ ...keyView(row), ...keyTransition(row, rows, config) }));
      context.print(
        opts,
        list,
        table(list, ['kid', 'state', 'bits', 'created_at', 'activated_at', 'deactivated_at', 'retired_at', 'next_transition', 'next_transition_at', 'mek_id']),
      );
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
