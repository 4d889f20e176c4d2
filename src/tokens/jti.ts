import crypto from 'node:crypto';

/** Bytes of entropy in a `jti`: 128 bits, 22 base64url characters. */
const JTI_BYTES = 16;
/** How many `jti`s one call to the CSPRNG provides. */
const BATCH = 256;

/**
 * A fresh `jti`: 128 bits from the CSPRNG, base64url. The bytes are drawn from a buffer filled
 * BATCH `jti`s at a time, as Node's `crypto.randomUUID` does: one `crypto.randomBytes(16)` costs
 * ~10–15 µs of the event loop with Node 20's OpenSSL 3 (measured, docs/performance.md "Where the
 * tail came from"), more than everything else the token endpoint does in JavaScript. Each slice of
 * the buffer is used once and the buffer is refilled before any byte is reused. Only for `jti`s,
 * which are public in the token: secrets keep their own `randomBytes`.
 */
export function createJtiSource(): () => string {
  const pool = Buffer.alloc(JTI_BYTES * BATCH);
  let offset = pool.length;
  return () => {
    if (offset === pool.length) {
      crypto.randomFillSync(pool);
      offset = 0;
    }
    const jti = pool.toString('base64url', offset, offset + JTI_BYTES);
    offset += JTI_BYTES;
    return jti;
  };
}
