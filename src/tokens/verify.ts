import { createLocalJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { KeyCache } from '../keys/cache';

export interface VerifyOptions {
  audience: string | string[];
  /** Expected JWS `typ` (RFC 8725 §3.11: explicit typing keeps token kinds apart). */
  typ: string;
  /** Clock used for exp/nbf (fake clocks in tests). */
  now?: Date;
  clockToleranceSeconds?: number;
}

/**
 * Verifies our own JWTs against the published keys held in memory (current, next, previous):
 * RS256 only, our issuer, the expected audience and typ. A revoked or retired key has left the
 * JWKS, so its tokens fail here. Header members such as `jwk`, `jku` or `x5u` are never used:
 * keys come only from our own key set.
 */
export class TokenVerifier {
  private keySet: JWTVerifyGetKey | undefined;
  private keySetEtag = '';

  constructor(
    private readonly keys: KeyCache,
    private readonly issuer: string,
  ) {}

  async verify(token: string, options: VerifyOptions): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, this.currentKeySet(), {
      algorithms: ['RS256'],
      issuer: this.issuer,
      audience: options.audience,
      typ: options.typ,
      currentDate: options.now,
      clockTolerance: options.clockToleranceSeconds ?? 0,
      requiredClaims: ['exp', 'iat', 'jti', 'sub'],
    });
    return payload;
  }

  private currentKeySet(): JWTVerifyGetKey {
    const jwks = this.keys.jwks;
    if (!jwks) throw new Error('signing keys are not loaded');
    if (!this.keySet || jwks.etag !== this.keySetEtag) {
      this.keySet = createLocalJWKSet(jwks.document as unknown as Parameters<typeof createLocalJWKSet>[0]);
      this.keySetEtag = jwks.etag;
    }
    return this.keySet;
  }
}
