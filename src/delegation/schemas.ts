import { z } from 'zod';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../api-keys/schemas';
import { targetFields } from '../http/fields';
import { clientAuthenticationFields } from '../oauth/schemas';

/**
 * RFC 8693 token exchange of a user's access token for a delegated one (docs/delegation.md "Delegation": how
 * the grant reads its form, and what the OpenAPI document says of it.
 */

const accessTokenType = (name: string) =>
  z.literal(ACCESS_TOKEN_TYPE, { error: (issue) => (issue.input === undefined ? `missing ${name}` : `${name} must be ${ACCESS_TOKEN_TYPE}`) });

export const delegationRequest = z
  .object({
    grant_type: z.literal(TOKEN_EXCHANGE_GRANT),
    subject_token: z.string({ error: 'missing subject_token' }).meta({
      description: "An API key (idpk_…, no client authentication), or a user's access token (a JWT) to delegate: one issued to the authenticated client, or a delegated token whose current actor it is.",
    }),
    subject_token_type: accessTokenType('subject_token_type'),
    actor_token: z.string().optional().meta({ description: 'Delegation only: an access token another client got for itself (client_credentials); that client becomes the new actor.' }),
    actor_token_type: accessTokenType('actor_token_type').optional().meta({ description: `Required with actor_token: ${ACCESS_TOKEN_TYPE}.` }),
    requested_token_type: z.literal(ACCESS_TOKEN_TYPE, { error: `requested_token_type: only ${ACCESS_TOKEN_TYPE} is issued` }).optional(),
    ...targetFields,
    ...clientAuthenticationFields,
  })
  .meta({
    id: 'TokenExchangeRequest',
    description:
      "RFC 8693. An API key as subject_token: a short-lived JWT of its owner; client credentials and actor_token are refused. A user's access token as subject_token: " +
      'a delegated token for the authenticated client (or the actor_token\'s client), whose grant_types must include the token exchange; act names the actors, outermost first.',
  });
