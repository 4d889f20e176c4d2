import { loadMekRing, type MekProvider } from '../crypto/mek';
import type { KeyLifecycle } from '../keys/lifecycle';
import { openKeyLifecycle } from '../keys/start';
import type { CliContext } from './context';

/**
 * The few services the CLI builds for one command, with the same start-up steps as the server
 * (src/keys/start.ts, src/crypto/mek.ts). It does not load the composition root, which brings the
 * HTTP stack, the OAuth grants and password hashing: a command pays only for what it uses. When the
 * server runs the command for a CLI (HostServices), the server's own instances are used instead.
 */

/** The MEK ring: the server's when it runs the command, else from the configuration (a development ring is generated as at start). */
export function mekOf(context: CliContext): MekProvider {
  if (context.overrides.host) return context.overrides.host.mek;
  return loadMekRing(context.config(), context.logger());
}

/** Runs `work` with the key lifecycle over a database opened for this command (migrated, every key checked against the MEK ring). */
export async function withLifecycle<T>(context: CliContext, work: (lifecycle: KeyLifecycle) => Promise<T>): Promise<T> {
  const { host, now } = context.overrides;
  if (host && !now) return work(host.lifecycle);
  const mek = mekOf(context);
  return context.withDatabase(async (handle) => work(await openKeyLifecycle({ handle, mek, logger: context.logger(), now: () => context.now(), policy: context.config() })));
}
