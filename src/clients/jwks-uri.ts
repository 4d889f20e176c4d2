import { fetchJson, productionHostRefusal, SafeFetchError, type FetchedJson } from './safe-fetch';
import { JwksError } from './jwks';
import { quoted } from '../text';

/**
 * A client's `jwks_uri` (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`": which URLs may be registered, and fetching one
 * with the safe fetcher (src/clients/safe-fetch.ts), which a client ID metadata document shares.
 *
 * - `https` only in production (`http` is accepted outside production, for tests and development);
 *   no user info, no fragment, at most 2048 characters.
 * - In production no destination in any IANA special-purpose range (src/clients/special-purpose-addresses.ts):
 *   a literal address is checked at registration and before the request, a host name at every connection.
 * - One request: a 2 s deadline over everything (resolution, connection, headers, body), at most
 *   64 KiB of body (counted as it streams, and cut), redirects never followed (a 3xx is a refusal).
 */

/** The longest a fetch of a jwks_uri may take, resolution to last byte. */
export const JWKS_URI_TIMEOUT_MS = 2_000;
/** The largest JWKS read from a jwks_uri. */
export const JWKS_URI_MAX_BYTES = 64 * 1024;
const MAX_URI_LENGTH = 2048;

/** The rules that depend on where we run. */
export interface JwksUriRules {
  /** NODE_ENV=production: https only, public destinations only. */
  production: boolean;
}

/** Checks a jwks_uri an operator registers; returns it normalised (WHATWG URL), or throws JwksError with one line. */
export function checkJwksUri(text: string, rules: JwksUriRules): string {
  if (text.length > MAX_URI_LENGTH) throw new JwksError(`jwks_uri is over ${MAX_URI_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new JwksError(`jwks_uri ${quoted(text)} is not an absolute URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new JwksError('jwks_uri must be an https URL');
  if (rules.production && url.protocol !== 'https:') throw new JwksError('jwks_uri must be an https URL in production');
  if (url.username !== '' || url.password !== '') throw new JwksError('jwks_uri may not hold user information');
  if (url.hash !== '') throw new JwksError('jwks_uri may not hold a fragment');
  const refusal = rules.production ? productionHostRefusal(url) : undefined;
  if (refusal !== undefined) throw new JwksError(`jwks_uri may not point at ${refusal} in production`);
  if (url.href.length > MAX_URI_LENGTH) throw new JwksError(`jwks_uri is over ${MAX_URI_LENGTH} characters`);
  return url.href;
}

/** A fetched key set: the parsed JSON and its Cache-Control max-age (ms), if any. */
export type FetchedJwks = FetchedJson;

/** A jwks_uri that gave no usable answer: `message` says why (for the log, never for the client). */
export class JwksFetchError extends SafeFetchError {
  override readonly code = 'ERR_JWKS_URI_FETCH';
  constructor(message: string) {
    super(message);
    this.name = 'JwksFetchError';
  }
}

export interface FetchJwksOptions extends JwksUriRules {
  timeoutMs?: number;
  maxBytes?: number;
}

/**
 * GETs a client's jwks_uri with the safe fetcher (src/clients/safe-fetch.ts); resolves with the parsed
 * JSON body, or rejects with a JwksFetchError (or JwksError for a URL that breaks the rules) naming the cause.
 */
export function fetchJwks(uri: string, options: FetchJwksOptions): Promise<FetchedJwks> {
  let url: URL;
  try {
    // In production a literal address never goes through the lookup: checkJwksUri refuses a reserved one here.
    url = new URL(checkJwksUri(uri, options));
  } catch (error) {
    return Promise.reject(error);
  }
  return fetchJson(url, {
    production: options.production,
    timeoutMs: options.timeoutMs ?? JWKS_URI_TIMEOUT_MS,
    maxBytes: options.maxBytes ?? JWKS_URI_MAX_BYTES,
    accept: 'application/jwk-set+json, application/json',
    failure: (message) => new JwksFetchError(message),
  });
}
