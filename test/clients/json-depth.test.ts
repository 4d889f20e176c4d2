import { checkClientJwks, JwksError, readPublishedJwks } from '../../src/clients/jwks';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../../src/json-depth';

/** Issue 15: JSON nested deep enough to exhaust the stack of anything recursive is refused, iteratively, first. */
describe('JSON depth', () => {
  const arrays = (levels: number): unknown => JSON.parse(`${'['.repeat(levels)}${']'.repeat(levels)}`);
  const objects = (levels: number): unknown => JSON.parse(`${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);

  it('V8 parses 50,000 levels (JSON.parse is iterative); JSON.stringify does not survive 5,000', () => {
    const deep = arrays(50_000);
    expect(() => JSON.stringify(arrays(5_000))).toThrow(RangeError);
    expect(nestedDeeperThan(deep)).toBe(true);
    expect(nestedDeeperThan(objects(50_000))).toBe(true);
  });

  it('counts the outermost array or object as level 1; scalars are no level', () => {
    expect(nestedDeeperThan(arrays(MAX_JSON_DEPTH))).toBe(false);
    expect(nestedDeeperThan(arrays(MAX_JSON_DEPTH + 1))).toBe(true);
    expect(nestedDeeperThan(objects(MAX_JSON_DEPTH))).toBe(false);
    expect(nestedDeeperThan(objects(MAX_JSON_DEPTH + 1))).toBe(true);
    expect(nestedDeeperThan('text')).toBe(false);
    expect(nestedDeeperThan(null)).toBe(false);
    expect(nestedDeeperThan({ a: [1, { b: [] }], c: 'x' }, 4)).toBe(false);
    expect(nestedDeeperThan({ a: [1, { b: [] }], c: 'x' }, 3)).toBe(true);
  });

  it('a deep JWKS is a JwksError naming the depth, registered or published, never a RangeError', () => {
    for (const value of [{ keys: arrays(5_000) }, { keys: [{ kty: arrays(30_000) }] }, arrays(30_000)]) {
      expect(() => checkClientJwks(value)).toThrow(JwksError);
      expect(() => checkClientJwks(value)).toThrow(/nested more than 32 levels deep/);
      expect(() => readPublishedJwks(value)).toThrow(/nested more than 32 levels deep/);
    }
  });
});
