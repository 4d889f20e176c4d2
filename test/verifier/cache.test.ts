import crypto from 'node:crypto';
import { BoundedCache, credentialHash } from '../../src/verifier/cache';
import { maxAgeOf } from '../../src/verifier/http';

/** The verifier's building blocks that need no identity provider. */
describe('verifier kit: cache and Cache-Control', () => {
  it('keys entries by the SHA-256 of the credential, never the credential', () => {
    const key = `idpk_${'A'.repeat(16)}_${'b'.repeat(43)}`;
    expect(credentialHash(key)).toBe(crypto.createHash('sha256').update(key).digest('base64url'));
    expect(credentialHash(key)).not.toContain('idpk_');
  });

  it('is bounded: past maxEntries the least recently used entry goes', () => {
    const cache = new BoundedCache<number>(2);
    cache.set('a', 1, 1_000);
    cache.set('b', 2, 1_000);
    expect(cache.get('a', 0)).toBe(1); // a is now the most recent
    cache.set('c', 3, 1_000);
    expect(cache.size).toBe(2);
    expect(cache.get('b', 0)).toBeUndefined();
    expect(cache.get('a', 0)).toBe(1);
    expect(cache.get('c', 0)).toBe(3);
  });

  it('an entry is a miss from its deadline on, and is dropped', () => {
    const cache = new BoundedCache<string>(10);
    cache.set('k', 'v', 100);
    expect(cache.get('k', 99)).toBe('v');
    expect(cache.get('k', 100)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('reads max-age from Cache-Control; no-store and no-cache are 0; absent is undefined', () => {
    expect(maxAgeOf('public, max-age=300')).toBe(300_000);
    expect(maxAgeOf('max-age="60", must-revalidate')).toBe(60_000);
    expect(maxAgeOf('s-maxage=10')).toBeUndefined();
    expect(maxAgeOf('no-store')).toBe(0);
    expect(maxAgeOf('private, no-cache')).toBe(0);
    expect(maxAgeOf(null)).toBeUndefined();
  });
});
