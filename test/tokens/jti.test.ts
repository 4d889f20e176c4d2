import { createJtiSource } from '../../src/tokens/jti';

/** The batched `jti` source of the token endpoint (docs/performance.md "Where the tail came from"). */
describe('createJtiSource', () => {
  it('gives 128-bit base64url jtis that never repeat, across many refills of its buffer', () => {
    const next = createJtiSource();
    const seen = new Set<string>();
    for (let i = 0; i < 256 * 4 + 3; i++) {
      const jti = next();
      expect(jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(Buffer.from(jti, 'base64url')).toHaveLength(16);
      seen.add(jti);
    }
    expect(seen.size).toBe(256 * 4 + 3);
  });

  it('gives each source its own bytes', () => {
    const a = createJtiSource();
    const b = createJtiSource();
    expect(a()).not.toBe(b());
  });
});
