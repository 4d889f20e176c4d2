import crypto, { type KeyObject } from 'node:crypto';
import { CLIENT_ASSERTION_ALGORITHMS, type ClientAssertionAlgorithm, type ClientKey } from '../clients/jwks';
import type { Client } from '../clients/repository';
import { ClientKeysUnavailable, type ClientKeys } from './client-keys';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../json-depth';

/** RFC 7523 §2.2: the one `client_assertion_type` accepted. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/**
 * The clock tolerance of client assertions, seconds: `exp` may have passed by this much, `iat` and
 * `nbf` may lie this far in the future, and `exp` may be this much beyond the 5 minutes. Clients'
 * clocks drift; 30 s covers a machine without NTP for a while, and keeps the replay window small.
 */
export const ASSERTION_CLOCK_TOLERANCE_S = 30;
/** The furthest `exp` may lie in the future (beyond the tolerance), seconds: an assertion is for one request, not a credential. */
export const ASSERTION_MAX_LIFETIME_S = 300;

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** An assertion refused: `message` is the precise cause, for the log only (the client sees a generic `invalid_client`). */
export class AssertionRefused extends Error {
  readonly code = 'ERR_CLIENT_ASSERTION';
  constructor(message: string) {
    super(message);
    this.name = 'AssertionRefused';
  }
}

/** What an accepted assertion leaves to be recorded: its `jti`, until when a replay must be refused. */
export interface AcceptedAssertion {
  jti: string;
  /** `exp` plus the tolerance: the last moment the same assertion would still be accepted. */
  replayGuardUntil: Date;
}

/**
 * An assertion as presented, read but not verified: its compact text, its claims (a JSON object) and
 * the client they claim to be (`sub`, else `iss`), to find the client whose keys must verify it. Read
 * once per request: `ClientAssertionVerifier.verify` checks the signature over `text` and then these
 * same claims, so nothing decodes them twice. Only `read` makes one, so the claims are always those
 * of the text.
 */
export class PresentedAssertion {
  private constructor(
    readonly text: string,
    /** The three dot-separated parts of `text` (only the claims' part is checked to be base64url here; verify checks the others). */
    readonly parts: readonly [header: string, claims: string, signature: string],
    readonly clientId: string,
    readonly claims: Readonly<Record<string, unknown>>,
  ) {}

  /** Undefined when `text` is not a three-part JWT whose claims (a JSON object) name a client. */
  static read(text: string): PresentedAssertion | undefined {
    const parts = text.split('.');
    if (parts.length !== 3) return undefined;
    const [header, encodedClaims, signature] = parts as [string, string, string];
    const claims = BASE64URL.test(encodedClaims) ? decodeJson(encodedClaims) : undefined;
    if (!isJsonObject(claims)) return undefined;
    const id = claims.sub ?? claims.iss;
    return typeof id === 'string' && id !== '' ? new PresentedAssertion(text, [header, encodedClaims, signature], id, claims) : undefined;
  }
}

export interface ClientAssertionVerifierOptions {
  keys: ClientKeys;
  /** The audiences accepted at an endpoint (its path): the issuer, the token endpoint URL and the endpoint's own URL. */
  audiences(endpointPath: string): readonly string[];
  now: () => Date;
}

const ALGORITHMS: readonly string[] = CLIENT_ASSERTION_ALGORITHMS;

/** How node:crypto checks each accepted algorithm's signature, all over SHA-256 (RFC 7518 §3.3–3.5). */
const VERIFY_KEY: Record<ClientAssertionAlgorithm, (key: KeyObject) => KeyObject | crypto.VerifyKeyObjectInput> = {
  // PKCS #1 v1.5 is what node:crypto does with an RSA key given alone; no options object to build per assertion.
  RS256: (key) => key,
  // The salt as long as the hash, as RFC 7518 §3.5 requires.
  PS256: (key) => ({ key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }),
  // JWS carries R || S (64 bytes), not DER.
  ES256: (key) => ({ key, dsaEncoding: 'ieee-p1363' }),
};

/**
 * Whether `signature` is `alg`'s signature of `signingInput` by `key`. It runs synchronously, on the
 * event loop: a 2048-bit RSA verify takes ~25 µs. jose's compactVerify does the same check on the
 * thread pool, which cost ~85 µs of CPU an assertion, measured, for a check shorter than the dispatch.
 * The header it would check, `verify` has checked; the key is one of the client's, parsed and checked
 * (type, size, the algorithms it allows) when its JWKS was read (src/clients/jwks.ts).
 */
function signatureVerifies(alg: ClientAssertionAlgorithm, key: KeyObject, signingInput: Buffer, signature: Buffer): boolean {
  try {
    return crypto.verify('sha256', signingInput, VERIFY_KEY[alg](key), signature);
  } catch {
    // A signature of the wrong shape for the key (an ES256 signature that is not 64 bytes, say).
    return false;
  }
}

/**
 * Verifies a `private_key_jwt` client assertion (RFC 7523 §3, OpenID Connect Core §9), everything but
 * the replay guard (the caller records the `jti` once the client is known to be active):
 * - the header and the claims are JSON objects nested at most MAX_JSON_DEPTH levels deep;
 * - the header's `alg` is RS256, PS256 or ES256 (never `none`, never HS*: a MAC keyed with a public
 *   key proves nothing), and the signature verifies with one of the client's keys (by `kid`, or any
 *   key of that algorithm without one);
 * - `iss` = `sub` = the client's id; `aud` (a string or an array) contains the issuer, the token
 *   endpoint URL or the URL of the endpoint called;
 * - `exp` present, not past (beyond the tolerance) and at most 5 minutes ahead (plus the tolerance);
 *   `iat` and `nbf`, when present, not in the future beyond the tolerance;
 * - `jti` present, a non-empty string (the replay store refuses one it cannot record).
 */
export class ClientAssertionVerifier {
  constructor(private readonly options: ClientAssertionVerifierOptions) {}

  async verify(client: Client, assertion: PresentedAssertion, endpointPath: string): Promise<AcceptedAssertion> {
    const [encodedHeader, , encodedSignature] = assertion.parts;
    if (!BASE64URL.test(encodedHeader) || !BASE64URL.test(encodedSignature)) throw new AssertionRefused('not a compact JWS of three base64url parts');
    const header = jsonObjectOf(encodedHeader, 'the header is');
    const { alg, kid } = header;
    if (typeof alg !== 'string' || !ALGORITHMS.includes(alg)) {
      throw new AssertionRefused(`alg ${JSON.stringify(alg)} is not accepted (${ALGORITHMS.join(', ')})`);
    }
    if (kid !== undefined && typeof kid !== 'string') throw new AssertionRefused('kid is not a string');
    // RFC 7515 §4.1.11: an extension the verifier does not understand must be refused; none is understood here (RFC 7797's b64 among them).
    if ('crit' in header || 'b64' in header) throw new AssertionRefused('the header names an extension (crit, b64); none is accepted');

    let candidates: ClientKey[];
    try {
      candidates = await this.options.keys.candidates(client, { alg, kid });
    } catch (error) {
      if (error instanceof ClientKeysUnavailable) throw new AssertionRefused(error.message);
      throw new AssertionRefused(`client ${client.id}: its keys cannot be used (${(error as Error).message})`);
    }
    const signingInput = Buffer.from(assertion.text.slice(0, assertion.text.length - encodedSignature.length - 1));
    const signature = Buffer.from(encodedSignature, 'base64url');
    if (!candidates.some((candidate) => signatureVerifies(alg as ClientAssertionAlgorithm, candidate.key, signingInput, signature))) {
      throw new AssertionRefused(`signature (${alg}) does not verify with the client's key(s) ${describeKeys(candidates)}`);
    }
    // The claims were decoded when the assertion was read; their depth is checked here, as the header's.
    if (nestedDeeperThan(assertion.claims)) throw new AssertionRefused(`the claims are nested more than ${MAX_JSON_DEPTH} levels deep`);
    return this.checkClaims(client, assertion.claims, endpointPath);
  }

  private checkClaims(client: Client, claims: Record<string, unknown>, endpointPath: string): AcceptedAssertion {
    const { iss, sub, aud, exp, iat, nbf, jti } = claims;
    if (iss !== client.id) throw new AssertionRefused(`iss ${describe(iss)} is not the client id ${client.id}`);
    if (sub !== client.id) throw new AssertionRefused(`sub ${describe(sub)} is not the client id ${client.id}`);

    const accepted = this.options.audiences(endpointPath);
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
    if (!audiences || audiences.length === 0 || !audiences.every((a) => typeof a === 'string')) throw new AssertionRefused(`aud ${describe(aud)} is missing or malformed`);
    if (!audiences.some((a) => accepted.includes(a as string))) {
      throw new AssertionRefused(`aud ${describe(aud)} names neither the issuer nor this endpoint (${accepted.join(', ')})`);
    }

    const now = this.options.now().getTime() / 1000;
    const tolerance = ASSERTION_CLOCK_TOLERANCE_S;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new AssertionRefused('exp is missing or not a number');
    if (exp + tolerance <= now) throw new AssertionRefused(`expired at ${iso(exp)} (now ${iso(now)}, tolerance ${tolerance}s)`);
    if (exp > now + ASSERTION_MAX_LIFETIME_S + tolerance) {
      throw new AssertionRefused(`exp ${iso(exp)} is more than ${ASSERTION_MAX_LIFETIME_S}s ahead (now ${iso(now)}, tolerance ${tolerance}s)`);
    }
    if (iat !== undefined) {
      if (typeof iat !== 'number' || !Number.isFinite(iat)) throw new AssertionRefused('iat is not a number');
      if (iat > now + tolerance) throw new AssertionRefused(`iat ${iso(iat)} is in the future (now ${iso(now)}, tolerance ${tolerance}s)`);
    }
    if (nbf !== undefined) {
      if (typeof nbf !== 'number' || !Number.isFinite(nbf)) throw new AssertionRefused('nbf is not a number');
      if (nbf > now + tolerance) throw new AssertionRefused(`nbf ${iso(nbf)} is in the future (now ${iso(now)}, tolerance ${tolerance}s)`);
    }
    // What a jti may hold (length, storable text) is the replay store's to judge: src/oauth/assertion-jtis.ts.
    if (typeof jti !== 'string' || jti === '') throw new AssertionRefused('jti is missing');
    return { jti, replayGuardUntil: new Date(Math.ceil(exp + tolerance) * 1000) };
  }
}

/**
 * The JSON object a base64url part of the assertion holds (its header or its claims), refused when
 * it is not one or nests deeper than MAX_JSON_DEPTH: the refusals quote its values with
 * JSON.stringify, which would run out of stack on a deep one (a 500 instead of invalid_client).
 */
function jsonObjectOf(part: string, what: 'the header is' | 'the claims are'): Record<string, unknown> {
  const parsed = decodeJson(part);
  if (parsed === undefined) throw new AssertionRefused(`${what} not JSON`);
  if (!isJsonObject(parsed)) throw new AssertionRefused(`${what} not a JSON object`);
  if (nestedDeeperThan(parsed)) throw new AssertionRefused(`${what} nested more than ${MAX_JSON_DEPTH} levels deep`);
  return parsed;
}

/** The JSON value a base64url part holds; undefined when it is not JSON (JSON itself has no undefined). */
function decodeJson(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function iso(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

function describeKeys(keys: readonly ClientKey[]): string {
  return keys.map((k) => (k.kid === undefined ? `(${k.kty}, no kid)` : JSON.stringify(k.kid))).join(', ');
}
