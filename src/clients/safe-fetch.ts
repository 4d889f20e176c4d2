import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { describeSpecialPurpose, isPublicAddress } from './special-purpose-addresses';

/**
 * The one way the server fetches a URL a client gave it (a `jwks_uri`, a client ID metadata
 * document; docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`", "Client ID Metadata Documents"), built so that it cannot be
 * turned against us or the network we run in:
 *
 * - One GET: a deadline over everything (resolution, connection, headers, body), a body cap (counted
 *   as it streams, and cut), redirects never followed (a 3xx is a refusal), only 200 accepted, the
 *   body parsed as JSON; the answer's `Cache-Control` max-age is handed back for the caller's cache.
 * - In production no destination in any IANA special-purpose range (src/clients/special-purpose-addresses.ts):
 *   the caller checks a literal address before the request (`productionHostRefusal`), and a host name is checked at
 *   every connection, on every address it resolves to, inside the socket's own lookup (so a name
 *   cannot resolve to a public address for the check and to 127.0.0.1 for the connection).
 */

/** The host of a URL as an address or name (IPv6 literals without their brackets). */
export function hostOf(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/** Why a URL's host may not be fetched in production (a literal reserved address, localhost), or undefined. */
export function productionHostRefusal(url: URL): string | undefined {
  const host = hostOf(url);
  if (net.isIP(host) !== 0 && !isPublicAddress(host)) return `${describeSpecialPurpose(host)}: a private, loopback or reserved address`;
  // `localhost.` is the same name (a trailing dot only makes it absolute).
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return 'localhost';
  return undefined;
}

/**
 * The freshness lifetime (ms) a `Cache-Control` header gives: `no-store`/`no-cache` → 0,
 * `max-age=N` → N s, otherwise undefined (the caller's default).
 */
export function maxAgeOf(cacheControl: string | undefined): number | undefined {
  if (cacheControl === undefined) return undefined;
  const lower = cacheControl.toLowerCase();
  if (/(^|[\s,])(no-store|no-cache)([\s,=]|$)/.test(lower)) return 0;
  const match = /(?:^|[\s,])max-age\s*=\s*"?(\d+)"?/.exec(lower);
  return match ? Number(match[1]) * 1000 : undefined;
}

/** A fetched document: the parsed JSON and its Cache-Control max-age (ms), if any. */
export interface FetchedJson {
  body: unknown;
  maxAgeMs: number | undefined;
}

/** A URL that gave no usable answer: `message` says why (for the log, never for the client). */
export class SafeFetchError extends Error {
  readonly code: string = 'ERR_SAFE_FETCH';
  constructor(message: string) {
    super(message);
    this.name = 'SafeFetchError';
  }
}

/** dns.lookup, refusing a name any of whose addresses is private, loopback, link-local or reserved. */
const publicOnlyLookup: net.LookupFunction = (hostname, options, callback) => {
  dns.lookup(hostname, { family: options.family, hints: options.hints, all: true }, (error, addresses) => {
    if (error) return (callback as (error: Error) => void)(error);
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (addresses.length === 0 || refused) {
      const why = refused ? `${hostname} resolves to ${describeSpecialPurpose(refused.address)}, a private, loopback or reserved address` : `${hostname} has no address`;
      return (callback as (error: Error) => void)(Object.assign(new Error(why), { code: 'ERR_PRIVATE_ADDRESS' }));
    }
    if (options.all) return (callback as (error: null, addresses: dns.LookupAddress[]) => void)(null, addresses);
    const first = addresses[0] as dns.LookupAddress;
    return (callback as (error: null, address: string, family: number) => void)(null, first.address, first.family);
  });
};

export interface SafeFetchOptions {
  /** NODE_ENV=production: public destinations only (the caller has checked the URL's scheme and literal host). */
  production: boolean;
  timeoutMs: number;
  maxBytes: number;
  /** The Accept header. */
  accept: string;
  /** Makes the error of a failed fetch (each caller has its own class, so its callers can tell). */
  failure?: (message: string) => Error;
}

/** GETs `url` under the rules above; resolves with the parsed JSON body, or rejects with `failure(message)`. */
export function fetchJson(url: URL, options: SafeFetchOptions): Promise<FetchedJson> {
  const { timeoutMs, maxBytes } = options;
  const failure = options.failure ?? ((message: string) => new SafeFetchError(message));
  const where = url.href;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (outcome: FetchedJson | Error) => {
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
      headers: { accept: options.accept },
      // Each fetch its own connection: nothing pooled outlives the deadline, and every connection goes through the lookup.
      agent: false,
      ...(options.production ? { lookup: publicOnlyLookup } : {}),
    });
    const timer = setTimeout(() => finish(failure(`${where}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) => finish(failure(`${where}: ${error.message}`)));
    request.on('response', (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 300 && status < 400) return finish(failure(`${where} answered a redirect (${status}); redirects are not followed`));
      if (status !== 200) return finish(failure(`${where} answered ${status}`));
      const declared = Number(response.headers['content-length'] ?? '0');
      if (declared > maxBytes) return finish(failure(`${where} answered ${declared} bytes; at most ${maxBytes} are read`));
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) return finish(failure(`${where} answered over ${maxBytes} bytes; the body was cut`));
        chunks.push(chunk);
      });
      response.on('error', (error) => finish(failure(`${where}: ${error.message}`)));
      response.on('end', () => {
        if (settled) return;
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          return finish(failure(`${where} answered a body that is not JSON`));
        }
        finish({ body, maxAgeMs: maxAgeOf(response.headers['cache-control']) });
      });
    });
  });
}
