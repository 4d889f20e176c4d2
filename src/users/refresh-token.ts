import crypto from 'node:crypto';

/** 32 random bytes (256 bits), base64url: 43 characters. Opaque: it means nothing without the database. */
export function newRefreshToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/**
 * The stored form. A fast hash is enough: the token has 256 bits of entropy, so nothing can be
 * guessed from the hash, and lookups stay one indexed equality.
 */
export function hashRefreshToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('base64url');
}

export function looksLikeRefreshToken(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value);
}
