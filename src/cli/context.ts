import type { AdminTokens } from '../admin/tokens';
import { loadConfig, type Config } from '../config';
import type { MekProvider } from '../crypto/mek';
import type { DatabaseHandle } from '../db';
import type { KeyLifecycle } from '../keys/lifecycle';
import { createLogger, type Logger } from '../observability/logger';
import { jsonText, printable, printableText } from './text';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

/**
 * What the running server lends a command that it runs for a CLI over its socket (src/cli/remote.ts):
 * its configuration, its open database and the services built over it, so that a change made this
 * way is the server's own change (its caches hear of it at once) and only one process ever opens
 * the embedded database.
 */
export interface HostServices {
  config: Config;
  logger: Logger;
  handle: DatabaseHandle;
  mek: MekProvider;
  lifecycle: KeyLifecycle;
  adminTokens: AdminTokens;
  now: () => Date;
}

export interface CliOverrides {
  /** An open database (tests on in-memory PGlite); otherwise opened from the configuration. */
  handle?: DatabaseHandle;
  now?: () => Date;
  /** Set when the server runs the command in-process for a CLI (src/cli/remote.ts). */
  host?: HostServices;
}

/** A failure the operator can act on: one line on stderr, non-zero exit, nothing changed. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/**
 * Thrown by `withDatabase` when the embedded database is held by another live process: the command
 * has printed and changed nothing, and runCli hands it to the server over its socket instead.
 */
export class DatabaseHeldElsewhere extends Error {
  readonly code = 'ERR_DATABASE_HELD_ELSEWHERE';
  constructor(
    readonly dataDir: string,
    message: string,
  ) {
    super(message);
    this.name = 'DatabaseHeldElsewhere';
  }
}

export interface OutputOptions {
  json?: boolean;
}

/** What every command module gets: configuration, output, and a database opened for one command. */
export interface CliContext {
  io: CliIo;
  overrides: CliOverrides;
  /** The configuration (the server's when it runs the command), read once. */
  config(): Config;
  logger(): Logger;
  now(): Date;
  /** `--json`: one JSON document on stdout; otherwise the readable text. Either way nothing a terminal would act on is written raw. */
  print(options: OutputOptions, json: unknown, text: string): void;
  /** Opens the database (one attempt: an unreachable database is one clear line), runs `work`, closes it. */
  withDatabase<T>(work: (handle: DatabaseHandle) => Promise<T>): Promise<T>;
  /**
   * The same after applying pending migrations; an error of one of the `refusals` classes (a service's
   * "this change is refused") becomes one CliError line.
   */
  withMigratedDatabase<T>(work: (handle: DatabaseHandle) => Promise<T>, refusals?: ReadonlyArray<abstract new (...args: never[]) => Error>): Promise<T>;
}

export function createCliContext(io: CliIo, overrides: CliOverrides): CliContext {
  let config: Config | undefined;
  let logger: Logger | undefined;
  const { host } = overrides;
  const context: CliContext = {
    io,
    overrides,
    config: () => (config ??= host ? host.config : loadConfig(io.env)),
    logger: () => (logger ??= host ? host.logger.child({ cli: true }) : createLogger(io.env.IDP_LOG_LEVEL ?? 'silent')),
    now: () => (overrides.now ?? host?.now ?? (() => new Date()))(),
    print(options, json, text) {
      io.stdout(options.json ? `${jsonText(json)}\n` : `${printableText(text)}\n`);
    },
    async withDatabase(work) {
      const handle = overrides.handle ?? host?.handle ?? (await open(context.config(), context.logger()));
      try {
        return await work(handle);
      } finally {
        if (!overrides.handle && !host) await handle.close();
      }
    },
    withMigratedDatabase(work, refusals = []) {
      return context.withDatabase(async (handle) => {
        const { migrateToLatest } = await import('../db/migrate');
        await migrateToLatest(handle);
        try {
          return await work(handle);
        } catch (error) {
          if (refusals.some((refusal) => error instanceof refusal)) throw new CliError((error as Error).message);
          throw error;
        }
      });
    },
  };
  return context;
}

async function open(config: Config, logger: Logger): Promise<DatabaseHandle> {
  const { openDatabase } = await import('../db');
  let handle: DatabaseHandle;
  try {
    handle = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger, poolSize: 2 });
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_DATABASE_IN_USE') throw new DatabaseHeldElsewhere(config.dataDir, (error as Error).message);
    throw unreachable(config);
  }
  if (await handle.ping(5_000)) return handle;
  await handle.close();
  throw unreachable(config);
}

function unreachable(config: Config): CliError {
  const target = config.databaseUrl ? config.databaseUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') : config.dataDir;
  return new CliError(`database unreachable at ${target}`);
}

/** A plain aligned table for people; scripts use --json. Every value is escaped: a stored name cannot write to the terminal. */
export function table<T extends object>(rows: readonly T[], columns: readonly (keyof T & string)[]): string {
  const cell = (value: unknown) =>
    value === null || value === undefined ? '-' : value instanceof Date ? value.toISOString() : printable(String(value));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}
