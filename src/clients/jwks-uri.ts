import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { maxAgeOf } from '../verifier/http';
import { JwksError } from './jwks';
import { describeSpecialPurpose, isPublicAddress } from './special-purpose-addresses';
import { quoted } from '../text';

/**
 * A client's `jwks_uri` (README: "private_key_jwt"): which URLs may be registered, and fetching one in a way that
 * cannot be turned against us or the network we run in.
 *
 * - `https` only in production (`http` is accepted outside production, for tests and development);
 *   no user info, no fragment, at most 2048 characters.
 * - In production no destination in any IANA special-purpose range (private, loopback, link-local,
 *   documentation, NAT64, IPv4-compatible and -translated IPv6, ...: src/clients/special-purpose-addresses.ts): a literal
 *   address is checked at registration and before the request, a host name at every connection,
 *   on every address it resolves to, inside the socket's own lookup (so a name cannot resolve to a
 *   public address for the check and to 127.0.0.1 for the connection).
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

function hostAddress(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
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
  if (rules.production) {
    const host = hostAddress(url);
    if (net.isIP(host) !== 0 && !isPublicAddress(host)) throw new JwksError(`jwks_uri may not point at ${describeSpecialPurpose(host)}: a private, loopback or reserved address`);
    // `localhost.` is the same name (a trailing dot only makes it absolute).
    const name = host.toLowerCase().replace(/\.$/, '');
    if (name === 'localhost' || name.endsWith('.localhost')) throw new JwksError('jwks_uri may not point at localhost in production');
  }
  if (url.href.length > MAX_URI_LENGTH) throw new JwksError(`jwks_uri is over ${MAX_URI_LENGTH} characters`);
  return url.href;
}

/** A fetched key set: the parsed JSON and its Cache-Control max-age (ms), if any. */
export interface FetchedJwks {
  body: unknown;
  maxAgeMs: number | undefined;
}

/** A jwks_uri that gave no usable answer: `message` says why (for the log, never for the client). */
export class JwksFetchError extends Error {
  readonly code = 'ERR_JWKS_URI_FETCH';
  constructor(message: string) {
    super(message);
    this.name = 'JwksFetchError';
  }
}

/** dns.lookup, refusing a name any of whose addresses is private, loopback, link-local or reserved. */
const publicOnlyLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { family: options.family, hints: options.hints, all: true }, (error, addresses) => {
    if (error) return (callback as (error: Error) => void)(error);
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (addresses.length === 0 || refused) {
      const why = refused ? `${hostname} resolves to ${describeSpecialPurpose(refused.address)}, a private, loopback or reserved address` : `${hostname} has no address`;
      return (callback as (error: Error) => void)(Object.assign(new Error(why), { code: 'ERR_JWKS_URI_PRIVATE_ADDRESS' }));
    }
    if (options.all) return (callback as (error: null, addresses: dns.LookupAddress[]) => void)(null, addresses);
    const first = addresses[0] as dns.LookupAddress;
    return (callback as (error: null, address: string, family: number) => void)(null, first.address, first.family);
  });
};

export interface FetchJwksOptions extends JwksUriRules {
  timeoutMs?: number;
  maxBytes?: number;
}

/**
 * GETs a client's jwks_uri under the rules above; resolves with the parsed JSON body, or rejects
 * with a JwksFetchError (or JwksError for a URL that breaks the rules) naming the cause.
 */
export function fetchJwks(uri: string, options: FetchJwksOptions): Promise<FetchedJwks> {
  const timeoutMs = options.timeoutMs ?? JWKS_URI_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? JWKS_URI_MAX_BYTES;
  let url: URL;
  try {
    // In production a literal address never goes through the lookup: checkJwksUri refuses a reserved one here.
    url = new URL(checkJwksUri(uri, options));
  } catch (error) {
    return Promise.reject(error);
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (outcome: FetchedJwks | Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (outcome instanceof Error) {
        request.destroy();
        reject(outcome);
      } else {
        resolve(outcome);
      }
    };
    const get = url.protocol === 'https:' ? https.get : http.get;
    const request = get(url, {
      headers: { accept: 'application/jwk-set+json, application/json' },
      // Each fetch its own connection: nothing pooled outlives the deadline, and every connection goes through the lookup.
      agent: false,
      ...(options.production ? { lookup: publicOnlyLookup } : {}),
    });
    const timer = setTimeout(() => finish(new JwksFetchError(`${uri}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => finish(new JwksFetchError(`${uri}: ${error.message}`)));
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400) return finish(new JwksFetchError(`${uri} answered a redirect (${status}); redirects are not followed`));
      if (status !== 200) return finish(new JwksFetchError(`${uri} answered ${status}`));
      const declared = Number(response.headers['content-length'] ?? '0');
      if (declared > maxBytes) return finish(new JwksFetchError(`${uri} answered ${declared} bytes; at most ${maxBytes} are read`));
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) return finish(new JwksFetchError(`${uri} answered over ${maxBytes} bytes; the body was cut`));
        chunks.push(chunk);
      });
      response.on('error', (error) => finish(new JwksFetchError(`${uri}: ${error.message}`)));
      response.on('end', () => {
        if (settled) return;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return finish(new JwksFetchError(`${uri} answered a body that is not JSON`));
        }
        const cacheControl = response.headers['cache-control'];
        finish({ body, maxAgeMs: maxAgeOf(cacheControl === undefined ? null : cacheControl) });
      });
    });
  });
}
