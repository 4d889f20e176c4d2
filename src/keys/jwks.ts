import crypto from 'node:crypto';
import type { SigningKeyRow } from '../db/schema';

/** The members a JWKS entry may carry: an allow-list, so a private member can never slip through. */
export interface PublicJwk {
  kty: 'RSA';
  use: 'sig';
  alg: 'RS256';
  kid: string;
  n: string;
  e: string;
  x5c: [string];
  'x5t#S256': string;
}

export interface JwksDocument {
  keys: PublicJwk[];
}

/** The JWKS as served: the exact bytes and their strong ETag, computed once per key change. */
export interface JwksSnapshot {
  document: JwksDocument;
  body: Buffer;
  etag: string;
}

const ORDER: Record<string, number> = { current: 0, next: 1, previous: 2 };

export function toPublicJwk(row: SigningKeyRow): PublicJwk {
  return {
    kty: 'RSA',
    use: 'sig',
    alg: 'RS256',
    kid: row.kid,
    n: row.public_jwk.n,
    e: row.public_jwk.e,
    x5c: [row.certificate],
    'x5t#S256': row.x5t_s256,
  };
}

/** Builds the JWKS of the published keys: `current` first (for verifiers that pick the first key), then `next`, then `previous`. */
export function buildJwks(rows: readonly SigningKeyRow[]): JwksSnapshot {
  const published = rows
    .filter((row) => row.state in ORDER)
    .sort((a, b) => (ORDER[a.state] as number) - (ORDER[b.state] as number) || b.created_at.getTime() - a.created_at.getTime());
  const document: JwksDocument = { keys: published.map(toPublicJwk) };
  const body = Buffer.from(JSON.stringify(document));
  const etag = `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;
  return { document, body, etag };
}

/** RFC 9110 §13.1.2: does an If-None-Match header match this ETag (weak comparison)? */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((candidate) => candidate.trim().replace(/^W\//, '') === etag);
}
