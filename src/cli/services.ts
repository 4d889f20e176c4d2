import { loadMek, type MekProvider } from '../crypto/mek';
import { migrateToLatest } from '../db/migrate';
import { KeyLifecycle } from '../keys/lifecycle';
import type { CliContext } from './context';

/**
 * The few services the CLI builds for one command. It does not import the server's composition
 * root (src/services.ts), which loads the HTTP stack, the OAuth grants and password hashing: a
 * command pays only for what it uses. When the server runs the command for a CLI (HostServices),
 * the server's own instances are used instead.
 */

/** The MEK ring: the server's when it runs the command, else from the configuration (a development ring is generated as at start). */
export function mekOf(context: CliContext): MekProvider {
  if (context.overrides.host) return context.overrides.host.mek;
  const loaded = loadMek(context.config());
  if (loaded.generatedDevRing) {
    context.logger().warn({ file: loaded.generatedDevRing }, 'DEVELOPMENT KEY RING GENERATED: set IDP_MEK or IDP_MEK_FILE before production.');
  }
  return loaded.provider;
}

/** Runs `work` with the key lifecycle over a database opened for this command (migrated, every key checked against the MEK ring). */
export async function withLifecycle<T>(context: CliContext, work: (lifecycle: KeyLifecycle) => Promise<T>): Promise<T> {
  const { host, now } = context.overrides;
  if (host && !now) return work(host.lifecycle);
  const mek = mekOf(context);
  return context.withDatabase(async (handle) => {
    await migrateToLatest(handle);
    const lifecycle = new KeyLifecycle({ db: handle.db, mek, logger: context.logger(), now: () => context.now(), policy: context.config() });
    await lifecycle.assertAllDecryptable();
    return work(lifecycle);
  });
}
