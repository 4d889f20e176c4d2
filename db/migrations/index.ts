import type { Migration } from 'kysely';
import * as signingKeys from './2026-11-22T1900-signing-keys';

/** Every migration, by dated name; the migrator applies them in name order. */
export const migrations: Record<string, Migration> = {
  '2026-11-22T1900-signing-keys': signingKeys,
};
