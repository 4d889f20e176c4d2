import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config';
import { migrateToLatest } from '../db/migrate';
import { CliError, createCliContext, type CliIo, type CliOverrides, type OutputOptions } from './context';
import { registerClientCommands } from './clients';
import { registerKeyCommands } from './keys';
import { registerMekCommands } from './mek';
import { registerAdminTokenCommands } from './admin-token';
import { registerTenantCommands } from './tenants';

export type { CliIo, CliOverrides } from './context';

/** The admin CLI (SPEC §6). Commands call services directly, never HTTP. Resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo, overrides: CliOverrides = {}): Promise<number> {
  const context = createCliContext(io, overrides);
  const program = new Command('idp')
    .description('Admin CLI of the RS256 identity provider')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  program
    .command('migrate')
    .description('apply pending migrations')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const applied = await context.withDatabase((handle) => migrateToLatest(handle));
      context.print(opts, { applied }, applied.length === 0 ? 'database is up to date' : `applied: ${applied.join(', ')}`);
    });
  // One module per capability registers its commands here.
  registerKeyCommands(program, context);
  registerMekCommands(program, context);
  registerClientCommands(program, context);
  registerAdminTokenCommands(program, context);
  registerTenantCommands(program, context);

  acceptDashedOperands(program);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    // Commander already printed usage errors; help is a success.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    io.stderr(`idp: ${describe(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  }
}

/**
 * Key ids (RFC 7638 thumbprints) and other ids are base64url and may start with `-`; without this,
 * commander would take `idp keys revoke -Abc…` for an unknown option. Commands that take an id
 * treat an unknown dash-word as that id; their real options still parse as options.
 */
function acceptDashedOperands(command: Command): void {
  for (const sub of command.commands) {
    if (sub.registeredArguments.length > 0) sub.allowUnknownOption();
    acceptDashedOperands(sub);
  }
}

function describe(error: unknown): string {
  if (error instanceof ConfigError) return `invalid configuration: ${error.message}`;
  if (error instanceof Error) return error.message.split('\n')[0] as string;
  return String(error);
}
