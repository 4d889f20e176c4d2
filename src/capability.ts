import type { RequestHandler } from 'express';
import type { Grant, TokenKind } from './oauth/types';

/**
 * What one capability adds to the service (docs/layout.md "Layout": a plain object returned by the
 * capability's factory, which declares the narrow dependencies it needs. The composition root
 * (src/compose.ts) builds each one and assembles the OAuth registry, the routes and the sweeps from
 * them; no module registers anything on import. A leaf module: only types.
 */
export interface Capability {
  name: string;
  /** Grant types of POST /oauth/token. */
  grants?: readonly Grant[];
  /** Token kinds of /oauth/introspect and /oauth/revoke; the root orders capabilities, so precedence is explicit. */
  tokenKinds?: readonly TokenKind[];
  /** Express routers and the path each is mounted at, in order. */
  routes?: readonly MountedRoutes[];
  /** Members it adds to the RFC 8414 / OpenID Provider metadata. */
  discovery?(): Record<string, unknown>;
  /** Deletions of what has expired, run periodically by the root on every instance (each idempotent). */
  sweeps?: ReadonlyArray<{ name: string; run(): Promise<void> }>;
  /** Stops timers and caches; awaited at shutdown and after a failed start-up. */
  stop?(): void | Promise<void>;
}

export interface MountedRoutes {
  path: string;
  handler: RequestHandler;
}
