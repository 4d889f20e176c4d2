import type { OpenApiFragment } from '../http/openapi-kit';
import { clientCredentialsTokenRequest, clientCredentialsTokenResponse } from './schemas';

/** The client-credentials grant at the token endpoint, in the OpenAPI document (src/http/openapi.ts). */
export const clientCredentialsOpenApi: OpenApiFragment = {
  tokenGrants: [{ request: clientCredentialsTokenRequest, response: clientCredentialsTokenResponse, description: '`client_credentials` (client authentication required)' }],
};
