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

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_OPTIONS);
}

/** True when `password` matches `passwordHash`; a malformed stored hash counts as no match. */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password);
  } catch {
    return false;
  }
}

/**
 * Unknown email and wrong password must cost the same time: an unknown email is verified against
 * this hash of a random secret, made once per process with the same parameters as real hashes.
 */
let dummy: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  dummy ??= hashPassword(crypto.randomBytes(32).toString('base64url'));
  return dummy;
}
