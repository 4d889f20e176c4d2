import { withinTenant } from './tenant-boundary';
import type { ActiveIntrospection, FormParams, Grant, TokenKind, TokenKindRequest } from './types';

/**
 * The OAuth endpoints' registry, built once by the composition root from the capabilities it
 * mounts (the model of node-oidc-provider's `registerGrantType` on the provider instance, never on a
 * module): which grant types POST /oauth/token accepts, and which token kinds /oauth/introspect and
 * /oauth/revoke ask, in the order given. A test builds exactly the set it wants.
 */
export interface OAuthRegistry {
  findGrant(grantType: string): Grant | undefined;
  /** `grant_types_supported`, in registration order. */
  grantTypes(): readonly string[];
  /** RFC 7662 for the authenticated client. */
  introspect(token: string, request: TokenKindRequest): Promise<ActiveIntrospection | { active: false }>;
  /** RFC 7009 for the authenticated client: the first kind that recognises the token handles it. */
  revoke(token: string, request: TokenKindRequest): Promise<void>;
  /** The token kinds' names in the order they are asked (precedence is explicit and tested). */
  readonly tokenKindOrder: readonly string[];
}

export function createOAuthRegistry(parts: { grants: readonly Grant[]; tokenKinds: readonly TokenKind[] }): OAuthRegistry {
  const grants = new Map<string, Grant>();
  for (const grant of parts.grants) {
    if (grants.has(grant.grantType)) throw new Error(`grant type ${grant.grantType} is given twice`);
    grants.set(grant.grantType, grant);
  }
  const kinds = [...parts.tokenKinds];
  const names = kinds.map((kind) => kind.name);
  if (new Set(names).size !== names.length) throw new Error(`a token kind is given twice: ${names.join(', ')}`);
  const grantTypes = Object.freeze([...grants.keys()]);

  return {
    findGrant: (grantType) => grants.get(grantType),
    grantTypes: () => grantTypes,
    tokenKindOrder: Object.freeze(names),
    /**
     * Whatever a kind answers, an active result whose `tenant_id` is not the asking client's tenant is
     * turned into `{"active": false}` here as well, so a kind that forgets the boundary still cannot
     * show a tenant-bound client another tenant's token.
     */
    async introspect(token, request) {
      for (const kind of kinds) {
        const result = await kind.introspect(token, request);
        if (result === null) return { active: false };
        if (result !== undefined) return withinTenant(request.client, tenantOf(result)) ? result : { active: false };
      }
      return { active: false };
    },
    async revoke(token, request) {
      for (const kind of kinds) if (await kind.revoke(token, request)) return;
    },
  };
}

function tenantOf(result: ActiveIntrospection): string | undefined {
  return typeof result.tenant_id === 'string' ? result.tenant_id : undefined;
}

/**
 * One grant type served by several grants, `choose` picking the grant of each request from its form
 * (docs/delegation.md "Delegation": `token-exchange` takes an API key without client authentication, or a user's
 * access token from an authenticated client). The endpoint asks `select` before it authenticates
 * anyone, so each grant keeps its own authentication rule and refusals. The registry still holds one
 * grant per type.
 */
export function grantPerRequest(grants: readonly Grant[], choose: (params: FormParams) => Grant): Grant {
  const [first] = grants;
  if (!first || grants.some((grant) => grant.grantType !== first.grantType)) throw new Error('grantPerRequest: give one or more grants of one grant type');
  const select = (params: FormParams) => {
    const grant = choose(params);
    if (!grants.includes(grant)) throw new Error('grantPerRequest: choose returned a grant it was not given');
    return grant;
  };
  return {
    grantType: first.grantType,
    parameters: [...new Set(grants.flatMap((grant) => grant.parameters))],
    // Never read: the endpoint takes the selected grant's. The strictest, should anything call it unselected.
    clientAuthentication: 'required',
    select,
    handler: (request) => select(request.params).handler(request),
  };
}
