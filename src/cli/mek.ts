import type { Command } from 'commander';
import { generateKeyRingEntry } from '../crypto/mek';
import type { CliContext, OutputOptions } from './context';
import { withLifecycle } from './services';

export function registerMekCommands(program: Command, context: CliContext): void {
  const mek = program.command('mek').description('master encryption key ring');
  mek
    .command('generate')
    .description('print a new key-ring entry id:base64 (32 random bytes)')
    .option('--json', 'print JSON')
    .action((opts: OutputOptions) => {
      const entry = generateKeyRingEntry();
      context.print(opts, { id: entry.slice(0, entry.indexOf(':')), entry }, entry);
    });
  mek
    .command('rewrap')
    .description('re-wrap every data key under the primary (first) MEK of the ring')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const count = await withLifecycle(context, (lifecycle) => lifecycle.rewrap('cli'));
      context.print(opts, { rewrapped: count }, `re-wrapped ${count} data key(s) under the primary MEK`);
    });
}
