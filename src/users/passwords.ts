import crypto from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { hash } from '@node-rs/argon2';
import type { Logger } from '../observability/logger';

/**
 * argon2id with the first configuration of the OWASP Password Storage Cheat Sheet
 * (m = 19 MiB, t = 2, p = 1): ~8 ms of one core per hash on this machine class, run on hashing
 * threads of their own (below) so it never blocks the event loop.
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

/**
 * Thrown by `verify` when the stored hash is not an argon2 hash at all (a corrupt or hand-edited
 * row): the caller answers as for a wrong password, and logs it, since that account cannot sign in.
 */
export class MalformedPasswordHash extends Error {
  readonly code = 'ERR_MALFORMED_PASSWORD_HASH';
  constructor() {
    super('the stored password hash is not a valid argon2 hash');
    this.name = 'MalformedPasswordHash';
  }
}

export interface PasswordHashingLimits {
  /** Hashes computed at once (`IDP_PASSWORD_HASH_CONCURRENCY`). */
  concurrency: number;
  /** Hashes allowed to wait for a turn (`IDP_PASSWORD_HASH_QUEUE`); past it, PasswordHashingBusy. */
  queue: number;
}

/**
 * The niceness of the hashing threads. CPU time goes to the token endpoint and the JWKS first;
 * hashing takes what they leave, plus a CFS share of about a tenth when they saturate the cores,
 * so sign-ins slow down under a token peak instead of the tokens slowing down under a sign-in flood.
 */
const HASHING_NICENESS = 10;

/**
 * The hashing thread: argon2's synchronous calls on a worker thread of its own, so the thread's
 * niceness applies to the hash itself (on Linux a thread's priority is its own; libuv's pool
 * threads, shared with RS256 signing, stay at normal priority). Loaded from text so that it needs
 * no separate build output; the argon2 binding is required by its resolved path.
 */
function hashingThreadSource(argon2Path: string): string {
  return `
const { parentPort } = require('node:worker_threads');
try { require('node:os').setPriority(0, ${HASHING_NICENESS}); } catch {}
const argon2 = require(${JSON.stringify(argon2Path)});
const options = ${JSON.stringify(ARGON2_OPTIONS)};
parentPort.on('message', ({ op, password, hash }) => {
  try {
    if (op === 'hash') parentPort.postMessage({ value: argon2.hashSync(password, options) });
    else {
      let ok;
      try { ok = argon2.verifySync(hash, password); } catch { parentPort.postMessage({ malformed: true }); return; }
      parentPort.postMessage({ value: ok });
    }
  } catch (error) {
    parentPort.postMessage({ error: String(error && error.message) });
  }
});`;
}

/** One hashing thread, one job at a time. */
class HashingThread {
  private readonly worker: Worker;
  private pending: { resolve(value: string | boolean): void; reject(error: Error): void } | undefined;
  /** False once the thread has died: it is never handed a job again. */
  alive = true;

  constructor(source: string, onDeath: (thread: HashingThread) => void) {
    this.worker = new Worker(source, { eval: true });
    this.worker.unref();
    this.worker.on('message', (message: { value?: string | boolean; error?: string; malformed?: true }) => {
      const pending = this.pending;
      this.pending = undefined;
      if (message.malformed) pending?.reject(new MalformedPasswordHash());
      else if (message.error !== undefined) pending?.reject(new Error(`argon2: ${message.error}`));
      else pending?.resolve(message.value as string | boolean);
    });
    // A thread that dies (an error, or killed) fails its job and leaves the pool; the next job starts a new one.
    const die = (error: Error) => {
      if (!this.alive) return;
      this.alive = false;
      this.pending?.reject(error);
      this.pending = undefined;
      onDeath(this);
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`argon2 thread exited with code ${code}`)));
  }

  run(job: { op: 'hash'; password: string } | { op: 'verify'; hash: string; password: string }): Promise<string | boolean> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(job);
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export interface PasswordHashingOptions {
  /** Where load shedding is reported: one `warn` line per interval at most, with the count. */
  logger?: Logger;
  /** @default 60_000 */
  shedLogIntervalMs?: number;
}

/**
 * argon2id under a bounded concurrency (docs/security.md "Abuse limits and the threat model": at most `concurrency` hashes at once, each on a
 * hashing thread of lowered priority; hashes beyond that wait in a bounded FIFO; beyond `queue`,
 * they are refused at once (PasswordHashingBusy, a 503). Without these bounds a flood of sign-ins
 * or sign-ups would keep every core hashing and the token endpoint would wait behind it.
 *
 * Shedding is the design working, and any anonymous caller can cause it: it is logged as a `warn`
 * at the first refusal, then at most once per interval with the count refused since, never per request.
 */
export class PasswordHashing {
  private readonly idle: HashingThread[] = [];
  private readonly threads: HashingThread[] = [];
  private readonly waiting: Array<(thread: HashingThread) => void> = [];
  private dummy: Promise<string> | undefined;
  private source: string | undefined;

  /** Refusals since the last shedding log line; the timer runs while refusals keep coming. */
  private shed = 0;
  private shedTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limits: PasswordHashingLimits,
    private readonly options: PasswordHashingOptions = {},
  ) {}

  async hash(password: string): Promise<string> {
    return (await this.run({ op: 'hash', password })) as string;
  }

  /** True when `password` matches `passwordHash`; MalformedPasswordHash when the stored hash is not one. */
  async verify(passwordHash: string, password: string): Promise<boolean> {
    return (await this.run({ op: 'verify', hash: passwordHash, password })) as boolean;
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
    return { running: this.threads.length - this.idle.length, waiting: this.waiting.length };
  }

  /** Stops the hashing threads (they do not keep the process alive, but tests close what they open). */
  async close(): Promise<void> {
    clearTimeout(this.shedTimer);
    this.shedTimer = undefined;
    this.reportShed(false);
    await Promise.all([...this.threads].map((thread) => thread.terminate()));
    this.threads.length = 0;
    this.idle.length = 0;
  }

  private async run(job: Parameters<HashingThread['run']>[0]): Promise<string | boolean> {
    const thread = await this.acquire();
    try {
      return await thread.run(job);
    } finally {
      // Hand the thread straight to the next waiter, so a newcomer never jumps the queue. A dead
      // thread has already left the pool; its slot goes to the next waiter as a new thread.
      const next = this.waiting.shift();
      if (thread.alive) {
        if (next) next(thread);
        else this.idle.push(thread);
      } else if (next) {
        next(this.spawn());
      }
    }
  }

  private acquire(): Promise<HashingThread> {
    const idle = this.idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.threads.length < this.limits.concurrency) return Promise.resolve(this.spawn());
    if (this.waiting.length >= this.limits.queue) {
      this.noteShed();
      return Promise.reject(new PasswordHashingBusy());
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private noteShed(): void {
    this.shed += 1;
    if (this.shedTimer === undefined) this.reportShed();
  }

  /** Logs the refusals counted so far, if any, and waits an interval before the next line. */
  private reportShed(again = true): void {
    if (this.shed === 0) return;
    const intervalMs = this.options.shedLogIntervalMs ?? 60_000;
    this.options.logger?.warn(
      { shed: this.shed, concurrency: this.limits.concurrency, queue: this.limits.queue, intervalSeconds: intervalMs / 1000 },
      'password hashing saturated: sign-ins and sign-ups shed with 503 (IDP_PASSWORD_HASH_CONCURRENCY, IDP_PASSWORD_HASH_QUEUE)',
    );
    this.shed = 0;
    if (!again) return;
    this.shedTimer = setTimeout(() => {
      this.shedTimer = undefined;
      this.reportShed();
    }, intervalMs);
    this.shedTimer.unref();
  }

  private spawn(): HashingThread {
    this.source ??= hashingThreadSource(require.resolve('@node-rs/argon2'));
    const thread = new HashingThread(this.source, (dead) => {
      const index = this.threads.indexOf(dead);
      if (index >= 0) this.threads.splice(index, 1);
      const idle = this.idle.indexOf(dead);
      if (idle >= 0) this.idle.splice(idle, 1);
    });
    this.threads.push(thread);
    return thread;
  }
}
