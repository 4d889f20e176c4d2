import type { Capability } from '../capability';
import type { FormParams, Grant } from '../oauth/types';
import { looksLikeJwt } from './claims';
import { delegationGrant, type DelegationExchangeDeps } from './exchange';
import { delegatedAccessTokens } from './tokens';

/** What delegation adds: its token kind, and its half of the token-exchange grant type. */
export interface DelegationCapability extends Capability {
  /**
   * `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` with a user's access token as
   * `subject_token`. The grant type is the API keys' too: the composition root serves both as one
   * grant (`grantPerRequest`), choosing this one when `delegates` says so.
   */
  exchange: Grant;
}

/** Whether a token-exchange request is a delegation: its subject token is a JWT (an API key never is). */
export function delegates(params: FormParams): boolean {
  return looksLikeJwt(params.get('subject_token'));
}

/**
 * Delegation: agents acting for users (docs/delegation.md "Delegation", RFC 8693 with `act`). A client holding a
 * user's access token exchanges it for a narrower one, for itself or a sub-agent; the token names
 * every actor, outermost first, and ends with the user's session or any token it came from.
 */
export function delegationCapability(deps: DelegationExchangeDeps): DelegationCapability {
  return {
    name: 'delegation',
    exchange: delegationGrant(deps),
    tokenKinds: [delegatedAccessTokens(deps)],
  };
}
