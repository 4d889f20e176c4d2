/** The longest part of a caller's value a refusal shows. */
const ECHO_MAX_LENGTH = 32;

/**
 * A value from a token or a request as a refusal may show it: in double quotes, at most its first 32
 * characters, anything but printable ASCII (and `"`, `\`) escaped as `\uXXXX`, `…` when cut. The kit
 * keeps its own copy of the server's rule: it depends on nothing of the server.
 */
export function quoted(value: string): string {
  const characters = [...value];
  const shown = characters
    .slice(0, ECHO_MAX_LENGTH)
    .map((c) => (/^[\x20-\x7e]$/.test(c) && c !== '"' && c !== '\\' ? c : c.split('').map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')))
    .join('');
  return `"${shown}${characters.length > ECHO_MAX_LENGTH ? '…' : ''}"`;
}
