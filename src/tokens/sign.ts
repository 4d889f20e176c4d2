import crypto from 'node:crypto';
import type { KeyCache } from '../keys/cache';

/** JWS `typ` values this provider issues. */
export type TokenType = 'at+jwt' | 'JWT';

export type Claims = Record<string, unknown>;

/** `sign(claims, typ)` → compact JWS with `kid`; the one function every token kind signs with. */
export type Signer = (claims: Claims, typ: TokenType) => Promise<string>;

/**
 * Signs with the in-memory current key, asynchronously so RSA runs on the libuv thread pool and
 * never blocks the event loop. The compact serialisation (RFC 7515 §7.1) is done here rather than
 * through jose's SignJWT: the header is encoded once per key and type instead of once per token,
 * and jose's verifier checks every token in the test suite.
 */
export function createSigner(keys: KeyCache): Signer {
  const headers = new Map<string, string>();
  return (claims, typ) => {
    const key = keys.current;
    const cacheKey = `${key.kid}|${typ}`;
    let header = headers.get(cacheKey);
    if (header === undefined) {
      if (headers.size > 16) headers.clear();
      header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: key.kid, typ })).toString('base64url');
      headers.set(cacheKey, header);
    }
    const signingInput = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return new Promise((resolve, reject) => {
      crypto.sign('sha256', Buffer.from(signingInput), key.privateKey, (error, signature) => {
        if (error) reject(error);
        else resolve(`${signingInput}.${signature.toString('base64url')}`);
      });
    });
  };
}
