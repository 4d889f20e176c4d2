import type { KeysetPosition } from '../http/cursor';
import type { Kysely } from 'kysely';
import { recordAudit, type Actor } from '../audit';
import { ISSUED_CLIENT_ID } from '../clients/client-id';
import type { DatabaseHandle } from '../db';
import type { ApiKeyRow, Database } from '../db/schema';
import type { Logger } from '../observability/logger';
import { ApiKeyCache } from './cache';
import { apiKeySecretMatches, newApiKey, parseApiKey } from './format';
import * as repo from './repository';
import type { ApiKeyOwner, ApiKeyRecord, OwnerState } from './repository';
import { quoted } from '../text';

export type { ApiKeyOwner, ApiKeyRecord } from './repository';

/** A refused API-key operation: `code` is stable (tests and surfaces map on it), `message` one line for a person. */
export class ApiKeyError extends Error {
  constructor(
    readonly code: 'ERR_API_KEY_NOT_FOUND' | 'ERR_API_KEY_INVALID' | 'ERR_OWNER_NOT_FOUND' | 'ERR_OWNER_DISABLED' | 'ERR_TOO_MANY_KEYS',
    message: string,
  ) {
    super(message);
    this.name = 'ApiKeyError';
  }
}

export interface ApiKeyPolicy {
  /** IDP_API_KEY_MAX_TTL in ms; undefined (`never`) allows keys without expiry. */
  maxTtlMs: number | undefined;
  /** What a user may put in its keys: the scopes of a user access token. */
  userScopes: readonly string[];
  /** Live (unrevoked, unexpired) keys one owner may hold. Default 100. */
  maxKeysPerOwner?: number;
}

export interface ChangeContext {
  actor: Actor;
  now: Date;
  requestId?: string;
  reason?: string;
}

export interface NewApiKey {
  owner: ApiKeyOwner;
  name: string;
  /** Undefined or empty: every scope the owner may have. */
  scopes?: readonly string[];
  /** Undefined: IDP_API_KEY_MAX_TTL from now (no expiry when it is `never`). */
  expiresAt?: Date;
}

const DEFAULT_MAX_KEYS_PER_OWNER = 100;
/** RFC 6749 §3.3 scope-token. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,200}$/;
// Printable, single line, no bidirectional overrides: names are shown in tables and logs.
// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Ids that cannot exist are refused before a query (a malformed uuid would be a database error). */
export function plausibleOwnerId(owner: ApiKeyOwner): boolean {
  return owner.kind === 'user' ? UUID.test(owner.id) : ISSUED_CLIENT_ID.test(owner.id);
}

/** The scopes an owner may give its keys now: a user's are those of its access tokens; a client's its allowed scopes. */
export function ownerScopes(state: OwnerState, policy: Pick<ApiKeyPolicy, 'userScopes'>): readonly string[] {
  return state.owner.kind === 'user' ? policy.userScopes : (state.clientScopes ?? []);
}

function checkName(name: string): string {
  const trimmed = name.trim();
  if (UNPRINTABLE.test(name) || trimmed === '' || [...trimmed].length > 200) {
    throw new ApiKeyError('ERR_API_KEY_INVALID', 'a key name is 1 to 200 printable characters');
  }
  return trimmed;
}

function checkScopes(requested: readonly string[] | undefined, allowed: readonly string[], owner: ApiKeyOwner): string[] {
  if (requested === undefined || requested.length === 0) return [...allowed];
  const scopes = [...new Set(requested)];
  const malformed = scopes.find((s) => !SCOPE_TOKEN.test(s));
  if (malformed !== undefined) throw new ApiKeyError('ERR_API_KEY_INVALID', 'a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)');
  const refused = scopes.filter((s) => !allowed.includes(s));
  if (refused.length > 0) {
    throw new ApiKeyError('ERR_API_KEY_INVALID', `scope not allowed for ${owner.kind} ${owner.id}: ${quoted(refused.join(' '))} (allowed: ${allowed.join(' ') || 'none'})`);
  }
  return scopes;
}

function checkExpiry(expiresAt: Date | undefined, policy: ApiKeyPolicy, now: Date): Date | null {
  const max = policy.maxTtlMs;
  if (expiresAt === undefined) return max === undefined ? null : new Date(now.getTime() + max);
  if (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= now.getTime()) throw new ApiKeyError('ERR_API_KEY_INVALID', 'the expiry must be in the future');
  if (max !== undefined && expiresAt.getTime() - now.getTime() > max) {
    throw new ApiKeyError('ERR_API_KEY_INVALID', `the expiry is over IDP_API_KEY_MAX_TTL (${Math.floor(max / 1000)} s from now, ${new Date(now.getTime() + max).toISOString()})`);
  }
  return expiresAt;
}

/**
 * Creates a key for a user or a client: the owner must exist and be enabled (and its tenant), the
 * scopes must be a subset of the owner's, the expiry at most IDP_API_KEY_MAX_TTL. Returns the key
 * itself, which exists nowhere else afterwards, and the stored row.
 */
export async function createApiKey(db: Kysely<Database>, input: NewApiKey, policy: ApiKeyPolicy, change: ChangeContext): Promise<{ key: string; row: ApiKeyRow }> {
  const name = checkName(input.name);
  const expiresAt = checkExpiry(input.expiresAt, policy, change.now);
  const { owner } = input;
  if (!plausibleOwnerId(owner)) throw new ApiKeyError('ERR_OWNER_NOT_FOUND', `no ${owner.kind} ${quoted(owner.id)}`);
  const generated = newApiKey();
  const row = await db.transaction().execute(async (trx) => {
    await repo.lockOwner(trx, owner);
    const state = await repo.findOwnerState(trx, owner);
    if (!state) throw new ApiKeyError('ERR_OWNER_NOT_FOUND', `no ${owner.kind} ${quoted(owner.id)}`);
    if (state.disabled) throw new ApiKeyError('ERR_OWNER_DISABLED', `${owner.kind} ${owner.id} is disabled`);
    if (state.tenantDisabled) throw new ApiKeyError('ERR_OWNER_DISABLED', `tenant ${state.tenantId} of ${owner.kind} ${owner.id} is disabled`);
    const scopes = checkScopes(input.scopes, ownerScopes(state, policy), owner);
    const cap = policy.maxKeysPerOwner ?? DEFAULT_MAX_KEYS_PER_OWNER;
    if ((await repo.countLiveKeys(trx, owner, change.now)) >= cap) {
      throw new ApiKeyError('ERR_TOO_MANY_KEYS', `${owner.kind} ${owner.id} already has ${cap} live API keys; revoke one first`);
    }
    const inserted = await repo.insertApiKey(trx, {
      id: generated.id,
      name,
      owner,
      tenantId: state.tenantId,
      scopes,
      secretHash: generated.secretHash,
      expiresAt,
      createdBy: change.actor,
      now: change.now,
    });
    await recordAudit(trx, {
      ...audit(change, 'api-key.created', inserted.id),
      details: {
        name,
        [owner.kind === 'user' ? 'user_id' : 'client_id']: owner.id,
        tenant_id: state.tenantId,
        scopes,
        expires_at: expiresAt?.toISOString() ?? null,
      },
    });
    return inserted;
  });
  return { key: generated.key, row };
}

/**
 * Revokes a key; revoking a revoked key changes nothing and returns it as it is. With `owner`, a
 * key of someone else is "not found" (an owner revoking through its own API learns nothing of
 * other keys).
 */
export async function revokeApiKey(db: Kysely<Database>, id: string, change: ChangeContext, options: { owner?: ApiKeyOwner } = {}): Promise<ApiKeyRow> {
  return db.transaction().execute(async (trx) => {
    const existing = await repo.findApiKey(trx, id);
    if (!existing || (options.owner && !sameOwner(repo.ownerOf(existing), options.owner))) {
      throw new ApiKeyError('ERR_API_KEY_NOT_FOUND', `no API key ${quoted(id)}`);
    }
    const revoked = await repo.revokeApiKeyRow(trx, id, change.actor, change.now);
    if (!revoked) return existing;
    await recordAudit(trx, {
      ...audit(change, 'api-key.revoked', id),
      details: { name: revoked.name, user_id: revoked.user_id, client_id: revoked.client_id, tenant_id: revoked.tenant_id },
    });
    return revoked;
  });
}

export function sameOwner(a: ApiKeyOwner, b: ApiKeyOwner): boolean {
  return a.kind === b.kind && a.id === b.id;
}

function audit(change: ChangeContext, action: string, target: string) {
  return { at: change.now, actor: change.actor, action, target, reason: change.reason, requestId: change.requestId };
}

/** What presenting a key found. Only a key whose secret matches is ever reported as anything but unknown. */
export type Presentation =
  | { status: 'malformed' }
  | { status: 'unknown' }
  | { status: 'revoked' | 'expired' | 'owner_disabled'; key: ApiKeyRecord }
  | { status: 'active'; key: ApiKeyRecord; scopes: readonly string[] };

export interface ApiKeysDeps {
  handle: DatabaseHandle;
  logger: Logger;
  now: () => Date;
  policy: ApiKeyPolicy;
  /** Periodic re-read of the cached keys (the fallback to LISTEN/NOTIFY). */
  refreshIntervalMs: number;
  /** Bound of the in-memory key cache. */
  maxCachedKeys?: number;
}

/** last_used_at is written at most once per this interval per key. */
export const LAST_USED_INTERVAL_MS = 60_000;

/**
 * The API keys of one process: the operations of the admin API, the user API and the CLI, and the
 * check of a presented key (introspection, token exchange) from the in-memory cache.
 */
export class ApiKeys {
  readonly cache: ApiKeyCache;

  constructor(private readonly deps: ApiKeysDeps) {
    this.cache = new ApiKeyCache({ handle: deps.handle, logger: deps.logger, refreshIntervalMs: deps.refreshIntervalMs, maxEntries: deps.maxCachedKeys });
  }

  get policy(): ApiKeyPolicy {
    return this.deps.policy;
  }

  start(): Promise<void> {
    return this.cache.start();
  }

  stop(): void {
    this.cache.stop();
  }

  create(input: NewApiKey, change: Omit<ChangeContext, 'now'>): Promise<{ key: string; row: ApiKeyRow }> {
    return createApiKey(this.deps.handle.db, input, this.deps.policy, { ...change, now: this.deps.now() });
  }

  /** Revokes a key; this instance refuses it from the next request on, the others on the notification. */
  async revoke(id: string, change: Omit<ChangeContext, 'now'>, options: { owner?: ApiKeyOwner } = {}): Promise<ApiKeyRow> {
    const row = await revokeApiKey(this.deps.handle.db, id, { ...change, now: this.deps.now() }, options);
    this.cache.forget(id);
    return row;
  }

  find(id: string): Promise<ApiKeyRow | undefined> {
    return repo.findApiKey(this.deps.handle.db, id);
  }

  list(filter: repo.ApiKeyFilter): Promise<{ rows: ApiKeyRow[]; next?: KeysetPosition }> {
    return repo.listApiKeys(this.deps.handle.db, filter);
  }

  /**
   * Checks a presented key. A key that does not parse costs no query; a known key costs one
   * SHA-256 and a constant-time comparison, from memory. Throws only when the key is not in memory
   * and the database is unreachable.
   */
  async present(text: string): Promise<Presentation> {
    const parsed = parseApiKey(text);
    if (!parsed) return { status: 'malformed' };
    const key = await this.cache.get(parsed.id);
    if (!key || !apiKeySecretMatches(parsed.secret, key.secretHash)) return { status: 'unknown' };
    const now = this.deps.now();
    if (key.revokedAt !== null) return { status: 'revoked', key };
    if (key.expiresAt !== null && key.expiresAt.getTime() <= now.getTime()) return { status: 'expired', key };
    if (key.ownerState.disabled || key.ownerState.tenantDisabled) return { status: 'owner_disabled', key };
    // The owner's scopes may have shrunk since the key was made: a key never grants more than its owner has now.
    const allowed = ownerScopes(key.ownerState, this.deps.policy);
    return { status: 'active', key, scopes: key.scopes.filter((s) => allowed.includes(s)) };
  }

  /** Records a use of an active key: at most one write a minute per key, off the request's path. */
  recordUse(key: ApiKeyRecord): void {
    const now = this.deps.now();
    if (!this.cache.claimUse(key, now.getTime(), LAST_USED_INTERVAL_MS)) return;
    repo.touchApiKey(this.deps.handle.db, key.id, now, LAST_USED_INTERVAL_MS).catch((error: Error) => {
      this.deps.logger.warn({ err: error.message, apiKeyId: key.id }, 'could not record an API key use');
    });
  }
}

export async function startApiKeys(deps: ApiKeysDeps): Promise<ApiKeys> {
  const apiKeys = new ApiKeys(deps);
  await apiKeys.start();
  return apiKeys;
}
