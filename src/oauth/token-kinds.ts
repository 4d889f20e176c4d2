import type { Client } from '../clients/repository';
import { clientAccessTokens } from './access-tokens';
import { withinTenant } from './tenant-boundary';
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
 * first that recognises the token answers. A kind's active answer must say the token's tenant in
 * `tenant_id` (absent: no tenant) and should check it with `withinTenant` (./tenant-boundary) itself.
 */
export interface TokenKind {
  name: string;
  /** `undefined`: not a token of this kind. `null`: this kind, but inactive. Never throws for bad input. */
  introspect(token: string, context: TokenKindContext): Promise<ActiveIntrospection | null | undefined>;
  /**
   * `false`: not a token of this kind. `true`: handled (revoked, or invalid and so nothing to do, RFC 7009 §2.2).
   * Throws an OAuthError (`unauthorized_client`) when the token is valid but was not issued to the
   * requesting client (another client's token, a user's token), and then changes nothing.
   */
  revoke(token: string, context: TokenKindContext): Promise<boolean>;
}

const kinds: TokenKind[] = [];

/** The registration point for introspection and revocation. */
export function registerTokenKind(kind: TokenKind): void {
  if (kinds.some((k) => k.name === kind.name)) throw new Error(`token kind ${kind.name} is already registered`);
  kinds.push(kind);
}

/**
 * RFC 7662 for the authenticated client. Whatever a kind answers, an active result whose `tenant_id`
 * is not the asking client's tenant is turned into `{"active": false}` here as well, so a kind that
 * forgets the boundary still cannot show a tenant-bound client another tenant's token.
 */
export async function introspect(token: string, context: TokenKindContext): Promise<ActiveIntrospection | { active: false }> {
  for (const kind of kinds) {
    const result = await kind.introspect(token, context);
    if (result === null) return { active: false };
    if (result !== undefined) return withinTenant(context.client, tenantOf(result)) ? result : { active: false };
  }
  return { active: false };
}

function tenantOf(result: ActiveIntrospection): string | undefined {
  return typeof result.tenant_id === 'string' ? result.tenant_id : undefined;
}

export async function revoke(token: string, context: TokenKindContext): Promise<void> {
  for (const kind of kinds) if (await kind.revoke(token, context)) return;
}

registerTokenKind(clientAccessTokens);
