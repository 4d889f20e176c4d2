import { Migrator, type MigrationResult } from 'kysely';
import { migrations } from '../../db/migrations';
import type { DatabaseHandle } from './index';

export class MigrationError extends Error {
  readonly code = 'ERR_MIGRATION';
}

/** The service's migrator on `handle` (its migrations, its bookkeeping tables); tests step it to a given migration. */
export function migrator(handle: DatabaseHandle): Migrator {
  return new Migrator({
    db: handle.db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'idp_migrations',
    migrationLockTableName: 'idp_migrations_lock',
  });
}

/** Applies every pending migration; returns the names applied. Concurrent callers are serialised by Kysely's migration lock. */
export async function migrateToLatest(handle: DatabaseHandle): Promise<string[]> {
  const { error, results } = await migrator(handle).migrateToLatest();
  if (error) {
    const failed = results?.find((r: MigrationResult) => r.status === 'Error');
    const message = error instanceof Error ? error.message : String(error);
    throw new MigrationError(`migration ${failed?.migrationName ?? '(setup)'} failed: ${message}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Which migrations the database has and which it lacks (`idp status`); reads only, creates nothing. */
export async function migrationStatus(handle: DatabaseHandle): Promise<{ applied: string[]; pending: string[] }> {
  const all = await migrator(handle).getMigrations();
  return { applied: all.filter((m) => m.executedAt).map((m) => m.name), pending: all.filter((m) => !m.executedAt).map((m) => m.name) };
}
