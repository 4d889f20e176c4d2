import type { Command } from 'commander';
import { FailureLimiter } from '../ratelimit';
import { blockView, clearBlock, isLimitKey } from '../ratelimit/operators';
import { CliError, table, type CliContext, type OutputOptions } from './context';
import { quoted } from '../text';

/** `idp limits list|clear` (docs/operating.md "The admin CLI": the failure counters that block now, and lifting one block. */
export function registerLimitCommands(program: Command, context: CliContext): void {
  const limits = program.command('limits').description('abuse limits: the blocks in force, and lifting one');

  limits
    .command('list')
    .description('every block in force: key, failures counted, until when')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const blocks = await context.withMigratedDatabase(async (handle) => {
        const limiter = new FailureLimiter({ handle, logger: context.logger(), now: () => context.now() });
        return (await limiter.listBlocks()).map((block) => blockView(block, context.now()));
      });
      context.print(opts, blocks, blocks.length === 0 ? 'no blocks in force' : table(blocks, ['key', 'failures', 'blocked_until', 'retry_after_seconds']));
    });

  limits
    .command('clear')
    .description('lift one block on every instance and forget its count, e.g. idp limits clear oauth:ip:203.0.113.7')
    .argument('<key>', 'the key as `limits list` shows it')
    .option('--json', 'print JSON')
    .action(async (key: string, opts: OutputOptions) => {
      if (!isLimitKey(key)) throw new CliError(`${quoted(key)} is not a limit key such as oauth:ip:203.0.113.7 (see idp limits list)`);
      const cleared = await context.withMigratedDatabase(async (handle) => {
        const limiter = new FailureLimiter({ handle, logger: context.logger(), now: () => context.now() });
        return clearBlock(limiter, handle.db, key, { actor: 'cli', at: context.now() });
      });
      if (!cleared) throw new CliError(`nothing is counted under "${key}" (see idp limits list)`);
      context.print(opts, { cleared: key }, `cleared ${key}`);
    });
}
