import type { Client } from '../clients/repository';

/**
 * The tenant boundary at /oauth/introspect (docs/http-api.md "HTTP": a client without a tenant sees every
 * tenant's tokens; a client of tenant T sees only tokens whose every tenant is T. A token kind
 * passes all it knows of the token's tenant (the claim, its owner's tenant now); `null` or
 * `undefined` means no tenant, which a tenant-bound client never sees.
 */
export function withinTenant(client: Pick<Client, 'tenantId'>, ...tenantIds: readonly (string | null | undefined)[]): boolean {
  if (client.tenantId === null) return true;
  return tenantIds.every((tenantId) => tenantId === client.tenantId);
}
