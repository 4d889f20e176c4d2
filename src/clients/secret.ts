import crypto from 'node:crypto';

/**
 * 128 random bits, base64url (22 characters, of the form ./client-id.ts calls issued): URL-safe,
 * unguessable, no meaning to leak. Drawn again when it would start with `-` or `_`, so that no id
 * looks like a command-line option.
 */
export function generateClientId(): string {
  for (;;) {
    const id = crypto.randomBytes(16).toString('base64url');
    if (/^[A-Za-z0-9]/.test(id)) return id;
  }
}

/** 256 random bits, base64url (43 characters). Shown once; only its hash is stored. */
export function generateClientSecret(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * SHA-256 of the secret, and deliberately not a slow password hash (scrypt, argon2, bcrypt).
 *
 * A slow hash protects a low-entropy secret (a password) against offline guessing by making each
 * guess expensive. Our secrets are 256 random bits: an attacker holding the hash must search 2^256
 * values, which no work factor changes, so slowness buys nothing. It would, however, be paid on
 * every token request: scrypt (N=16384) costs ~36 ms of CPU, capping the token endpoint near 25–55
 * requests a second per core (docs/performance.md "Performance" against ~5,000 with SHA-256 (~1 µs).
 * The hash stays unpredictable only while secrets are generated here: never accept a chosen secret.
 */
export function hashClientSecret(secret: string): Buffer {
  // One-shot crypto.hash: a third of createHash's cost, paid on every authenticated request.
  return crypto.hash('sha256', secret, 'buffer');
}

/** Constant-time comparison of a presented secret with a stored hash (equal lengths: both SHA-256). */
export function secretMatches(presented: string, storedHash: Uint8Array): boolean {
  const digest = hashClientSecret(presented);
  return storedHash.length === digest.length && crypto.timingSafeEqual(digest, storedHash);
}
