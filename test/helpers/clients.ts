import { listClients, type Client } from '../../src/clients/repository';
import type { DatabaseHandle } from '../../src/db';

/**
 * Every client, newest first, read a page at a time through the service's own listing: for tests that
 * compare the whole table before and after a refused change. The service itself never holds them all.
 */
export async function everyClient(db: DatabaseHandle['db']): Promise<Client[]> {
  const all: Client[] = [];
  let after: Awaited<ReturnType<typeof listClients>>['next'];
  do {
    const page = await listClients(db, { limit: 500, after });
    all.push(...page.clients);
    after = page.next;
  } while (after);
  return all;
}
