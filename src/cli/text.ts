/**
 * What the CLI writes for people is escaped: a value read from the database (a client's or a
 * tenant's name, an admin token's description, a kid) could otherwise carry terminal escape
 * sequences, carriage returns or bidirectional overrides, and rewrite what the operator sees (move
 * the cursor, recolour, hide a line, set the window title). JSON output needs none of this: JSON
 * escapes every control character itself.
 */

// C0 controls (ESC among them), DEL, C1 controls (8-bit CSI), line/paragraph separators, the
// bidirectional embeddings, overrides and isolates, and lone UTF-16 surrogates.
// With the `u` flag a surrogate pair is one code point, so the surrogate range matches lone halves only.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]/gu;
const UNSAFE_OR_BACKSLASH = new RegExp(`${UNSAFE.source}|\\\\`, 'gu');
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };

function escape(char: string): string {
  const named = NAMED[char];
  if (named) return named;
  const code = char.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * One value on one line, unambiguous: every control character, separator, bidi control and lone
 * surrogate written as `\n`, `\x1b`, `\u202e`…, and a backslash as `\\`.
 */
export function printable(value: string): string {
  return value.replace(UNSAFE_OR_BACKSLASH, escape);
}

/**
 * A whole block of output: like `printable` but keeps its line breaks and backslashes, so that
 * text whose values are already escaped comes out unchanged. The last line of defence for any
 * value a command interpolates into its text.
 */
export function printableText(text: string): string {
  return text.replace(UNSAFE, (char) => (char === '\n' ? char : escape(char)));
}

// What JSON.stringify leaves raw that a terminal may still act on: DEL, C1 controls (0x9b is an
// 8-bit CSI), line/paragraph separators and bidi controls. C0 controls it escapes itself.
const RAW_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** `--json` output: the same JSON document, with every character a terminal could act on written as `\uXXXX`. */
export function jsonText(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(RAW_IN_JSON, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
