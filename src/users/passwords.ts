import crypto from 'node:crypto';
import { hash, verify } from '@node-rs/argon2';

/**
 * argon2id with the first configuration of the OWASP Password Storage Cheat Sheet
 * (m = 19 MiB, t = 2, p = 1): ~8 ms of one core per hash on this machine class, run on the libuv
 * thread pool by the native binding so it never blocks the event loop.
 */
// `algorithm: 2` is Algorithm.Argon2id (a const enum, which isolatedModules cannot import).
const ARGON2_OPTIONS = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

/** Bounds on the password, in characters and bytes: long passphrases welcome, megabyte bodies not hashed. */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_BYTES = 1024;

/** Thrown when more hashes wait than the queue holds: the caller answers 503 with Retry-After. */
export class PasswordHashingBusy extends Error {
  readonly code = 'ERR_PASSWORD_HASHING_BUSY';
  constructor() {
    super('password hashing is saturated');
    this.name = 'PasswordHashingBusy';
  }
}

export interface PasswordHashingLimits {
  /** Hashes computed at once (`IDP_PASSWORD_HASH_CONCURRENCY`). */
  concurrency: number;
  /** Hashes allowed to wait for a turn (`IDP_PASSWORD_HASH_QUEUE`); past it, PasswordHashingBusy. */
  queue: number;
}

/**
 * argon2id under a bounded concurrency (SPEC §7). Both libuv's thread pool and the cores are
 * shared with RS256 signing: without a bound, a flood of sign-ins or sign-ups would keep every
 * thread hashing and the token endpoint and JWKS would wait behind it. Hashes beyond
 * `concurrency` wait in a bounded FIFO; beyond `queue`, they are refused at once.
 */
export class PasswordHashing {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private dummy: Promise<string> | undefined;

  constructor(private readonly limits: PasswordHashingLimits) {}

  hash(password: string): Promise<string> {
    return this.run(() => hash(password, ARGON2_OPTIONS));
  }

  /** True when `password` matches `passwordHash`; a malformed stored hash counts as no match. */
  verify(passwordHash: string, password: string): Promise<boolean> {
    return this.run(() => verify(passwordHash, password).catch(() => false));
  }

  /**
   * Unknown email and wrong password must cost the same time: an unknown email is verified against
   * this hash of a random secret, made once per process with the same parameters as real hashes.
   */
  dummyHash(): Promise<string> {
    this.dummy ??= hash(crypto.randomBytes(32).toString('base64url'), ARGON2_OPTIONS);
    return this.dummy;
  }

  /** Hashes in progress and waiting, for tests and metrics. */
  get load(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  private async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.concurrency) {
      if (this.waiting.length >= this.limits.queue) throw new PasswordHashingBusy();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await work();
    } finally {
      // Hand the slot straight to the next waiter, so `running` never dips and lets a newcomer jump the queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
