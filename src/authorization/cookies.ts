import crypto from 'node:crypto';

/**
 * The hosted pages' cookies (docs/sign-in.md "Sessions and cookies". With an https issuer they are
 * `__Host-` prefixed and `Secure` (the browser then refuses them from any other origin, path or
 * insecure page); on a plain-http development issuer neither, since browsers drop `Secure` cookies
 * on http. Always `HttpOnly`, `SameSite=Lax` (sent on the top-level navigation from the application
 * to /oauth/authorize, never on a cross-site POST) and `Path=/`.
 */
export interface CookieNames {
  /** The browser session: names a server-side row by a random token. */
  session: string;
  /** Binds the pages' forms to the browser that was shown them. */
  browser: string;
  secure: boolean;
}

export function cookieNames(issuer: string): CookieNames {
  const secure = issuer.startsWith('https:');
  const prefix = secure ? '__Host-' : '';
  return { session: `${prefix}idp_session`, browser: `${prefix}idp_browser`, secure };
}

/** The cookies of a request (RFC 6265 §5.4 `Cookie` header); the first value of a name wins. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (!header) return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (name !== '' && !cookies.has(name)) cookies.set(name, value);
  }
  return cookies;
}

/** A `Set-Cookie` value; `maxAgeSeconds` 0 deletes the cookie. */
export function setCookie(name: string, value: string, options: { secure: boolean; maxAgeSeconds: number }): string {
  return [`${name}=${value}`, 'Path=/', `Max-Age=${Math.max(0, Math.floor(options.maxAgeSeconds))}`, 'HttpOnly', 'SameSite=Lax', ...(options.secure ? ['Secure'] : [])].join('; ');
}

/** A random token of 256 bits, base64url (43 characters). */
export function randomToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

/** The stored form of a token: base64url SHA-256 (the token has 256 bits: nothing to guess from the hash). */
export function tokenHash(token: string): string {
  return crypto.createHash('sha256').update(token).digest('base64url');
}

/** What a cookie or form token looks like; anything else is not looked up. */
export function looksLikeToken(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{43}$/.test(value);
}

/** Constant-time equality of two hashes. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}
