import { generateKeyRingEntry, KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import { CURSOR_MAX_LENGTH, CursorCodec } from '../../src/http/cursor';

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

  it('carry a client id of any valid length, as it is: an issued id or a metadata-document URL of 256 characters, the worst case within the bound', () => {
    const codec = new CursorCodec(ring(old));
    const at = position.at;
    const url = `https://agent.example/${'p'.repeat(256 - 'https://agent.example/'.length)}`;
    // 256 characters each escaped in the JSON: the longest clients cursor there can be.
    for (const id of ['Ab-_0123456789abcdefghij', 'CaseSensitive', url, '"'.repeat(256), '\\'.repeat(256), '~'.repeat(256)]) {
      const cursor = codec.encode('clients', { at, id });
      expect(cursor.length).toBeLessThanOrEqual(CURSOR_MAX_LENGTH.clients);
      expect(codec.decode('clients', cursor)).toEqual({ at, id });
      // Bound to its list: a clients cursor is no users, audit or API-key cursor.
      for (const kind of ['users', 'audit', 'api-keys'] as const) expect(codec.decode(kind, cursor)).toBeUndefined();
    }
    expect(codec.decode('clients', codec.encode('users', position))).toBeUndefined();
    // Not a client id: longer than 256, or not printable ASCII.
    for (const id of ['x'.repeat(257), 'a b', 'caf\u00e9', '']) expect(codec.decode('clients', codec.encode('clients', { at, id }))).toBeUndefined();
  });
});
