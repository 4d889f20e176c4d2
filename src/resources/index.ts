import type { Kysely } from 'kysely';
import type { Capability } from '../capability';
import type { Database } from '../db/schema';
import { Resources } from './service';

export { findResource, type Resource } from './repository';
export { Resources, checkResourceUrl, type NewResource, type ResourceChange } from './service';

/** What the resources capability uses. */
export interface ResourcesCapabilityDeps {
  db: Kysely<Database>;
  now(): Date;
  /** NODE_ENV=production: resource URLs must be https. */
  production: boolean;
}

/**
 * The registered resources (docs/oauth.md "Resources". Its admin routes are mounted inside the admin
 * router (src/resources/admin-routes.ts, sharing its guard); discovery lists its scopes; the
 * authorization-code flow reads `service.get(url)`.
 */
export function resourcesCapability(deps: ResourcesCapabilityDeps): Capability & { service: Resources } {
  return { name: 'resources', service: new Resources({ db: deps.db, now: deps.now, policy: { production: deps.production } }) };
}
