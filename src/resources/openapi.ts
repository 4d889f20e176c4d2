import { admin, jsonBody, ok, type OpenApiFragment } from '../http/openapi-kit';
import { createResourceBody, resourceBody, resourceListBody, resourceUrlParam } from './schemas';

const tags = ['Admin: resources'];

/** /admin/v1/resources (docs/oauth.md "Resources" in the OpenAPI document (src/http/openapi.ts). */
export const resourcesOpenApi: OpenApiFragment = {
  tags,
  paths: {
    '/admin/v1/resources': {
      get: admin('resources:read', { tags, operationId: 'listResources', summary: 'Every registered resource, in URL order', success: { 200: ok('The resources.', resourceListBody) } }),
      post: admin('resources:write', {
        tags,
        operationId: 'createResource',
        summary: 'Registers a resource (an API users may grant applications access to)',
        requestBody: jsonBody(createResourceBody),
        success: { 201: ok('The resource.', resourceBody) },
        errors: [409],
      }),
    },
    '/admin/v1/resources/{url}': {
      get: admin('resources:read', {
        tags,
        operationId: 'getResource',
        summary: 'One resource, by its URL percent-encoded as one path segment',
        requestParams: { path: resourceUrlParam },
        success: { 200: ok('The resource.', resourceBody) },
        errors: [404],
      }),
      delete: admin('resources:write', {
        tags,
        operationId: 'deleteResource',
        summary: 'Deletes a resource; tokens already issued for it keep their aud until they expire',
        requestParams: { path: resourceUrlParam },
        success: { 200: ok('The deleted resource.', resourceBody) },
        errors: [404, 413, 415],
      }),
    },
  },
};
