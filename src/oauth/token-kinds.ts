import type { Client } from '../clients/repository';
import { clientAccessTokens } from './access-tokens';
import type { Services } from '../services';

/** RFC 7662 §2.2 body of an active token; an inactive one is exactly `{"active": false}`. */
export interface ActiveIntrospection {
  active: true;
  [member: string]: unknown;
}

export interface TokenKindContext {
  services: Services;
  /** The authenticated client making the introspection or revocation request. */
  client: Client;
}

/**
 * One kind of token this server can introspect and revoke (client access tokens here; user access
 * tokens and refresh tokens are added the same way). Kinds are asked in registration order; the
 * first that recognises the token answers.
 */
export interface TokenKind {
  name: string;
  /** `undefined`: not a token of this kind. `null`: this kind, but inactive. Never throws for bad input. */
  introspect(token: string, context: TokenKindContext): Promise<ActiveIntrospection | null | undefined>;
  /**
   * `false`: not a token of this kind. `true`: handled (revoked, or invalid and so nothing to do, RFC 7009 §2.2).
   * Throws an OAuthError (`unauthorized_client`) when the token belongs to another client.
   */
  revoke(token: string, context: TokenKindContext): Promise<boolean>;
}

const kinds: TokenKind[] = [];

/** The registration point for introspection and revocation. */
export function registerTokenKind(kind: TokenKind): void {
  if (kinds.some((k) => k.name === kind.name)) throw new Error(`token kind ${kind.name} is already registered`);
  kinds.push(kind);
}

export function tokenKinds(): readonly TokenKind[] {
  return kinds;
}

export async function introspect(token: string, context: TokenKindContext): Promise<ActiveIntrospection | { active: false }> {
  for (const kind of kinds) {
    const result = await kind.introspect(token, context);
    if (result === null) return { active: false };
    if (result !== undefined) return result;
  }
  return { active: false };
}

export async function revoke(token: string, context: TokenKindContext): Promise<void> {
  for (const kind of kinds) if (await kind.revoke(token, context)) return;
}

registerTokenKind(clientAccessTokens);
