import type { JWTPayload } from 'jose';
import type { ClientAccessTokenClaims } from '../oauth/client-credentials';
import { peekClaims } from '../tokens/claims';

/**
 * The shape of a delegated access token (docs/delegation.md "Delegation": a user's access token that a client
 * (the actor) got by token exchange, RFC 8693 §4.1 `act` naming who acts, outermost first.
 */

/** RFC 8693 §4.1: the current actor, and inside it the one before it. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

/** A client access token's claims (docs/tokens.md), whose `sub` is the user and `client_id` the current actor (`act.sub`). */
export interface DelegatedAccessClaims extends ClientAccessTokenClaims {
  /** The user's session, the subject's: ending it ends this token. */
  sid: string;
  act: ActClaim;
  /**
   * The `jti`s of the tokens this one was exchanged from, nearest first (the subject token's, then
   * its own `delegated_from`): revoking any of them makes this token inactive. Each ancestor's
   * deny-list row lives until the ancestor's `exp`, never earlier than this token's.
   */
  delegated_from: string[];
}

/** Far beyond any IDP_MAX_DELEGATION_DEPTH: bounds the walk over a claim read before verification. */
const MAX_WALK = 32;

/** The actors of an `act` claim, outermost (current) first; undefined when it is not a well-formed chain. */
export function actorChain(act: unknown): string[] | undefined {
  const chain: string[] = [];
  let level: unknown = act;
  while (level !== undefined) {
    if (typeof level !== 'object' || level === null || Array.isArray(level) || chain.length >= MAX_WALK) return undefined;
    const { sub, act: inner } = level as { sub?: unknown; act?: unknown };
    if (typeof sub !== 'string' || sub === '') return undefined;
    chain.push(sub);
    level = inner;
  }
  return chain.length > 0 ? chain : undefined;
}

/** The `act` claim of `chain` (outermost first), nested as RFC 8693 §4.1 shows. */
export function actClaim(chain: readonly string[]): ActClaim {
  const [outermost, ...rest] = chain;
  if (outermost === undefined) throw new Error('an act claim needs an actor');
  return rest.length === 0 ? { sub: outermost } : { sub: outermost, act: actClaim(rest) };
}

/** A delegated token's claims, read before verification (to tell its kind); undefined for any other token. */
export function peekDelegated(token: string): JWTPayload | undefined {
  const payload = peekClaims(token, 'at+jwt');
  return payload && payload.act !== undefined && payload.token_type === undefined && payload.api_key_id === undefined ? payload : undefined;
}

/** The claims of a verified token when they are those of a delegated token; undefined otherwise. */
export function asDelegated(payload: JWTPayload): { claims: DelegatedAccessClaims; actors: string[] } | undefined {
  const actors = actorChain(payload.act);
  const from = payload.delegated_from;
  if (
    actors === undefined ||
    payload.client_id !== actors[0] ||
    typeof payload.sub !== 'string' ||
    typeof payload.sid !== 'string' ||
    typeof payload.scope !== 'string' ||
    typeof payload.jti !== 'string' ||
    typeof payload.exp !== 'number' ||
    !Array.isArray(from) ||
    from.length === 0 ||
    !from.every((jti) => typeof jti === 'string') ||
    (payload.tenant_id !== undefined && typeof payload.tenant_id !== 'string')
  ) {
    return undefined;
  }
  return { claims: payload as unknown as DelegatedAccessClaims, actors };
}

/** RFC 7519 JWS compact serialisation's shape: how the token-exchange grant tells an access token from an API key. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function looksLikeJwt(text: string | undefined): boolean {
  return text !== undefined && text.length <= 16_384 && COMPACT_JWS.test(text);
}
