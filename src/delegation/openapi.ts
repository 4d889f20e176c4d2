import type { OpenApiFragment } from '../http/openapi-kit';
import { tokenExchangeResponse } from '../api-keys/schemas';
import { delegationRequest } from './schemas';

/**
 * The token-exchange grant type at POST /oauth/token, in the OpenAPI document: one form for its two
 * grants (docs/api-keys.md "API keys" and "Delegation"), since a grant type is one member of the request union.
 */
export const delegationOpenApi: OpenApiFragment = {
  tokenGrants: [
    {
      request: delegationRequest,
      response: tokenExchangeResponse,
      description:
        '`urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693: an API key for a JWT, no client authentication; or a user\'s access token delegated to the ' +
        'authenticated client or the actor_token\'s client, act naming the actors)',
    },
  ],
};
