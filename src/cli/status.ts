import type { Command } from 'commander';
import { sql } from 'kysely';
import type { Config } from '../config';
import { openPrivateKey } from '../crypto/envelope';
import type { MekProvider } from '../crypto/mek';
import type { DatabaseHandle } from '../db';
import { migrationStatus } from '../db/migrate';
import { envelopeOf, listPublishedKeys } from '../keys/repository';
import { keyTransition, type KeyTransition } from '../keys/view';
import { table, type CliContext, type OutputOptions } from './context';
import { mekOf } from './services';
import { printable } from './text';

/** One live (published) key in `idp status`. */
export interface StatusKey extends KeyTransition {
  kid: string;
  state: string;
  published_at: string | null;
  activated_at: string | null;
  deactivated_at: string | null;
  mek_id: string | null;
  /** Its private key decrypts under the ring (false: the ring lacks its MEK, or the wrong key is under that id). */
  opens: boolean;
}

/** `idp status --json` shape. */
export interface StatusReport {
  checked_at: string;
  database: {
    kind: 'postgres' | 'pglite';
    /** The connection string without its password, or the PGlite data directory. */
    target: string;
    migrations: { applied: string[]; pending: string[] };
  };
  keys: StatusKey[];
  mek: {
    primary: string;
    ring: string[];
    /** MEK ids that wrap the live keys. */
    in_use: string[];
    all_keys_open: boolean;
  };
  /** Null when the table is not there yet (pending migrations). */
  clients: { total: number; disabled: number } | null;
  admin_tokens: { active: number; revoked: number; expired: number } | null;
  /** Failure counters that refuse requests right now (docs/security.md "Abuse limits and the threat model": rows of rate_limit_counters with blocked_until in the future. */
  blocks_in_force: number | null;
  /** What needs the operator, one sentence each; empty when all is well. */
  problems: string[];
}

export function registerStatusCommand(program: Command, context: CliContext): void {
  program
    .command('status')
    .description('one screen: live keys and their next transition, MEK ring, clients, admin tokens, blocks, database and migrations')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const mek = mekOf(context);
      const report = await context.withDatabase((handle) => collectStatus(handle, context.config(), mek, context.now()));
      context.print(opts, report, statusText(report));
    });
}

/** Reads everything `status` shows; changes nothing (no migration either: pending ones are reported). */
export async function collectStatus(handle: DatabaseHandle, config: Config, mek: MekProvider, now: Date): Promise<StatusReport> {
  const { db } = handle;
  const migrations = await migrationStatus(handle);
  const problems: string[] = [];
  if (migrations.pending.length > 0) problems.push(`${migrations.pending.length} migration(s) pending: run \`idp migrate\` (the server also migrates at start)`);

  const rows = await orNull(() => listPublishedKeys(db));
  const keys: StatusKey[] = [];
  for (const row of rows ?? []) {
    const envelope = envelopeOf(row);
    let opens = false;
    if (envelope) {
      try {
        (await openPrivateKey(mek, envelope, row.kid, row.purpose)).fill(0);
        opens = true;
      } catch (error) {
        problems.push(`key ${row.kid} (${row.state}) does not open under the ring: ${(error as Error).message}`);
      }
    }
    keys.push({
      kid: row.kid,
      state: row.state,
      published_at: row.published_at?.toISOString() ?? null,
      activated_at: row.activated_at?.toISOString() ?? null,
      deactivated_at: row.deactivated_at?.toISOString() ?? null,
      mek_id: row.mek_id,
      opens,
      ...keyTransition(row, rows ?? [], config),
    });
  }
  if (rows && !keys.some((k) => k.state === 'current')) problems.push('no current key: the server creates one at start, or run `idp keys check`');
  if (rows && !keys.some((k) => k.state === 'next')) problems.push('no next key: run `idp keys check`');

  const count = (value: unknown) => Number(value ?? 0);
  const clients = await orNull(async () => {
    const row = await db
      .selectFrom('oauth_clients')
      .select((eb) => [eb.fn.countAll().as('total'), eb.fn.count('disabled_at').as('disabled')])
      .executeTakeFirstOrThrow();
    return { total: count(row.total), disabled: count(row.disabled) };
  });
  const adminTokens = await orNull(async () => {
    const row = await db
      .selectFrom('admin_tokens')
      .select([
        sql<string>`count(*) filter (where revoked_at is null and expires_at > ${now})`.as('active'),
        sql<string>`count(*) filter (where revoked_at is not null)`.as('revoked'),
        sql<string>`count(*) filter (where revoked_at is null and expires_at <= ${now})`.as('expired'),
      ])
      .executeTakeFirstOrThrow();
    return { active: count(row.active), revoked: count(row.revoked), expired: count(row.expired) };
  });
  const blocks = await orNull(async () => {
    const row = await db.selectFrom('rate_limit_counters').select((eb) => eb.fn.countAll().as('n')).where('blocked_until', '>', now).executeTakeFirstOrThrow();
    return count(row.n);
  });

  return {
    checked_at: now.toISOString(),
    database: { kind: handle.kind, target: databaseTarget(config), migrations },
    keys,
    mek: {
      primary: mek.primaryId,
      ring: [...mek.ids],
      in_use: [...new Set(keys.map((k) => k.mek_id).filter((id): id is string => id !== null))].sort(),
      all_keys_open: keys.every((k) => k.opens),
    },
    clients,
    admin_tokens: adminTokens,
    blocks_in_force: blocks,
    problems,
  };
}

/** A table that is not there yet (pending migrations) is shown as unknown rather than failing the whole screen. */
async function orNull<T>(read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch {
    return null;
  }
}

function databaseTarget(config: Config): string {
  return config.databaseUrl ? config.databaseUrl.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@') : `${config.dataDir} (embedded PGlite)`;
}

export function statusText(report: StatusReport): string {
  const { database, mek } = report;
  const unknown = '? (table missing: migrations pending)';
  const lines = [
    `database      ${database.kind} ${printable(database.target)}`,
    `migrations    ${database.migrations.applied.length} applied, ${database.migrations.pending.length} pending${database.migrations.pending.length ? `: ${database.migrations.pending.join(', ')}` : ''}`,
    `MEK ring      primary ${mek.primary}; ring ${mek.ring.join(', ')}; in use ${mek.in_use.join(', ') || '-'}; ${mek.all_keys_open ? 'every live key opens' : 'SOME KEYS DO NOT OPEN'}`,
    `clients       ${report.clients ? `${report.clients.total} (${report.clients.disabled} disabled)` : unknown}`,
    `admin tokens  ${report.admin_tokens ? `${report.admin_tokens.active} active, ${report.admin_tokens.revoked} revoked, ${report.admin_tokens.expired} expired` : unknown}`,
    `blocks        ${report.blocks_in_force ?? unknown} in force`,
    '',
    table(
      report.keys.map((k) => ({ ...k, opens: k.opens ? 'yes' : 'NO' })),
      ['kid', 'state', 'activated_at', 'next_transition', 'next_transition_at', 'mek_id', 'opens'],
    ),
  ];
  if (report.problems.length > 0) lines.push('', 'problems:', ...report.problems.map((p) => `  - ${p}`));
  return lines.join('\n');
}
