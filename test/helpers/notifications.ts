import crypto from 'node:crypto';
import { sql } from 'kysely';
import { CLIENTS_CHANNEL } from '../../src/clients/repository';
import type { DatabaseHandle } from '../../src/db';
import { eventually } from '../oauth/helpers';

const MARKER = 'client:marker ';
/** The markers each handle's listener has received (one test listener per handle: a handle cannot unlisten). */
const received = new WeakMap<DatabaseHandle, Set<string>>();

/**
 * Resolves once every `idp_clients` notification committed before the call has been handed to the
 * handle's listeners (its client cache among them), instead of waiting a fixed time for them: a
 * marker is sent after them and awaited, since a channel's notifications arrive in commit order.
 * The marker names a client id no client can have (a space is not allowed), so a cache ignores it.
 */
export async function clientNotificationsDelivered(handle: DatabaseHandle, timeoutMs = 5_000): Promise<void> {
  let markers = received.get(handle);
  if (!markers) {
    const seen = new Set<string>();
    received.set(handle, seen);
    await handle.listen(CLIENTS_CHANNEL, (payload) => {
      if (payload.startsWith(MARKER)) seen.add(payload);
    });
    markers = seen;
  }
  const marker = `${MARKER}${crypto.randomUUID()}`;
  await sql`select pg_notify(${CLIENTS_CHANNEL}, ${marker})`.execute(handle.db);
  const seen = markers;
  await eventually(async () => expect(seen.has(marker)).toBe(true), timeoutMs);
}
