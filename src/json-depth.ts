/**
 * How deeply nested the JSON the service reads from outside may be (docs/http-api.md "Bad input, exact routes and names".
 *
 * JSON.parse is iterative in V8 and reads any depth, but JSON.stringify and zod's parse of nested
 * values recurse: nesting a few thousand levels deep (a 10 KB body) exhausts the stack. Every
 * caller's JSON is checked here, iteratively, before anything recursive touches it. No document the
 * service accepts needs more than a handful of levels (a JWKS in a request body is 4).
 */

/** The deepest nesting of arrays and objects accepted; the outermost array or object is level 1. */
export const MAX_JSON_DEPTH = 32;

/** True when `value` nests arrays or objects more than `limit` levels deep. Iterative; stops at the first level too deep. */
export function nestedDeeperThan(value: unknown, limit: number = MAX_JSON_DEPTH): boolean {
  const pending: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    if (item.value === null || typeof item.value !== 'object') continue;
    const depth = item.depth + 1;
    if (depth > limit) return true;
    for (const element of Array.isArray(item.value) ? item.value : Object.values(item.value)) pending.push({ value: element, depth });
  }
  return false;
}
