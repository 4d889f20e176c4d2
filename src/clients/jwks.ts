import crypto, { type KeyObject } from 'node:crypto';
import type { StoredClientJwks } from '../db/schema';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../json-depth';
import { quoted } from '../text';

/**
 * The public keys a `private_key_jwt` client authenticates with (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`", RFC 7523): what a JWKS
 * may hold, and its keys parsed once into KeyObjects.
 *
 * Only public keys for signatures: RSA of 2048 to 4096 bits (RS256, PS256) or EC on P-256 (ES256).
 * A key with any private member is refused outright (whoever published it has leaked it). Only the
 * members below are kept, so nothing else a client sends is stored or echoed back.
 */

/** The algorithms a client assertion may be signed with. Never `none`, never HS*. */
export const CLIENT_ASSERTION_ALGORITHMS = ['RS256', 'PS256', 'ES256'] as const;
export type ClientAssertionAlgorithm = (typeof CLIENT_ASSERTION_ALGORITHMS)[number];

/** The most keys one client may have (registered or published at its jwks_uri). */
export const MAX_CLIENT_KEYS = 10;
/** The largest inline JWKS accepted at registration, as JSON (10 RSA-4096 keys take about 8 KiB). */
export const MAX_INLINE_JWKS_BYTES = 16 * 1024;
/** RSA modulus bounds: under 2048 is weak; over 4096 only makes every verification (and a forged one) dearer. */
export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 4096;

/** JWK members that belong to a private or symmetric key. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
/** The members kept, per key type. */
const KEPT_MEMBERS: Record<'RSA' | 'EC', readonly string[]> = {
  RSA: ['kty', 'kid', 'use', 'alg', 'n', 'e'],
  EC: ['kty', 'kid', 'use', 'alg', 'crv', 'x', 'y'],
};
const KID = /^[\x21-\x7e]{1,256}$/;

/** A refused JWKS or key: `message` is one line for the operator (or the log, for a fetched set). */
export class JwksError extends Error {
  readonly code = 'ERR_CLIENT_JWKS';
  constructor(message: string) {
    super(message);
    this.name = 'JwksError';
  }
}

/** One usable public key of a client. */
export interface ClientKey {
  kid: string | undefined;
  kty: 'RSA' | 'EC';
  /** The algorithms it verifies: its JWK `alg` when given, else all those its type allows. */
  algorithms: readonly ClientAssertionAlgorithm[];
  key: KeyObject;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Why one JWK cannot be used for client assertions, or undefined when it can; never for private material (checked first). */
function unusable(jwk: Record<string, unknown>): string | undefined {
  const { kty, use, alg, crv } = jwk;
  if (kty !== 'RSA' && kty !== 'EC') return `kty ${JSON.stringify(kty)} is not supported (RSA or EC P-256)`;
  if (use !== undefined && use !== 'sig') return `use ${JSON.stringify(use)} is not "sig"`;
  if (kty === 'EC' && crv !== 'P-256') return `EC curve ${JSON.stringify(crv)} is not supported (P-256 only)`;
  const allowed: readonly string[] = kty === 'RSA' ? ['RS256', 'PS256'] : ['ES256'];
  if (alg !== undefined && !allowed.includes(alg as string)) return `alg ${JSON.stringify(alg)} is not allowed for a ${kty} key (${allowed.join(', ')})`;
  return undefined;
}

/** Imports one usable JWK (after `unusable` said nothing): a KeyObject, or a JwksError naming the problem. */
function importKey(jwk: Record<string, unknown>, where: string): { stored: Record<string, string>; key: ClientKey } {
  const kty = jwk.kty as 'RSA' | 'EC';
  const stored: Record<string, string> = {};
  for (const member of KEPT_MEMBERS[kty]) {
    const value = jwk[member];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new JwksError(`${where}: member "${member}" must be a string`);
    stored[member] = value;
  }
  if (stored.kid !== undefined && !KID.test(stored.kid)) throw new JwksError(`${where}: kid must be 1 to 256 printable ASCII characters`);
  let key: KeyObject;
  try {
    key = crypto.createPublicKey({ key: { ...stored } as crypto.JsonWebKey, format: 'jwk' });
  } catch (error) {
    throw new JwksError(`${where}: not a valid ${kty} public key (${(error as Error).message})`);
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (kty === 'RSA') {
    const bits = details.modulusLength ?? 0;
    if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) throw new JwksError(`${where}: RSA key of ${bits} bits (${RSA_MIN_BITS} to ${RSA_MAX_BITS} allowed)`);
    const exponent = details.publicExponent ?? 0n;
    if (exponent < 3n || exponent % 2n === 0n) throw new JwksError(`${where}: RSA public exponent must be odd and at least 3`);
  }
  const algorithms: ClientAssertionAlgorithm[] =
    stored.alg !== undefined ? [stored.alg as ClientAssertionAlgorithm] : kty === 'RSA' ? ['RS256', 'PS256'] : ['ES256'];
  return { stored, key: { kid: stored.kid, kty, algorithms: Object.freeze(algorithms), key } };
}

/** Refuses a JWKS nested deeper than any JWKS is (before JSON.stringify or a message could recurse into it). */
function checkDepth(value: unknown): void {
  if (nestedDeeperThan(value)) throw new JwksError(`the JWKS is nested more than ${MAX_JSON_DEPTH} levels deep; a JSON Web Key Set {"keys": [...]} is expected`);
}

function keysOf(value: unknown): unknown[] {
  if (!isRecord(value) || !Array.isArray(value.keys)) throw new JwksError('not a JSON Web Key Set: an object with a "keys" array is expected');
  for (const [index, jwk] of value.keys.entries()) {
    if (!isRecord(jwk)) throw new JwksError(`keys[${index}] is not an object`);
    const leaked = PRIVATE_MEMBERS.filter((member) => member in jwk);
    if (leaked.length > 0) {
      throw new JwksError(`keys[${index}] holds private key material (${leaked.join(', ')}): register public keys only, and treat this private key as compromised`);
    }
  }
  return value.keys;
}

function checkUniqueKids(keys: readonly ClientKey[]): void {
  const kids = keys.flatMap((k) => (k.kid === undefined ? [] : [k.kid]));
  const duplicate = kids.find((kid, i) => kids.indexOf(kid) !== i);
  if (duplicate !== undefined) throw new JwksError(`kid ${quoted(duplicate)} appears more than once`);
}

/**
 * A JWKS an operator registers (CLI, admin API): every key must be usable and public, at most
 * MAX_CLIENT_KEYS, at most MAX_INLINE_JWKS_BYTES. Returns what is stored (public members only) and
 * the parsed keys. Throws JwksError with one line naming the problem.
 */
export function checkClientJwks(value: unknown): { jwks: StoredClientJwks; keys: ClientKey[] } {
  checkDepth(value);
  const size = Buffer.byteLength(JSON.stringify(value ?? null));
  if (size > MAX_INLINE_JWKS_BYTES) throw new JwksError(`the JWKS is ${size} bytes; at most ${MAX_INLINE_JWKS_BYTES} are accepted`);
  const entries = keysOf(value);
  if (entries.length === 0) throw new JwksError('the JWKS holds no key');
  if (entries.length > MAX_CLIENT_KEYS) throw new JwksError(`the JWKS holds ${entries.length} keys; at most ${MAX_CLIENT_KEYS} are accepted`);
  const stored: Array<Record<string, string>> = [];
  const keys: ClientKey[] = [];
  for (const [index, jwk] of entries.entries()) {
    const problem = unusable(jwk as Record<string, unknown>);
    if (problem) throw new JwksError(`keys[${index}]: ${problem}`);
    const imported = importKey(jwk as Record<string, unknown>, `keys[${index}]`);
    stored.push(imported.stored);
    keys.push(imported.key);
  }
  checkUniqueKids(keys);
  return { jwks: { keys: stored }, keys };
}

/**
 * The signing keys of a JWKS a client publishes at its jwks_uri: keys for other uses or of other
 * types are skipped (a published set may hold encryption keys too); any private member, more than
 * MAX_CLIENT_KEYS usable keys, a key that does not parse or a repeated kid refuse the whole set.
 */
export function readPublishedJwks(value: unknown): ClientKey[] {
  checkDepth(value);
  const keys: ClientKey[] = [];
  for (const [index, jwk] of keysOf(value).entries()) {
    if (unusable(jwk as Record<string, unknown>) !== undefined) continue;
    keys.push(importKey(jwk as Record<string, unknown>, `keys[${index}]`).key);
    if (keys.length > MAX_CLIENT_KEYS) throw new JwksError(`more than ${MAX_CLIENT_KEYS} signing keys`);
  }
  if (keys.length === 0) throw new JwksError('no RSA or EC P-256 signing key in the set');
  checkUniqueKids(keys);
  return keys;
}

/** The keys of a stored (already checked) JWKS. */
export function importStoredJwks(jwks: StoredClientJwks): ClientKey[] {
  return jwks.keys.map((jwk, index) => importKey(jwk, `keys[${index}]`).key);
}
