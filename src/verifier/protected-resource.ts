import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Verifier } from './verifier';

/** The well-known path of RFC 9728 Protected Resource Metadata. */
const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** How long clients and caches may keep the metadata: it changes only with the resource server's configuration. */
const MAX_AGE_SECONDS = 3600;

export interface ProtectedResourceOptions {
  /**
   * This resource server's identifier (RFC 9728 `resource`, RFC 8707): an absolute http(s) URL
   * without query or fragment, e.g. `https://mcp.example.com/mcp`. It is the audience the verifier
   * accepts: `createVerifier({ issuer, audience: resource })`.
   */
  resource: string;
  /** The verifier of this resource: `authorization_servers` defaults to its issuer, and its audience must include `resource`. */
  verifier?: Verifier;
  /** `authorization_servers`. @default [verifier.issuer] (then `verifier` is required) */
  authorizationServers?: readonly string[];
  /** `scopes_supported`. @default omitted */
  scopesSupported?: readonly string[];
  /** `resource_name`, human-readable. @default omitted */
  resourceName?: string;
}

/** RFC 9728 §2 metadata, as served. */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  scopes_supported?: string[];
  bearer_methods_supported: ['header'];
  resource_name?: string;
}

/** What `protectedResource` tells the `requireAuth` of the same request. */
export interface ProtectedResourceInfo {
  readonly resource: string;
  /** The path-suffixed metadata URL, the `resource_metadata` of `WWW-Authenticate`. */
  readonly metadataUrl: string;
}

/**
 * The per-request link from `protectedResource` to `requireAuth`. `Symbol.for`, so that it holds
 * even when two copies of the kit are loaded (the server's build and the standalone package).
 */
const RESOURCE = Symbol.for('rs256-idp.verifier.protected-resource');

/** The protected resource a request passed through, if any (read by `requireAuth`). */
export function protectedResourceOf(req: Request): ProtectedResourceInfo | undefined {
  return (req as unknown as Record<symbol, ProtectedResourceInfo | undefined>)[RESOURCE];
}

/**
 * RFC 9728 §3.1: the metadata URL of a resource identifier, `/.well-known/oauth-protected-resource`
 * inserted between its host and its path (`https://host/mcp` → `https://host/.well-known/oauth-protected-resource/mcp`;
 * a path of `/` alone is dropped).
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = resourceUrl(resource, 'protectedResourceMetadataUrl');
  return `${url.origin}${WELL_KNOWN}${suffix(url)}`;
}

/**
 * Express middleware (docs/verifier-kit.md "Protecting an MCP server", mounted on the app before its routes:
 * serves RFC 9728 Protected Resource Metadata at `/.well-known/oauth-protected-resource` and at the
 * path-suffixed form of `resource` (`/.well-known/oauth-protected-resource/mcp`), public and
 * cacheable, with CORS open to every origin (browser-based clients read it). Every request passing
 * through it is marked, so that `requireAuth` after it adds `resource_metadata` (and the route's
 * `scope`) to its `WWW-Authenticate` challenges. Misuse throws a TypeError at once.
 *
 * ```ts
 * const verifier = createVerifier({ issuer, audience: resource });
 * app.use(protectedResource({ resource, verifier, scopesSupported: ['mcp:tools'] }));
 * app.post('/mcp', requireAuth({ verifier, scopes: ['mcp:tools'] }), handler);
 * ```
 */
export function protectedResource(options: ProtectedResourceOptions): RequestHandler {
  if (options === null || typeof options !== 'object') throw new TypeError('protectedResource: options are required');
  const url = resourceUrl(options.resource, 'protectedResource');
  const { verifier, scopesSupported, resourceName } = options;
  if (verifier !== undefined && !verifier.audiences.includes(options.resource)) {
    throw new TypeError(`protectedResource: the verifier's audience must include the resource "${options.resource}" (createVerifier({ audience: resource }))`);
  }
  const authorizationServers = options.authorizationServers ?? (verifier === undefined ? undefined : [verifier.issuer]);
  if (authorizationServers === undefined) throw new TypeError('protectedResource: give verifier (its issuer is the authorization server) or authorizationServers');
  if (!Array.isArray(authorizationServers) || authorizationServers.length === 0 || !authorizationServers.every((s) => typeof s === 'string' && /^https?:\/\/[^/]/.test(s))) {
    throw new TypeError('protectedResource: authorizationServers must be a non-empty array of http(s) URLs');
  }
  if (scopesSupported !== undefined && (!Array.isArray(scopesSupported) || !scopesSupported.every((s) => typeof s === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)))) {
    throw new TypeError('protectedResource: scopesSupported must be an array of scope tokens (RFC 6749 §3.3)');
  }
  if (resourceName !== undefined && (typeof resourceName !== 'string' || resourceName.trim() === '')) throw new TypeError('protectedResource: resourceName must be a non-empty string');

  const metadata: ProtectedResourceMetadata = {
    resource: options.resource,
    authorization_servers: [...authorizationServers],
    ...(scopesSupported === undefined ? {} : { scopes_supported: [...scopesSupported] }),
    bearer_methods_supported: ['header'],
    ...(resourceName === undefined ? {} : { resource_name: resourceName }),
  };
  const body = JSON.stringify(metadata);
  const paths = new Set([`${WELL_KNOWN}${suffix(url)}`, WELL_KNOWN]);
  const info: ProtectedResourceInfo = Object.freeze({ resource: options.resource, metadataUrl: `${url.origin}${WELL_KNOWN}${suffix(url)}` });

  return (req: Request, res: Response, next: NextFunction): void => {
    (req as unknown as Record<symbol, ProtectedResourceInfo>)[RESOURCE] = info;
    if (!paths.has(req.path)) return next();
    if (req.method === 'GET' || req.method === 'HEAD') {
      res.set({ 'Cache-Control': `public, max-age=${MAX_AGE_SECONDS}`, 'Access-Control-Allow-Origin': '*' }).type('json').send(body);
    } else if (req.method === 'OPTIONS') {
      // A CORS preflight: MCP clients send `MCP-Protocol-Version` with the request.
      res
        .status(204)
        .set({ 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS', 'Access-Control-Allow-Headers': '*', 'Access-Control-Max-Age': '86400' })
        .end();
    } else {
      next();
    }
  };
}

function resourceUrl(resource: unknown, caller: string): URL {
  let url: URL | undefined;
  try {
    url = typeof resource === 'string' && !/[?#]/.test(resource) ? new URL(resource) : undefined;
  } catch {
    url = undefined;
  }
  // Written as the URL serialises it (lower-case host, no default port, ...): tokens' `aud` is compared exactly.
  const canonical = url === undefined ? [] : url.pathname === '/' ? [url.origin, `${url.origin}/`] : [url.href];
  if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:') || url.username !== '' || url.password !== '' || !canonical.includes(resource as string)) {
    throw new TypeError(`${caller}: resource must be an absolute http(s) URL without query, fragment or credentials, written as the URL serialises it (e.g. "https://mcp.example.com/mcp")`);
  }
  return url;
}

/** The resource's path as the metadata URL's suffix: none for `/`. */
function suffix(url: URL): string {
  return url.pathname === '/' ? '' : url.pathname;
}
