import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config';
import { CliError, createCliContext, DatabaseHeldElsewhere, type CliContext, type CliIo, type CliOverrides, type OutputOptions } from './context';
import { forwardToServer } from './forward';
import { cliSocketAddress } from './socket';
import { printableText } from './text';

export type { CliIo, CliOverrides, HostServices } from './context';

type Register = (program: Command, context: CliContext) => void;

/**
 * The top-level commands, one module per capability. A module is loaded only when its command runs
 * (or for help and usage errors, which need them all), so that a command never pays for the
 * dependencies of the others: `keys list` does not load the HTTP stack that admin tokens need.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  migrate: async () => registerMigrate,
  keys: async () => (await import('./keys')).registerKeyCommands,
  mek: async () => (await import('./mek')).registerMekCommands,
  clients: async () => (await import('./clients')).registerClientCommands,
  'admin-token': async () => (await import('./admin-token')).registerAdminTokenCommands,
  tenants: async () => (await import('./tenants')).registerTenantCommands,
  limits: async () => (await import('./limits')).registerLimitCommands,
  'api-keys': async () => (await import('./api-keys')).registerApiKeyCommands,
  resources: async () => (await import('../resources/cli')).registerResourceCommands,
  verify: async () => (await import('./verify')).registerVerifyCommand,
  status: async () => (await import('./status')).registerStatusCommand,
};

/** How long a command waits for an embedded database held by another process (a server starting, or another command) before it gives up. */
const HELD_WAIT_MS = 15_000;
const HELD_RETRY_MS = 150;

/**
 * The admin CLI (docs/operating.md "The admin CLI". Commands call services directly, never HTTP. Resolves to the exit code.
 *
 * On the embedded default only one process may open the data directory. When a running server
 * holds it, the command is handed to that server over its CLI socket (src/cli/socket.ts) and runs
 * there, in-process, with the same handlers: same output, same exit code, and the server's caches
 * see the change at once. While the holder is another command, or a server still starting, it waits.
 */
export async function runCli(argv: string[], io: CliIo, overrides: CliOverrides = {}): Promise<number> {
  const deadline = Date.now() + HELD_WAIT_MS;
  for (;;) {
    let held: DatabaseHeldElsewhere;
    try {
      return await runProgram(argv, io, overrides);
    } catch (error) {
      if (!(error instanceof DatabaseHeldElsewhere)) throw error;
      held = error;
    }
    const address = cliSocketAddress(held.dataDir);
    if (address !== undefined) {
      let outcome: Awaited<ReturnType<typeof forwardToServer>>;
      try {
        outcome = await forwardToServer(address, withAbsolutePaths(argv), io);
      } catch (error) {
        io.stderr(`idp: ${describe(error)}\n`);
        return 1;
      }
      if ('exitCode' in outcome) return outcome.exitCode;
    }
    if (Date.now() >= deadline) {
      const why = address === undefined ? 'its CLI socket path is too long for a Unix socket' : 'it does not answer on its CLI socket';
      io.stderr(`idp: ${held.message.split('\n')[0]} (${why})\n`);
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, HELD_RETRY_MS));
  }
}

/** One run of the program. Throws DatabaseHeldElsewhere, untouched, when the command could not open the embedded database and has written nothing. */
async function runProgram(argv: string[], io: CliIo, overrides: CliOverrides): Promise<number> {
  let wrote = false;
  const tracked: CliIo = {
    env: io.env,
    stdout(text) {
      wrote = true;
      io.stdout(text);
    },
    stderr(text) {
      wrote = true;
      io.stderr(text);
    },
  };
  const context = createCliContext(tracked, overrides);
  const program = new Command('idp')
    .description('Admin CLI of the RS256 identity provider')
    .exitOverride()
    .configureOutput({ writeOut: tracked.stdout, writeErr: tracked.stderr });

  const name = argv.find((arg) => !arg.startsWith('-'));
  const load = name !== undefined && Object.hasOwn(COMMANDS, name) ? [COMMANDS[name] as () => Promise<Register>] : Object.values(COMMANDS);
  for (const register of await Promise.all(load.map((loadModule) => loadModule()))) register(program, context);
  acceptDashedOperands(program);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (error) {
    // Commander already printed usage errors; help is a success.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof DatabaseHeldElsewhere && !wrote) throw error;
    tracked.stderr(`idp: ${describe(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  }
}

/** Options that name a file of the operator's (read by the command). */
const FILE_OPTIONS: readonly string[] = ['--jwks-file'];

/** A forwarded command runs in the server's working directory: a relative file name is made absolute here, where the operator meant it. */
function withAbsolutePaths(argv: readonly string[]): string[] {
  return argv.map((arg, i) => {
    const previous = argv[i - 1];
    if (previous !== undefined && FILE_OPTIONS.includes(previous)) return path.resolve(arg);
    const option = FILE_OPTIONS.find((name) => arg.startsWith(`${name}=`));
    return option ? `${option}=${path.resolve(arg.slice(option.length + 1))}` : arg;
  });
}

function registerMigrate(program: Command, context: CliContext): void {
  program
    .command('migrate')
    .description('apply pending migrations')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const { migrateToLatest } = await import('../db/migrate');
      const applied = await context.withDatabase((handle) => migrateToLatest(handle));
      context.print(opts, { applied }, applied.length === 0 ? 'database is up to date' : `applied: ${applied.join(', ')}`);
    });
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

/** One line, escaped: an error may quote a stored value. */
function describe(error: unknown): string {
  if (error instanceof ConfigError) return printableText(`invalid configuration: ${error.message}`).split('\n')[0] as string;
  if (error instanceof Error) return printableText(error.message.split('\n')[0] as string);
  return printableText(String(error));
}
