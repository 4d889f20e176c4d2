import type { Kysely, Transaction } from 'kysely';
import { recordAudit, type Actor } from '../audit';
import { openPrivateKey, rewrapEnvelope, sealPrivateKey } from '../crypto/envelope';
import type { MekProvider } from '../crypto/mek';
import type { Database, SigningKeyRow } from '../db/schema';
import type { Logger } from '../observability/logger';
import { generateKeyMaterial, type KeyGenerator } from './material';
import {
  announceKeyChange,
  databaseTime,
  destroyKey,
  envelopeOf,
  findKey,
  insertKey,
  listKeys,
  listPublishedKeys,
  lockKeys,
  setState,
  SIGNING_PURPOSE,
  updateEnvelope,
} from './repository';

export interface LifecyclePolicy {
  keySize: number;
  rotationIntervalMs: number;
  prepublishMs: number;
  retentionMs: number;
  jwksMaxAgeSeconds: number;
}

/** What one transition did, as the CLI and the audit log report it. */
export interface KeyChange {
  action: 'created-current' | 'created-next' | 'promoted' | 'deactivated' | 'retired' | 'revoked';
  kid: string;
}

export interface CheckResult {
  changes: KeyChange[];
  /** True when the check found work, but another instance had done it by the time the lock was ours. */
  alreadyRotated: boolean;
}

export interface RevokeResult {
  kid: string;
  previousState: string;
  changes: KeyChange[];
  /** How long verifiers that honour the JWKS Cache-Control may keep trusting the key. */
  verifierCacheSeconds: number;
}

export interface LifecycleObserver {
  onChange?(change: KeyChange): void;
  onAlreadyRotated?(): void;
}

export class KeyLifecycleError extends Error {
  constructor(
    readonly code: 'ERR_ROTATION_TOO_EARLY' | 'ERR_KEY_NOT_FOUND' | 'ERR_KEY_STATE' | 'ERR_NO_NEXT_KEY',
    message: string,
    readonly safeAt?: Date,
  ) {
    super(message);
    this.name = 'KeyLifecycleError';
  }
}

type Step = { kind: 'bootstrap' } | { kind: 'create-next' } | { kind: 'promote' } | { kind: 'retire'; kid: string };

/**
 * The rotation check as a pure function of the live keys and the time: what must change now.
 * Kept apart from the database so that the rules read in one place.
 */
export function planRotation(keys: readonly SigningKeyRow[], now: Date, policy: LifecyclePolicy): Step[] {
  const current = keys.find((k) => k.state === 'current');
  const next = keys.find((k) => k.state === 'next');
  const steps: Step[] = [];
  if (!current && !next) steps.push({ kind: 'bootstrap' });
  else if (!current) steps.push({ kind: 'promote' });
  else if (!next) steps.push({ kind: 'create-next' });
  else if (current.activated_at && next.published_at) {
    const signedLongEnough = now.getTime() - current.activated_at.getTime() >= policy.rotationIntervalMs;
    const publishedLongEnough = now.getTime() - next.published_at.getTime() >= policy.prepublishMs;
    if (signedLongEnough && publishedLongEnough) steps.push({ kind: 'promote' });
  }
  for (const key of keys) {
    if (key.state === 'previous' && key.deactivated_at && now.getTime() - key.deactivated_at.getTime() >= policy.retentionMs) {
      steps.push({ kind: 'retire', kid: key.kid });
    }
  }
  return steps;
}

/** When the `next` key will have been published for IDP_KEY_PREPUBLISH. */
export function safeToPromoteAt(next: SigningKeyRow, policy: LifecyclePolicy): Date {
  return new Date((next.published_at as Date).getTime() + policy.prepublishMs);
}

export interface KeyLifecycleDeps {
  db: Kysely<Database>;
  mek: MekProvider;
  policy: LifecyclePolicy;
  logger: Logger;
  /**
   * Tests only: a fake clock that replaces the database's in every decision, so that tests run whole
   * lifecycles in no time. Unset (production), every decision and timestamp takes the database
   * server's clock, read inside the transition's transaction once the lock is held: an instance whose
   * own clock is off neither promotes a key early nor retires one late, and all instances agree.
   */
  now?: () => Date;
  generate?: KeyGenerator;
  observer?: LifecycleObserver;
}

/**
 * The key lifecycle of docs/signing-keys.md "Signing keys". Every transition is one transaction under one advisory lock, writes
 * an audit event, and announces itself on LISTEN/NOTIFY; instances racing on it change the state once.
 */
export class KeyLifecycle {
  private readonly generate: KeyGenerator;

  constructor(private readonly deps: KeyLifecycleDeps) {
    this.generate = deps.generate ?? generateKeyMaterial;
  }

  /** The time decisions are made at: the fake clock of a test, else the database server's clock. */
  private now(db: Kysely<Database> | Transaction<Database>): Promise<Date> {
    return this.deps.now ? Promise.resolve(this.deps.now()) : databaseTime(db);
  }

  list(): Promise<SigningKeyRow[]> {
    return listKeys(this.deps.db);
  }

  /** The rotation check (cron, `idp keys check`, start-up): bootstrap, promote when due, retire. */
  async check(actor: Actor): Promise<CheckResult> {
    // A first look without the lock, so that the usual nothing-to-do costs no lock; judged on the database's clock too.
    const before = planRotation(await listPublishedKeys(this.deps.db), await this.now(this.deps.db), this.deps.policy);
    if (before.length === 0) return { changes: [], alreadyRotated: false };
    const changes = await this.locked(async (trx, now) => {
      const steps = planRotation(await listPublishedKeys(trx), now, this.deps.policy);
      const done: KeyChange[] = [];
      for (const step of steps) done.push(...(await this.apply(trx, step, now, actor, 'scheduled rotation check')));
      return done;
    });
    if (changes.length === 0) {
      this.deps.logger.info({ actor }, 'already rotated');
      this.deps.observer?.onAlreadyRotated?.();
      return { changes, alreadyRotated: true };
    }
    return { changes, alreadyRotated: false };
  }

  /** `idp keys rotate [--force]`: promote `next` now; without force only once it is safely published. */
  async rotate(actor: Actor, options: { force: boolean; reason?: string }): Promise<KeyChange[]> {
    return this.locked(async (trx, now) => {
      const keys = await listPublishedKeys(trx);
      const next = keys.find((k) => k.state === 'next');
      if (!next) throw new KeyLifecycleError('ERR_NO_NEXT_KEY', 'there is no next key to promote; run `idp keys check` first');
      const safeAt = safeToPromoteAt(next, this.deps.policy);
      if (!options.force && now < safeAt) {
        throw new KeyLifecycleError(
          'ERR_ROTATION_TOO_EARLY',
          `next key ${next.kid} has been published for less than IDP_KEY_PREPUBLISH; rotation is safe from ${safeAt.toISOString()} (or use --force)`,
          safeAt,
        );
      }
      if (now < safeAt) {
        this.deps.logger.warn(
          { kid: next.kid, safeAt: safeAt.toISOString() },
          'forced rotation: verifiers that have not refreshed the JWKS will reject new tokens until they do',
        );
      }
      const reason = options.reason ?? (options.force ? 'forced rotation' : 'manual rotation');
      return this.apply(trx, { kind: 'promote' }, now, actor, reason);
    });
  }

  /** Emergency: the key leaves the JWKS at once and its private material is destroyed. */
  async revoke(actor: Actor, kid: string, reason = 'revoked by operator'): Promise<RevokeResult> {
    return this.locked(async (trx, now) => {
      const key = await findKey(trx, kid);
      if (!key) throw new KeyLifecycleError('ERR_KEY_NOT_FOUND', `no signing key has kid "${kid}"`);
      if (key.state === 'retired' || key.state === 'revoked') {
        throw new KeyLifecycleError('ERR_KEY_STATE', `key ${kid} is already ${key.state}`);
      }
      const changes: KeyChange[] = [];
      if (key.state === 'current') {
        const next = (await listPublishedKeys(trx)).find((k) => k.state === 'next');
        if (!next) throw new KeyLifecycleError('ERR_NO_NEXT_KEY', 'there is no next key to take over; run `idp keys check` first');
        // Out of the current slot first, so that the next key can take it.
        await destroyKey(trx, kid, 'revoked', now);
        await setState(trx, next.kid, 'next', 'current', now);
        changes.push({ action: 'revoked', kid }, { action: 'promoted', kid: next.kid });
        await this.audit(trx, now, actor, 'key.promoted', next.kid, `successor of revoked key ${kid}`);
        changes.push(await this.createKey(trx, 'next', now, actor, reason));
      } else {
        await destroyKey(trx, kid, 'revoked', now);
        changes.push({ action: 'revoked', kid });
        if (key.state === 'next') changes.push(await this.createKey(trx, 'next', now, actor, reason));
      }
      await this.audit(trx, now, actor, 'key.revoked', kid, reason, { previous_state: key.state });
      await announceKeyChange(trx);
      changes.forEach((c) => this.deps.observer?.onChange?.(c));
      return { kid, previousState: key.state, changes, verifierCacheSeconds: this.deps.policy.jwksMaxAgeSeconds };
    });
  }

  /** `idp mek rewrap`: every data key re-wrapped under the primary MEK; returns how many changed. */
  async rewrap(actor: Actor): Promise<number> {
    return this.locked(async (trx, now) => {
      let count = 0;
      for (const key of await listKeys(trx)) {
        const envelope = envelopeOf(key);
        if (!envelope || envelope.mekId === this.deps.mek.primaryId) continue;
        await updateEnvelope(trx, key.kid, await rewrapEnvelope(this.deps.mek, envelope, key.kid, key.purpose));
        count += 1;
      }
      await this.audit(trx, now, actor, 'mek.rewrapped', this.deps.mek.primaryId, 'MEK rotation', { count });
      return count;
    });
  }

  /**
   * Start-up guard: every stored private key must decrypt with the key ring. Throws the first
   * failure (naming the missing MEK id) before anything is changed.
   */
  async assertAllDecryptable(): Promise<void> {
    for (const key of await listKeys(this.deps.db)) {
      const envelope = envelopeOf(key);
      if (envelope) (await openPrivateKey(this.deps.mek, envelope, key.kid, key.purpose)).fill(0);
    }
  }

  private async locked<T>(work: (trx: Transaction<Database>, now: Date) => Promise<T>): Promise<T> {
    return this.deps.db.transaction().execute(async (trx) => {
      await lockKeys(trx);
      // Read the clock after the lock: a waiter must judge the state as it is when it gets the lock.
      return work(trx, await this.now(trx));
    });
  }

  private async apply(trx: Transaction<Database>, step: Step, now: Date, actor: Actor, reason: string): Promise<KeyChange[]> {
    const changes: KeyChange[] = [];
    switch (step.kind) {
      case 'bootstrap':
        changes.push(await this.createKey(trx, 'current', now, actor, 'first start: no signing key'));
        changes.push(await this.createKey(trx, 'next', now, actor, 'successor of the first key'));
        break;
      case 'create-next':
        changes.push(await this.createKey(trx, 'next', now, actor, 'no next key was published'));
        break;
      case 'promote': {
        const keys = await listPublishedKeys(trx);
        const current = keys.find((k) => k.state === 'current');
        const next = keys.find((k) => k.state === 'next');
        if (!next) throw new KeyLifecycleError('ERR_NO_NEXT_KEY', 'there is no next key to promote');
        if (current) {
          await setState(trx, current.kid, 'current', 'previous', now);
          changes.push({ action: 'deactivated', kid: current.kid });
          await this.audit(trx, now, actor, 'key.deactivated', current.kid, reason);
        }
        await setState(trx, next.kid, 'next', 'current', now);
        changes.push({ action: 'promoted', kid: next.kid });
        await this.audit(trx, now, actor, 'key.promoted', next.kid, reason);
        changes.push(await this.createKey(trx, 'next', now, actor, `successor of ${next.kid}`));
        break;
      }
      case 'retire':
        await destroyKey(trx, step.kid, 'retired', now);
        changes.push({ action: 'retired', kid: step.kid });
        await this.audit(trx, now, actor, 'key.retired', step.kid, 'past IDP_KEY_RETENTION');
        break;
    }
    await announceKeyChange(trx);
    for (const change of changes) {
      this.deps.logger.info({ actor, action: change.action, kid: change.kid }, 'signing key transition');
      this.deps.observer?.onChange?.(change);
    }
    return changes;
  }

  private async createKey(trx: Transaction<Database>, state: 'current' | 'next', now: Date, actor: Actor, reason: string): Promise<KeyChange> {
    const material = await this.generate(this.deps.policy.keySize, now);
    const envelope = await sealPrivateKey(this.deps.mek, material.privatePkcs8, material.kid, SIGNING_PURPOSE);
    material.privatePkcs8.fill(0);
    await insertKey(trx, material, envelope, state, now);
    await this.audit(trx, now, actor, `key.created`, material.kid, reason, { state, bits: material.bits, mek_id: envelope.mekId });
    return { action: state === 'current' ? 'created-current' : 'created-next', kid: material.kid };
  }

  private audit(
    trx: Transaction<Database>,
    at: Date,
    actor: Actor,
    action: string,
    target: string,
    reason: string,
    details?: Record<string, unknown>,
  ): Promise<void> {
    return recordAudit(trx, { at, actor, action, target, reason, details });
  }
}
