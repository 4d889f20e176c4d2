import type { ColumnType, Generated, Selectable } from 'kysely';

export type KeyState = 'next' | 'current' | 'previous' | 'retired' | 'revoked';

/** Public members of an RSA JWK as stored; the JWKS adds the rest from the row. */
export interface StoredPublicJwk {
  kty: 'RSA';
  n: string;
  e: string;
}

export interface SigningKeysTable {
  kid: string;
  state: KeyState;
  purpose: string;
  alg: 'RS256';
  bits: number;
  public_jwk: ColumnType<StoredPublicJwk, string, string>;
  /** Base64 DER of the self-signed X.509 certificate (the `x5c` member). */
  certificate: string;
  x5t_s256: string;
  encrypted_private_key: Uint8Array | null;
  wrapped_data_key: Uint8Array | null;
  mek_id: string | null;
  envelope_version: number | null;
  created_at: Date;
  published_at: Date | null;
  activated_at: Date | null;
  deactivated_at: Date | null;
  retired_at: Date | null;
}

export interface AuditEventsTable {
  id: Generated<string>;
  occurred_at: Date;
  actor: string;
  action: string;
  target: string | null;
  reason: string | null;
  request_id: string | null;
  details: ColumnType<Record<string, unknown>, string | undefined, string>;
}

export interface Database {
  signing_keys: SigningKeysTable;
  audit_events: AuditEventsTable;
}

export type SigningKeyRow = Selectable<SigningKeysTable>;
export type AuditEventRow = Selectable<AuditEventsTable>;
