import { InvalidRequest, InvalidToken, MissingCredentials } from './errors';
import { quoted } from './quoted';

/**
 * Request headers as Node gives them (`req.headers`: lower-case names) or a Fetch `Headers`.
 * A plain object is read by lower-case name only.
 */
export type HeaderSource = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

export interface Credential {
  kind: 'jwt' | 'api_key';
  value: string;
}

/** The prefix of the identity provider's API keys (docs/api-keys.md "API keys"; it is how an API key is told from a JWT. */
export const API_KEY_PREFIX = 'idpk_';

/** `idpk_<16 base62 id>_<base62 secret>`; the secret is 256 bits (43 characters), some slack either way. */
const API_KEY_FORMAT = /^idpk_[0-9A-Za-z]{16}_[0-9A-Za-z]{16,128}$/;
/** Three base64url segments; an empty signature is let through so that `alg: none` is named as such. */
const JWT_FORMAT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MAX_CREDENTIAL_LENGTH = 16 * 1024;

function header(headers: HeaderSource, name: string): string | readonly string[] | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  return (headers as Readonly<Record<string, string | readonly string[] | undefined>>)[name];
}

/**
 * The one credential of a request: `Authorization: Bearer <jwt | API key>` or `X-API-Key: <API key>`.
 * Two credentials, a scheme other than Bearer, or an empty value are `invalid_request` (RFC 6750
 * §3.1: "uses more than one method"); none at all is `MissingCredentials`.
 */
export function readCredential(headers: HeaderSource): Credential {
  const authorization = header(headers, 'authorization');
  const apiKey = header(headers, 'x-api-key');
  if (typeof authorization !== 'string' && authorization !== undefined) throw new InvalidRequest('more than one Authorization header');
  if (typeof apiKey !== 'string' && apiKey !== undefined) throw new InvalidRequest('more than one X-API-Key header');
  if (authorization !== undefined && apiKey !== undefined) throw new InvalidRequest('send one credential: Authorization or X-API-Key, not both');
  if (apiKey !== undefined) {
    const key = apiKey.trim();
    if (key === '') throw new InvalidRequest('empty X-API-Key header');
    return { kind: 'api_key', value: checkedApiKey(key) };
  }
  if (authorization === undefined) throw new MissingCredentials('missing credentials');
  const space = authorization.indexOf(' ');
  const scheme = space < 0 ? authorization : authorization.slice(0, space);
  if (scheme.toLowerCase() !== 'bearer') {
    throw new InvalidRequest(`unsupported authorization scheme ${quoted(scheme)} (use Bearer)`);
  }
  const value = space < 0 ? '' : authorization.slice(space + 1).trim();
  if (value === '') throw new InvalidRequest('empty bearer token');
  if (value.startsWith(API_KEY_PREFIX)) return { kind: 'api_key', value: checkedApiKey(value) };
  if (value.length > MAX_CREDENTIAL_LENGTH || !JWT_FORMAT.test(value)) throw new InvalidToken('malformed', 'malformed token');
  return { kind: 'jwt', value };
}

function checkedApiKey(key: string): string {
  if (!API_KEY_FORMAT.test(key)) throw new InvalidToken('malformed', 'malformed API key');
  return key;
}
