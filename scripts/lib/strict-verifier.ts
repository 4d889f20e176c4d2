import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';

/** The `kid` in a compact JWS's header. */
export function headerKid(jwt: string): string {
  return (JSON.parse(Buffer.from(jwt.split('.')[0] as string, 'base64url').toString()) as { kid: string }).kid;
}

/**
 * A strict verifier, as a resource server that honours the JWKS `Cache-Control` would be: each
 * server's key set is fetched again only when its max-age has passed, and an unknown `kid` is a
 * failure — no refetch that could hide a key signing before it was published long enough, or a key
 * leaving the JWKS while its tokens are still valid.
 */
export class StrictVerifier {
  private readonly sets = new Map<string, { keys: JSONWebKeySet; freshUntil: number }>();
  readonly failures: string[] = [];
  verified = 0;

  constructor(private readonly issuer: string) {}

  async keySet(url: string): Promise<JSONWebKeySet> {
    const cached = this.sets.get(url);
    if (cached && Date.now() < cached.freshUntil) return cached.keys;
    const response = await fetch(`${url}/.well-known/jwks.json`, { signal: AbortSignal.timeout(5_000) });
    if (response.status !== 200) throw new Error(`JWKS of ${url} answered ${response.status}`);
    const maxAge = Number(/max-age=(\d+)/.exec(response.headers.get('cache-control') ?? '')?.[1] ?? 0);
    const keys = (await response.json()) as JSONWebKeySet;
    this.sets.set(url, { keys, freshUntil: Date.now() + maxAge * 1000 });
    return keys;
  }

  /** Verifies `jwt` against the key set as cached for `url` (fetched first if stale); a failure is recorded, not thrown. */
  async verify(jwt: string, url: string): Promise<boolean> {
    const keys = await this.keySet(url);
    try {
      await jwtVerify(jwt, createLocalJWKSet(keys), { issuer: this.issuer, typ: 'at+jwt', algorithms: ['RS256'] });
      this.verified += 1;
      return true;
    } catch (error) {
      this.failures.push(`${headerKid(jwt)} via ${url}: ${(error as Error).message}`);
      return false;
    }
  }
}
