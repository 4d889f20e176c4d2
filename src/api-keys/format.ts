import crypto from 'node:crypto';

/**
 * The API key format (docs/api-keys.md "API keys": `idpk_<id>_<secret>`.
 * - `idpk_` lets secret scanners recognise a leaked key;
 * - `<id>`: 16 base62 characters (~95 bits), the public identifier the key is looked up by;
 * - `<secret>`: 256 random bits written as exactly 43 base62 characters (62^43 > 2^256).
 * Only SHA-256 of the secret is stored. As with client secrets (src/clients/secret.ts), a slow hash
 * would add nothing against 256 random bits and would be paid on every presentation.
 */
export const API_KEY_PREFIX = 'idpk_';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ID_LENGTH = 16;
const SECRET_LENGTH = 43;
/** The whole key: nothing else parses, so a malformed key never reaches the database. */
const KEY = /^idpk_([0-9A-Za-z]{16})_([0-9A-Za-z]{43})$/;
export const API_KEY_ID = /^[0-9A-Za-z]{16}$/;
export const API_KEY_LENGTH = API_KEY_PREFIX.length + ID_LENGTH + 1 + SECRET_LENGTH;

/** 16 uniformly drawn base62 characters (rejection sampling: 248 = 4 × 62). */
export function generateApiKeyId(): string {
  let id = '';
  while (id.length < ID_LENGTH) {
    for (const byte of crypto.randomBytes(ID_LENGTH * 2)) {
      if (byte < 248 && id.length < ID_LENGTH) id += ALPHABET[byte % 62];
    }
  }
  return id;
}

/** 32 random bytes as a 43-digit base62 number (left-padded), so the secret holds exactly 256 bits. */
export function generateApiKeySecret(): string {
  let value = BigInt(`0x${crypto.randomBytes(32).toString('hex')}`);
  let text = '';
  for (let i = 0; i < SECRET_LENGTH; i++) {
    text = ALPHABET[Number(value % 62n)] + text;
    value /= 62n;
  }
  return text;
}

export function formatApiKey(id: string, secret: string): string {
  return `${API_KEY_PREFIX}${id}_${secret}`;
}

export interface ParsedApiKey {
  id: string;
  secret: string;
}

/** Splits a presented key; undefined for anything that is not exactly the format (no query is made for it). */
export function parseApiKey(text: string): ParsedApiKey | undefined {
  if (text.length !== API_KEY_LENGTH) return undefined;
  const match = KEY.exec(text);
  if (!match) return undefined;
  return { id: match[1] as string, secret: match[2] as string };
}

/** Whether a token claims to be an API key (by its prefix): such a token is answered by the API-key kind alone. */
export function looksLikeApiKey(text: string): boolean {
  return text.startsWith(API_KEY_PREFIX);
}

export function hashApiKeySecret(secret: string): Buffer {
  // One-shot crypto.hash: a third of createHash's cost, paid on every authenticated request.
  return crypto.hash('sha256', secret, 'buffer');
}

/** Constant-time comparison of a presented secret with the stored hash. */
export function apiKeySecretMatches(secret: string, storedHash: Uint8Array): boolean {
  const digest = hashApiKeySecret(secret);
  return storedHash.length === digest.length && crypto.timingSafeEqual(digest, storedHash);
}

/** A fresh key: its id, the whole key (shown once) and the hash to store. */
export function newApiKey(): { id: string; key: string; secretHash: Buffer } {
  const id = generateApiKeyId();
  const secret = generateApiKeySecret();
  return { id, key: formatApiKey(id, secret), secretHash: hashApiKeySecret(secret) };
}
