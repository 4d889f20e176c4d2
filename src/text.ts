/**
 * What text the service accepts from outside, in one place.
 *
 * - Storable text: Postgres `text` cannot hold U+0000, and `jsonb` refuses a lone UTF-16 surrogate
 *   (`"\ud800"`), so neither may reach a query: every string of a request (query values, path
 *   parameters, JSON keys and values) is checked before anything reads the database.
 * - Names (of clients, tenants, admin tokens, anything an operator names): also no control
 *   characters (C0, DEL, C1), no line or paragraph separators and no bidirectional overrides, since
 *   a name is printed in tables and logs where such characters rewrite what the reader sees.
 */

// A high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Why `value` cannot be stored as text, or undefined when it can. */
export function textProblem(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains a NUL character';
  if (LONE_SURROGATE.test(value)) return 'contains a lone UTF-16 surrogate (not valid Unicode)';
  return undefined;
}

/** Why `value` is not a printable single-line text (a name), or undefined when it is. */
export function printableProblem(value: string): string | undefined {
  return textProblem(value) ?? (CONTROL.test(value) ? 'contains a control character' : undefined);
}

/** A refused name: `code` is stable, `message` is one line naming the field. */
export class InvalidNameError extends Error {
  readonly code = 'ERR_INVALID_NAME';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidNameError';
  }
}

/** Names are at most this many characters unless a caller says otherwise. */
export const NAME_MAX_LENGTH = 200;

/**
 * Checks and trims a name: 1 to `maxLength` characters (after trimming), printable, valid Unicode.
 * `what` names the field in the message (`client name`, `tenant name`).
 */
export function checkName(value: string, what: string, maxLength = NAME_MAX_LENGTH): string {
  const problem = printableProblem(value);
  if (problem) throw new InvalidNameError(`${what} ${problem}; names are printable text`);
  const trimmed = value.trim();
  if (trimmed === '' || [...trimmed].length > maxLength) throw new InvalidNameError(`${what} must be 1 to ${maxLength} characters`);
  return trimmed;
}

/** The most characters of caller input an error message repeats. */
export const ECHO_MAX_LENGTH = 32;

/**
 * Caller input as an error message may show it: in double quotes, at most its first 32 characters,
 * anything but printable ASCII (and `"`, `\`) escaped as `\uXXXX`, and `…` inside the quotes when cut.
 * A message then never reflects a long value, a control sequence or text that passes for ours.
 */
export function quoted(value: string): string {
  const characters = [...value];
  const shown = characters
    .slice(0, ECHO_MAX_LENGTH)
    .map((c) => (/^[\x20-\x7e]$/.test(c) && c !== '"' && c !== '\\' ? c : c.split('').map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')))
    .join('');
  return `"${shown}${characters.length > ECHO_MAX_LENGTH ? '…' : ''}"`;
}
