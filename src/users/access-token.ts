import crypto from 'node:crypto';
import { errors, type JWTPayload } from 'jose';
import { ServiceError } from '../errors';
import type { Signer } from '../tokens/sign';
import type { TokenVerifier } from '../tokens/verify';

/** The `token_type` claim of user access tokens: what keeps them apart from client and admin tokens (RFC 8725 §3.12). */
export const USER_TOKEN_TYPE = 'user';
/** The one scope a user access token grants: the user's own account through /auth/v1. */
export const USER_SCOPE = 'user';

export interface UserTokenSubject {
  userId: string;
  sessionId: string;
  email: string;
  role: string;
  tenantId: string | null;
}

export interface UserAccessClaims extends JWTPayload {
  sub: string;
  sid: string;
  email: string;
  role: string;
  scope: string;
  token_type: typeof USER_TOKEN_TYPE;
  tenant_id?: string;
}

export interface IssuedAccessToken {
  token: string;
  expiresAt: Date;
  /** Seconds from issue to expiry (`expires_in`). */
  expiresIn: number;
}

/** Signs a user access token (README: "tokens"): typ at+jwt, aud IDP_USER_AUDIENCE, sid, role, tenant_id when set. */
export async function issueUserAccessToken(
  sign: Signer,
  options: { issuer: string; audience: string; ttlMs: number; now: Date },
  subject: UserTokenSubject,
): Promise<IssuedAccessToken> {
  const iat = Math.floor(options.now.getTime() / 1000);
  const exp = iat + Math.floor(options.ttlMs / 1000);
  const claims: UserAccessClaims = {
    iss: options.issuer,
    sub: subject.userId,
    aud: options.audience,
    exp,
    iat,
    nbf: iat,
    jti: crypto.randomUUID(),
    sid: subject.sessionId,
    email: subject.email,
    role: subject.role,
    scope: USER_SCOPE,
    token_type: USER_TOKEN_TYPE,
    ...(subject.tenantId ? { tenant_id: subject.tenantId } : {}),
  };
  return { token: await sign(claims, 'at+jwt'), expiresAt: new Date(exp * 1000), expiresIn: exp - iat };
}

/**
 * Verifies the signature and claims of a user access token. The caller learns only "invalid" or
 * "expired, when"; which check failed on a forged token goes to `logDetail`, i.e. the log.
 */
export async function verifyUserAccessToken(verifier: TokenVerifier, token: string, options: { audience: string; now: Date }): Promise<UserAccessClaims> {
  let payload: JWTPayload;
  try {
    payload = await verifier.verify(token, { audience: options.audience, typ: 'at+jwt', now: options.now });
  } catch (error) {
    if (error instanceof errors.JWTExpired && typeof error.payload.exp === 'number') {
      throw new ServiceError('token_expired', `token expired ${describeExpiry(error.payload.exp * 1000, options.now)}; refresh it or sign in again`);
    }
    if (error instanceof errors.JWTClaimValidationFailed) {
      // The signature was ours: saying that the kind is wrong helps the developer and no attacker.
      throw new ServiceError('invalid_token', 'not a user access token of this provider (audience or type differs)', {
        logDetail: `${error.claim}: ${error.reason}`,
      });
    }
    throw invalidToken(error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error));
  }
  if (payload.token_type !== USER_TOKEN_TYPE || typeof payload.sid !== 'string' || typeof payload.email !== 'string' || typeof payload.role !== 'string') {
    throw new ServiceError('invalid_token', 'not a user access token of this provider (client and admin tokens are not accepted here)', {
      logDetail: `token_type=${String(payload.token_type)}`,
    });
  }
  return payload as UserAccessClaims;
}

export function invalidToken(logDetail: string): ServiceError {
  return new ServiceError('invalid_token', 'the access token is not valid; sign in again to get a new one', { logDetail });
}

/** `3 minutes ago at 2026-11-22 14:30:00 UTC`: enough for a developer to spot a clock or TTL problem. */
export function describeExpiry(expiredAtMs: number, now: Date): string {
  const ago = Math.max(0, now.getTime() - expiredAtMs);
  const units: Array<[string, number]> = [
    ['day', 86_400_000],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1_000],
  ];
  const [name, size] = units.find(([, size]) => ago >= size) ?? ['second', 1_000];
  const count = Math.floor(ago / size);
  const at = new Date(expiredAtMs).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
  return `${count} ${name}${count === 1 ? '' : 's'} ago at ${at}`;
}
