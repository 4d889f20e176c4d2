import type { Kysely } from 'kysely';
import { recordAudit, type Actor } from '../audit';
import { parseScope } from '../clients/service';
import type { Database } from '../db/schema';
import { ServiceError } from '../errors';
import { checkName, InvalidNameError } from '../text';
import { deleteResource, findResource, insertResource, knownResourceScopes, listResources, listResourceScopes, type Resource } from './repository';

export const MAX_RESOURCE_URL_LENGTH = 2048;
export const MAX_RESOURCE_SCOPES = 100;

export interface ResourcePolicy {
  /** NODE_ENV=production: a resource URL must be https. */
  production: boolean;
}

// RFC 3986 characters only: what is registered is compared byte for byte with what clients send.
const URI_CHARACTERS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;

/**
 * A resource URL as it may be registered (docs/oauth.md "Resources": an absolute https URL (http too
 * outside production), without fragment (RFC 8707 §2) or user information, at most 2048
 * characters. Returned unchanged: it is the `aud` of tokens, compared as an exact string.
 */
export function checkResourceUrl(url: string, policy: ResourcePolicy): string {
  const refuse = (why: string) => new ServiceError('invalid_request', `resource URL ${JSON.stringify(url.slice(0, 100))} ${why}`);
  if (url.length === 0) throw new ServiceError('invalid_request', 'a resource URL may not be empty');
  if (url.length > MAX_RESOURCE_URL_LENGTH) throw refuse(`is longer than ${MAX_RESOURCE_URL_LENGTH} characters`);
  if (!URI_CHARACTERS.test(url)) throw refuse('has characters a URL may not contain (spaces, quotes, backslashes, non-ASCII: percent-encode them)');
  if (url.includes('#')) throw refuse('has a fragment (RFC 8707 §2)');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw refuse('is not an absolute URL');
  }
  const scheme = parsed.protocol;
  if (scheme !== 'https:' && !(scheme === 'http:' && !policy.production)) throw refuse(policy.production ? 'must be https' : 'must be https (or http outside production)');
  if (!/^https?:\/\/[^/?]/i.test(url)) throw refuse('has no host');
  if (parsed.username !== '' || parsed.password !== '') throw refuse('has user information');
  return url;
}

/** Resource scopes: the RFC 6749 §3.3 tokens of client scopes, at least one, at most MAX_RESOURCE_SCOPES. */
export function checkResourceScopes(scopes: readonly string[]): string[] {
  const parsed = parseScope(scopes.join(' '));
  if (parsed === undefined || scopes.some((s) => s.includes(' '))) {
    throw new ServiceError('invalid_request', 'scopes must be RFC 6749 §3.3 scope tokens (printable ASCII, no space, quote or backslash)');
  }
  if (parsed.length === 0) throw new ServiceError('invalid_request', 'a resource needs at least one scope');
  if (parsed.length > MAX_RESOURCE_SCOPES) throw new ServiceError('invalid_request', `a resource has at most ${MAX_RESOURCE_SCOPES} scopes`);
  return parsed;
}

export interface ResourceChange {
  actor: Actor;
  requestId?: string;
  reason?: string;
}

export interface NewResource {
  url: string;
  name: string;
  scopes: readonly string[];
}

export interface ResourcesDeps {
  db: Kysely<Database>;
  now: () => Date;
  policy: ResourcePolicy;
}

/**
 * The registered resources (docs/oauth.md "Resources", for the CLI, the admin API, discovery and the
 * authorization-code flow. Refusals are ServiceErrors: `invalid_request`, `conflict` (the URL is
 * registered already), `not_found`. Every change is audited (`resource.created`, `resource.deleted`).
 */
export class Resources {
  constructor(private readonly deps: ResourcesDeps) {}

  /** The resource registered under exactly this URL. */
  get(url: string): Promise<Resource | undefined> {
    return findResource(this.deps.db, url);
  }

  list(): Promise<Resource[]> {
    return listResources(this.deps.db);
  }

  /** Their scopes, distinct, in code-point order, at most `limit`. */
  scopes(limit: number): Promise<string[]> {
    return listResourceScopes(this.deps.db, limit);
  }

  /** Of `scopes`, those at least one registered resource has. */
  knownScopes(scopes: readonly string[]): Promise<string[]> {
    return knownResourceScopes(this.deps.db, scopes);
  }

  async create(input: NewResource, change: ResourceChange): Promise<Resource> {
    const url = checkResourceUrl(input.url, this.deps.policy);
    let name: string;
    try {
      name = checkName(input.name, 'a resource name');
    } catch (error) {
      if (error instanceof InvalidNameError) throw new ServiceError('invalid_request', error.message);
      throw error;
    }
    const scopes = checkResourceScopes(input.scopes);
    const now = this.deps.now();
    await this.deps.db.transaction().execute(async (trx) => {
      if (!(await insertResource(trx, { url, name, scopes, now }))) throw new ServiceError('conflict', `resource ${url} is registered already`);
      await recordAudit(trx, { at: now, actor: change.actor, action: 'resource.created', target: url, reason: change.reason, requestId: change.requestId, details: { name, scopes } });
    });
    return (await this.get(url)) as Resource;
  }

  /** Deletes a resource; tokens already issued for it keep their `aud` until they expire. */
  async delete(url: string, change: ResourceChange): Promise<Resource> {
    const now = this.deps.now();
    return this.deps.db.transaction().execute(async (trx) => {
      const deleted = await deleteResource(trx, url);
      if (!deleted) throw new ServiceError('not_found', `no resource ${url.slice(0, 2048)}`);
      await recordAudit(trx, {
        at: now,
        actor: change.actor,
        action: 'resource.deleted',
        target: url,
        reason: change.reason,
        requestId: change.requestId,
        details: { name: deleted.name, scopes: deleted.scopes },
      });
      return deleted;
    });
  }
}
