import { generateKeyRingEntry, KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import { CursorCodec } from '../../src/http/cursor';

const ring = (...entries: string[]) => new KeyRingMekProvider(parseKeyRing(entries.join(','), 'test'));
const position = { at: new Date('2026-11-26T10:00:00.123Z'), id: '3f2b8c1e-5d4a-4e2b-9c1d-7a6b5c4d3e2f' };

/** docs/http-api.md "Bad input, exact routes and names": paging cursors are authenticated under a key every instance derives from the shared MEK ring. */
describe('paging cursors', () => {
  const old = generateKeyRingEntry();
  const rotated = generateKeyRingEntry();

  it('round-trip between instances that share the ring, and across a MEK rotation while the old key stays in the ring', () => {
    const cursor = new CursorCodec(ring(old)).encode('users', position);
    expect(new CursorCodec(ring(old)).decode('users', cursor)).toEqual(position);
    // After the rotation the new primary signs; cursors of the old primary still open.
    expect(new CursorCodec(ring(rotated, old)).decode('users', cursor)).toEqual(position);
    expect(new CursorCodec(ring(old)).decode('users', new CursorCodec(ring(rotated, old)).encode('users', position))).toBeUndefined();
    // Bound to its list.
    expect(new CursorCodec(ring(old)).decode('audit', cursor)).toBeUndefined();
  });

  it('refuses a cursor made under another ring, and a well-formed unsigned one', () => {
    const foreign = new CursorCodec(ring(rotated)).encode('users', position);
    expect(new CursorCodec(ring(old)).decode('users', foreign)).toBeUndefined();
    const unsigned = Buffer.from(JSON.stringify({ v: 2, k: 'users', at: position.at.toISOString(), id: position.id })).toString('base64url');
    expect(new CursorCodec(ring(old)).decode('users', unsigned)).toBeUndefined();
  });
});
