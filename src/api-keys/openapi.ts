import type { ZodOpenApiPathsObject } from 'zod-openapi';
import { admin, apiErrors, jsonBody, ok, type OpenApiFragment } from '../http/openapi-kit';
import {
  adminCreateApiKeyBody,
  adminListApiKeysQuery,
  apiKeyIdParam,
  apiKeyPageBody,
  apiKeyViewBody,
  createdApiKeyBody,
  revokeApiKeyBody,
  userCreateApiKeyBody,
  userListApiKeysQuery,
} from './schemas';

function apiKeyRoutes(prefix: '/auth/v1/api-keys' | '/admin/v1/api-keys'): ZodOpenApiPathsObject {
  if (prefix === '/auth/v1/api-keys') {
    const user = { tags: ['API keys'], security: [{ userAccessToken: [] }] };
    return {
      [prefix]: {
        get: {
          ...user,
          operationId: 'listOwnApiKeys',
          summary: "The caller's API keys, newest first",
          requestParams: { query: userListApiKeysQuery },
          responses: { 200: ok('A page of keys.', apiKeyPageBody), ...apiErrors(401) },
        },
        post: {
          ...user,
          operationId: 'createOwnApiKey',
          summary: 'A new API key for the caller; the key is in this response only',
          requestBody: jsonBody(userCreateApiKeyBody),
          responses: { 201: ok('The key, shown once.', createdApiKeyBody), ...apiErrors(401, 409, 413, 415) },
        },
      },
      [`${prefix}/{id}`]: {
        delete: {
          ...user,
          operationId: 'revokeOwnApiKey',
          summary: "Revokes one of the caller's keys",
          requestParams: { path: apiKeyIdParam },
          responses: { 200: ok('The revoked key.', apiKeyViewBody), ...apiErrors(401, 404) },
        },
      },
    };
  }
  const tags = ['Admin: API keys'];
  return {
    [prefix]: {
      get: admin('api-keys:read', {
        tags,
        operationId: 'listApiKeys',
        summary: 'API keys, newest first',
        requestParams: { query: adminListApiKeysQuery },
        success: { 200: ok('A page of keys.', apiKeyPageBody) },
      }),
      post: admin('api-keys:write', {
        tags,
        operationId: 'createApiKey',
        summary: 'A new API key for a user or a client; the key is in this response only',
        requestBody: jsonBody(adminCreateApiKeyBody),
        success: { 201: ok('The key, shown once.', createdApiKeyBody) },
        errors: [404, 409],
      }),
    },
    [`${prefix}/{id}`]: {
      get: admin('api-keys:read', {
        tags,
        operationId: 'getApiKey',
        summary: 'One API key',
        requestParams: { path: apiKeyIdParam },
        success: { 200: ok('The key (never the key itself).', apiKeyViewBody) },
        errors: [404],
      }),
      delete: admin('api-keys:write', {
        tags,
        operationId: 'deleteApiKey',
        summary: 'Revokes an API key',
        requestParams: { path: apiKeyIdParam },
        success: { 200: ok('The revoked key.', apiKeyViewBody) },
        errors: [404, 413, 415],
      }),
    },
    [`${prefix}/{id}/revoke`]: {
      post: admin('api-keys:write', {
        tags,
        operationId: 'revokeApiKey',
        summary: 'Revokes an API key, with a reason',
        requestParams: { path: apiKeyIdParam },
        requestBody: jsonBody(revokeApiKeyBody, false),
        success: { 200: ok('The revoked key.', apiKeyViewBody) },
        errors: [404],
      }),
    },
  };
}

/**
 * API keys (/auth/v1/api-keys, /admin/v1/api-keys) in the OpenAPI document (src/http/openapi.ts).
 * Their exchange at the token endpoint shares its grant type with delegation: src/delegation/openapi.ts documents both.
 */
export const apiKeysOpenApi: OpenApiFragment = {
  tags: ['API keys', 'Admin: API keys'],
  paths: { ...apiKeyRoutes('/auth/v1/api-keys'), ...apiKeyRoutes('/admin/v1/api-keys') },
};
