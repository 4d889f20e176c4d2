import crypto from 'node:crypto';
import { decodeJwt, errors, type JWTPayload } from 'jose';
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
  /** A session opened for an application (docs/sign-in.md "Sign-in for applications"; absent for /auth/v1. */
  application?: ApplicationGrant;
}

/** What an application was granted: its id, the scopes, and the resources (the `aud`; none: IDP_USER_AUDIENCE). */
export interface ApplicationGrant {
  clientId: string;
  scope: string;
  resources: readonly string[];
}

export interface UserAccessClaims extends JWTPayload {
  sub: string;
  sid: string;
  email: string;
  role: string;
  scope: string;
  token_type: typeof USER_TOKEN_TYPE;
  tenant_id?: string;
  /** Tokens of the authorization-code flow: the application they were issued to. */
  client_id?: string;
}

/** One resource: a string; several: an array (RFC 7519 §4.1.3); none: the user audience. */
export function audienceOf(resources: readonly string[], userAudience: string): string | string[] {
  if (resources.length === 0) return userAudience;
  return resources.length === 1 ? (resources[0] as string) : [...resources];
}

export interface IssuedAccessToken {
  token: string;
  expiresAt: Date;
  /** Seconds from issue to expiry (`expires_in`). */
  expiresIn: number;
}

/**
 * Signs a user access token (docs/tokens.md "Tokens": typ at+jwt, aud IDP_USER_AUDIENCE, sid, role,
 * tenant_id when set. An application's token (the authorization-code flow) also names its
 * `client_id`, carries the granted `scope`, and its `aud` is the granted resources, if any.
 */
export async function issueUserAccessToken(
  sign: Signer,
  options: { issuer: string; audience: string; ttlMs: number; now: Date; jti?: string },
  subject: UserTokenSubject,
): Promise<IssuedAccessToken & { jti: string }> {
  const iat = Math.floor(options.now.getTime() / 1000);
  const exp = iat + Math.floor(options.ttlMs / 1000);
  const jti = options.jti ?? crypto.randomUUID();
  const application = subject.application;
  const claims: UserAccessClaims = {
    iss: options.issuer,
    sub: subject.userId,
    aud: application ? audienceOf(application.resources, options.audience) : options.audience,
    exp,
    iat,
    nbf: iat,
    jti,
    sid: subject.sessionId,
    email: subject.email,
    role: subject.role,
    scope: application ? application.scope : USER_SCOPE,
    token_type: USER_TOKEN_TYPE,
    ...(subject.tenantId ? { tenant_id: subject.tenantId } : {}),
    ...(application ? { client_id: application.clientId } : {}),
  };
  return { token: await sign(claims, 'at+jwt'), expiresAt: new Date(exp * 1000), expiresIn: exp - iat, jti };
}

/**
 * Verifies the signature and claims of a user access token. The caller learns only "invalid" or
 * "expired, when"; which check failed on a forged token goes to `logDetail`, i.e. the log.
 */
export async function verifyUserAccessToken(verifier: TokenVerifier, token: string, options: { audience: string | 'any'; now: Date }): Promise<UserAccessClaims> {
  let payload: JWTPayload;
  try {
    payload = await verifier.verify(token, { audience: options.audience === 'any' ? anyAudience(token) : options.audience, typ: 'at+jwt', now: options.now });
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
  if (
    payload.token_type !== USER_TOKEN_TYPE ||
    typeof payload.sid !== 'string' ||
    typeof payload.email !== 'string' ||
    typeof payload.role !== 'string' ||
    typeof payload.scope !== 'string' ||
    (payload.client_id !== undefined && typeof payload.client_id !== 'string')
  ) {
    throw new ServiceError('invalid_token', 'not a user access token of this provider (client and admin tokens are not accepted here)', {
      logDetail: `token_type=${String(payload.token_type)}`,
    });
  }
  return payload as UserAccessClaims;
}

/**
 * The audience a token names, for the endpoints that answer for any resource (introspection,
 * userinfo): the signature is still verified, so only a token we issued gets past.
 */
function anyAudience(token: string): string | string[] {
  try {
    const aud = decodeJwt(token).aud;
    if (typeof aud === 'string' || (Array.isArray(aud) && aud.length > 0)) return aud;
  } catch {
    // Not a JWT: verification fails below with its own message.
  }
  return '\u0000no audience';
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
