import { loadConfig, type Config } from '../config';
import type { DatabaseHandle } from '../db';
import { createLogger, type Logger } from '../observability/logger';
import { openDatabaseWithRetry } from '../services';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
}

export interface CliOverrides {
  /** An open database (tests on in-memory PGlite); otherwise opened from the configuration. */
  handle?: DatabaseHandle;
  now?: () => Date;
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

export interface OutputOptions {
  json?: boolean;
}

/** What every command module gets: configuration, output, and a database opened for one command. */
export interface CliContext {
  io: CliIo;
  overrides: CliOverrides;
  config(): Config;
  logger(): Logger;
  /** `--json`: one JSON document on stdout; otherwise the readable text. */
  print(options: OutputOptions, json: unknown, text: string): void;
  /** Opens the database (one attempt: an unreachable database is one clear line), runs `work`, closes it. */
  withDatabase<T>(work: (handle: DatabaseHandle) => Promise<T>): Promise<T>;
}

export function createCliContext(io: CliIo, overrides: CliOverrides): CliContext {
  let config: Config | undefined;
  let logger: Logger | undefined;
  const context: CliContext = {
    io,
    overrides,
    config: () => (config ??= loadConfig(io.env)),
    logger: () => (logger ??= createLogger(io.env.IDP_LOG_LEVEL ?? 'silent')),
    print(options, json, text) {
      io.stdout(options.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
    },
    async withDatabase(work) {
      const cfg = context.config();
      const handle =
        overrides.handle ??
        (await openDatabaseWithRetry(cfg, context.logger(), 1).catch((error: Error & { code?: string }) => {
          if (error.code === 'ERR_DATABASE_IN_USE') throw new CliError(error.message);
          const target = cfg.databaseUrl ? cfg.databaseUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') : cfg.dataDir;
          throw new CliError(`database unreachable at ${target}`);
        }));
      try {
        return await work(handle);
      } finally {
        if (!overrides.handle) await handle.close();
      }
    },
  };
  return context;
}

/** A plain aligned table for people; scripts use --json. */
export function table<T extends object>(rows: readonly T[], columns: readonly (keyof T & string)[]): string {
  const cell = (value: unknown) => (value === null || value === undefined ? '-' : value instanceof Date ? value.toISOString() : String(value));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => cell(r[c]))))].join('\n');
}
