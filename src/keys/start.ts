import type { MekProvider } from '../crypto/mek';
import type { DatabaseHandle } from '../db';
import { migrateToLatest } from '../db/migrate';
import { KeyLifecycle, type KeyLifecycleDeps } from './lifecycle';

/**
 * The first steps of every process that touches signing keys, the server's and each CLI command's
 * alike: migrate, build the lifecycle, and check that the MEK ring opens every key (a wrong ring
 * stops start-up here, naming the MEK id, rather than at the first signature).
 */
export async function openKeyLifecycle(options: {
  handle: DatabaseHandle;
  mek: MekProvider;
  logger: KeyLifecycleDeps['logger'];
  policy: KeyLifecycleDeps['policy'];
  now?: () => Date;
  observer?: KeyLifecycleDeps['observer'];
}): Promise<KeyLifecycle> {
  await migrateToLatest(options.handle);
  const lifecycle = new KeyLifecycle({
    db: options.handle.db,
    mek: options.mek,
    logger: options.logger,
    now: options.now,
    policy: options.policy,
    observer: options.observer,
  });
  await lifecycle.assertAllDecryptable();
  return lifecycle;
}
