import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type ProtectedHeaderParameters } from 'jose';

/**
 * `idp verify`: what a resource server does with a bearer token, step by step, so that each refusal
 * names its one cause. Only the issuer's published metadata is trusted: its RFC 8414 discovery
 * document and the JWKS it points to; never `jku`, `jwk` or `x5u` from the token.
 */

/** The JWS `typ` of every token this provider issues (RFC 9068 access tokens, admin tokens). */
export const EXPECTED_TYP = 'at+jwt';

export type RejectionCode =
  | 'ERR_MALFORMED'
  | 'ERR_ALGORITHM'
  | 'ERR_TYP'
  | 'ERR_UNKNOWN_KID'
  | 'ERR_SIGNATURE'
  | 'ERR_EXPIRED'
  | 'ERR_NOT_YET_VALID'
  | 'ERR_ISSUER'
  | 'ERR_AUDIENCE'
  | 'ERR_CLAIM';

/** The token is refused; `message` is the cause, precise enough to act on. */
export class TokenRejected extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message);
    this.name = 'TokenRejected';
  }
}

/** The issuer's metadata or keys could not be had: nothing was said about the token. */
export class IssuerMetadataError extends Error {
  readonly code = 'ERR_ISSUER_METADATA';
  constructor(message: string) {
    super(message);
    this.name = 'IssuerMetadataError';
  }
}

export interface IssuerKeys {
  issuer: string;
  discoveryUrl: string;
  jwksUri: string;
  jwks: JSONWebKeySet;
}

export interface FetchOptions {
  /** Per request; default 5 s. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

/** RFC 8414 §3: the well-known URI goes between the host and the issuer's path. */
export function discoveryUrl(issuer: string): string {
  const url = new URL(issuer);
  const suffix = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-authorization-server${suffix}`;
}

/** Fetches the issuer's discovery document, checks that it names this issuer (RFC 8414 §3.3), then its JWKS. */
export async function fetchIssuerKeys(issuer: string, options: FetchOptions = {}): Promise<IssuerKeys> {
  let discovery: string;
  try {
    discovery = discoveryUrl(issuer);
  } catch {
    throw new IssuerMetadataError(`issuer "${issuer}" is not a URL`);
  }
  const metadata = await getJson(discovery, options);
  if (metadata.issuer !== issuer) {
    throw new IssuerMetadataError(`${discovery} names issuer ${JSON.stringify(metadata.issuer)}, not "${issuer}" (RFC 8414 §3.3: refuse it)`);
  }
  if (typeof metadata.jwks_uri !== 'string') throw new IssuerMetadataError(`${discovery} has no jwks_uri`);
  const jwks = await getJson(metadata.jwks_uri, options);
  if (!Array.isArray(jwks.keys)) throw new IssuerMetadataError(`${metadata.jwks_uri} is not a JWK set (no "keys" array)`);
  return { issuer, discoveryUrl: discovery, jwksUri: metadata.jwks_uri, jwks: jwks as unknown as JSONWebKeySet };
}

async function getJson(url: string, options: FetchOptions): Promise<Record<string, unknown>> {
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(options.timeoutMs ?? 5_000) });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new IssuerMetadataError(`cannot fetch ${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
  }
  if (!response.ok) throw new IssuerMetadataError(`${url} answered ${response.status}`);
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new IssuerMetadataError(`${url} did not answer JSON`);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new IssuerMetadataError(`${url} did not answer a JSON object`);
  return body as Record<string, unknown>;
}

/** What can be read from a token without trusting it. */
export interface DecodedToken {
  header: ProtectedHeaderParameters;
  claims: JWTPayload;
}

export function decodeToken(token: string): DecodedToken {
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
    throw new TokenRejected('ERR_MALFORMED', 'malformed: not a compact JWS (three base64url parts separated by dots)');
  }
  try {
    return { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
  } catch (error) {
    throw new TokenRejected('ERR_MALFORMED', `malformed: ${(error as Error).message}`);
  }
}

export interface VerifyTokenOptions {
  /** When given, `aud` must contain it. */
  audience?: string;
  now?: Date;
}

export interface VerifiedToken extends DecodedToken {
  kid: string;
}

const iso = (seconds: unknown) => (typeof seconds === 'number' && Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : String(seconds));
const normalizeTyp = (typ: string) => typ.toLowerCase().replace(/^application\//, '');

/**
 * Verifies `token` against the issuer's keys: RS256 only, `typ` at+jwt, a `kid` of the JWKS, the
 * signature, then the claims (exact `iss`, `aud` when an audience is given, `exp` required and
 * not passed, `nbf`). Throws TokenRejected naming the first cause found in that order.
 */
export async function verifyToken(token: string, keys: IssuerKeys, options: VerifyTokenOptions = {}): Promise<VerifiedToken> {
  const { header, claims } = decodeToken(token);
  if (header.alg !== 'RS256') throw new TokenRejected('ERR_ALGORITHM', `algorithm ${JSON.stringify(header.alg)} not accepted (RS256 only)`);
  if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== EXPECTED_TYP) {
    throw new TokenRejected('ERR_TYP', `typ ${JSON.stringify(header.typ ?? null)} not accepted (expected "${EXPECTED_TYP}")`);
  }
  const kid = header.kid;
  if (typeof kid !== 'string') throw new TokenRejected('ERR_UNKNOWN_KID', 'unknown kid: the header has none');
  if (!keys.jwks.keys.some((k) => k.kid === kid)) {
    throw new TokenRejected(
      'ERR_UNKNOWN_KID',
      `unknown kid "${kid}": not among the ${keys.jwks.keys.length} keys of ${keys.jwksUri} (revoked, retired, or signed by another issuer)`,
    );
  }
  try {
    await jwtVerify(token, createLocalJWKSet(keys.jwks), {
      algorithms: ['RS256'],
      typ: EXPECTED_TYP,
      issuer: keys.issuer,
      audience: options.audience,
      currentDate: options.now,
      clockTolerance: 0,
      requiredClaims: ['exp'],
    });
  } catch (error) {
    throw rejection(error, claims, keys, kid, options);
  }
  return { header, claims, kid };
}

function rejection(error: unknown, claims: JWTPayload, keys: IssuerKeys, kid: string, options: VerifyTokenOptions): Error {
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenRejected('ERR_SIGNATURE', `signature does not verify with key "${kid}" of ${keys.jwksUri} (altered or forged)`);
  }
  if (error instanceof errors.JWTExpired) return new TokenRejected('ERR_EXPIRED', `expired at ${iso(claims.exp)}`);
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'iss':
        return new TokenRejected('ERR_ISSUER', `issuer ${JSON.stringify(claims.iss ?? null)} not accepted (expected "${keys.issuer}")`);
      case 'aud':
        return new TokenRejected('ERR_AUDIENCE', `audience "${options.audience}" not accepted: the token is for ${JSON.stringify(claims.aud ?? null)}`);
      case 'nbf':
        return new TokenRejected('ERR_NOT_YET_VALID', `not valid before ${iso(claims.nbf)}`);
      case 'typ':
        return new TokenRejected('ERR_TYP', `typ not accepted (expected "${EXPECTED_TYP}")`);
      default:
        return new TokenRejected('ERR_CLAIM', `claim ${error.claim}: ${error.reason === 'missing' ? 'missing' : error.message}`);
    }
  }
  if (error instanceof errors.JWKSNoMatchingKey) return new TokenRejected('ERR_UNKNOWN_KID', `unknown kid "${kid}": no usable RS256 key in ${keys.jwksUri}`);
  if (error instanceof errors.JOSEAlgNotAllowed) return new TokenRejected('ERR_ALGORITHM', 'algorithm not accepted (RS256 only)');
  if (error instanceof errors.JWTInvalid || error instanceof errors.JWSInvalid) return new TokenRejected('ERR_MALFORMED', `malformed: ${error.message}`);
  return error instanceof Error ? error : new Error(String(error));
}
