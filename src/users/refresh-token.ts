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

/**
 * IDP_REFRESH_REUSE_INTERVAL without storing a refresh token in clear: at rotation, the token that
 * replaces this one is sealed (AES-256-GCM) under a key derived (HKDF-SHA256) from this token, and
 * kept in this token's row. Only whoever presents this token can open it; the row holds only this
 * token's SHA-256, from which the key cannot be derived. Layout: version (1) ‖ IV (12) ‖ ciphertext ‖ tag (16).
 */
const SEAL_VERSION = 1;
const SEAL_INFO = 'idp refresh-token successor v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

function successorKey(token: string): Buffer {
  return Buffer.from(crypto.hkdfSync('sha256', Buffer.from(token, 'base64url'), Buffer.alloc(0), SEAL_INFO, 32));
}

/** Seals `successor` (the token replacing `token`) so that only a holder of `token` can open it. */
export function sealSuccessor(token: string, successor: string): Uint8Array {
  const iv = crypto.randomBytes(IV_BYTES);
  const version = Buffer.from([SEAL_VERSION]);
  const cipher = crypto.createCipheriv('aes-256-gcm', successorKey(token), iv);
  cipher.setAAD(version);
  const ciphertext = Buffer.concat([cipher.update(Buffer.from(successor, 'base64url')), cipher.final()]);
  return Buffer.concat([version, iv, ciphertext, cipher.getAuthTag()]);
}

/** The successor sealed by `sealSuccessor(token, …)`, or undefined when `sealed` does not open with `token`. */
export function openSuccessor(token: string, sealed: Uint8Array): string | undefined {
  const bytes = Buffer.from(sealed);
  if (bytes.length <= 1 + IV_BYTES + TAG_BYTES || bytes[0] !== SEAL_VERSION) return undefined;
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', successorKey(token), bytes.subarray(1, 1 + IV_BYTES));
    decipher.setAAD(bytes.subarray(0, 1));
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
    const plain = Buffer.concat([decipher.update(bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES)), decipher.final()]);
    const successor = plain.toString('base64url');
    return looksLikeRefreshToken(successor) ? successor : undefined;
  } catch {
    return undefined;
  }
}
