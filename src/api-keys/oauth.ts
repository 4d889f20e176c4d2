import { registerGrant, registerTokenKind } from '../oauth';
import { tokenExchangeGrant } from './exchange';
import { apiKeyTokens, exchangedAccessTokens } from './introspection';

/**
 * API keys at the OAuth endpoints (README: "API keys"): the token-exchange grant at /oauth/token (listed in
 * `grant_types_supported` by the registration), and API keys and exchanged access tokens at
 * /oauth/introspect and /oauth/revoke. Imported once for its side effect by the composition root.
 */
registerGrant(tokenExchangeGrant);
registerTokenKind(apiKeyTokens);
registerTokenKind(exchangedAccessTokens);
