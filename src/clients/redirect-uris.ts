/**
 * Redirect URIs of the authorization-code flow (docs/oauth.md "Redirect URIs": what may be registered,
 * and whether a requested one matches a registration. Pure: no I/O, no configuration beyond the
 * `production` flag.
 *
 * - Compared as exact strings, except a loopback redirect (`http://127.0.0.1:<port>/...`,
 *   `http://[::1]:<port>/...`), which matches a registration of the same URI on any port (RFC 8252
 *   §7.3: native apps listen on an ephemeral port).
 * - No fragment (RFC 6749 §3.1.2), no wildcard, no user information, only RFC 3986 characters.
 * - `https`; `http` only for loopback (and `localhost` outside production); private-use schemes
 *   (`com.example.app:/cb`, RFC 8252 §7.1) for native apps, but never one a browser runs or reads
 *   (`javascript:`, `data:`, `file:`, ...).
 * - Bounded: at most MAX_REDIRECT_URIS per list, each at most MAX_REDIRECT_URI_LENGTH characters.
 */

export const MAX_REDIRECT_URI_LENGTH = 2048;
export const MAX_REDIRECT_URIS = 32;

/** A refused redirect URI; `message` is one line saying why. */
export class InvalidRedirectUri extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidRedirectUri';
  }
}

export interface RedirectUriPolicy {
  /** NODE_ENV=production: `http://localhost` is refused (loopback IP literals stay allowed). */
  production: boolean;
}

// RFC 3986 unreserved, reserved and `%`: anything else (spaces, quotes, backslashes, non-ASCII) is refused.
const URI_CHARACTERS = /^[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=%]+$/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
// Schemes a browser executes, reads locally or treats as a document of its own: never a redirect target.
const FORBIDDEN_SCHEMES = new Set(['javascript', 'vbscript', 'data', 'file', 'blob', 'about', 'filesystem', 'view-source', 'ws', 'wss', 'ftp']);
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]']);
// A loopback redirect as written: scheme, host, optional port, then the rest (compared exactly).
const LOOPBACK = /^http:\/\/(127\.0\.0\.1|\[::1\])(?::(\d{1,5}))?([/?].*)?$/;

/** The URI unchanged when it may be registered, else an InvalidRedirectUri saying why. */
export function validateRedirectUri(uri: string, policy: RedirectUriPolicy): string | InvalidRedirectUri {
  const refuse = (why: string) => new InvalidRedirectUri(`redirect URI ${JSON.stringify(uri.slice(0, 100))} ${why}`);
  if (typeof uri !== 'string' || uri.length === 0) return new InvalidRedirectUri('a redirect URI may not be empty');
  if (uri.length > MAX_REDIRECT_URI_LENGTH) return refuse(`is longer than ${MAX_REDIRECT_URI_LENGTH} characters`);
  if (!URI_CHARACTERS.test(uri)) return refuse('has characters a URI may not contain (spaces, quotes, backslashes, non-ASCII: percent-encode them)');
  if (uri.includes('#')) return refuse('has a fragment (RFC 6749 §3.1.2)');
  if (uri.includes('*')) return refuse('has a wildcard: register each URI exactly');
  const scheme = SCHEME.exec(uri)?.[1]?.toLowerCase();
  if (scheme === undefined) return refuse('is not absolute (it needs a scheme, e.g. https://)');
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return refuse('is not a valid URL');
  }
  if (url.username !== '' || url.password !== '') return refuse('has user information');
  if (scheme === 'https' || scheme === 'http') {
    // Exactly `scheme://host`: WHATWG URL would read `https:/host` or `https:///host` as a host too.
    if (!/^https?:\/\/[^/?]/i.test(uri)) return refuse('has no host');
    if (scheme === 'https') return uri;
    if (LOOPBACK_HOSTS.has(url.hostname)) return uri;
    if (url.hostname === 'localhost' && !policy.production) return uri;
    return refuse(
      policy.production
        ? 'uses http: only loopback redirects (http://127.0.0.1, http://[::1]) may, other redirects need https'
        : 'uses http: only loopback redirects (http://127.0.0.1, http://[::1], http://localhost) may, other redirects need https',
    );
  }
  if (FORBIDDEN_SCHEMES.has(scheme)) return refuse(`uses the scheme ${scheme}:, which is never a redirect target`);
  if (uri.length === scheme.length + 1) return refuse('has nothing after its scheme');
  return uri;
}

/**
 * Checks a list to be registered: each URI, at most MAX_REDIRECT_URIS, duplicates dropped.
 * Returns the list or the first refusal.
 */
export function validateRedirectUris(uris: readonly string[], policy: RedirectUriPolicy): string[] | InvalidRedirectUri {
  const unique = [...new Set(uris)];
  if (unique.length > MAX_REDIRECT_URIS) return new InvalidRedirectUri(`at most ${MAX_REDIRECT_URIS} redirect URIs may be registered`);
  for (const uri of unique) {
    const checked = validateRedirectUri(uri, policy);
    if (checked instanceof InvalidRedirectUri) return checked;
  }
  return unique;
}

/** The loopback form of a URI: its host and the rest, without the port; undefined when it is not loopback `http`. */
function loopbackKey(uri: string): string | undefined {
  const match = LOOPBACK.exec(uri);
  if (!match) return undefined;
  const port = match[2];
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65_535)) return undefined;
  return `${match[1]}${match[3] ?? ''}`;
}

/**
 * Whether `requested` (an authorization or logout request's redirect URI) is one of `registered`:
 * the same string, or, for a loopback `http` redirect, the same string but for the port.
 */
export function redirectUriMatches(registered: readonly string[], requested: string): boolean {
  if (registered.includes(requested)) return true;
  const key = loopbackKey(requested);
  return key !== undefined && registered.some((uri) => loopbackKey(uri) === key);
}
