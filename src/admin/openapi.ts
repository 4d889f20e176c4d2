import { admin, jsonBody, ok, type OpenApiFragment } from '../http/openapi-kit';
import { publicUserBody } from '../users/schemas';
import {
  auditPageBody,
  auditQuery,
  clearedLimitBody,
  clientPageBody,
  clientViewBody,
  createClientBody,
  createdClientBody,
  createTenantBody,
  keyListBody,
  limitKeyParameter,
  limitsBody,
  listClientsQuery,
  listUsersQuery,
  patchClientBody,
  patchUserBody,
  pathParameter,
  revokeKeyBody,
  revokeKeyResponse,
  rotatedSecretBody,
  rotateKeysBody,
  rotateKeysResponse,
  rotateSecretBody,
  tenantBody,
  tenantListBody,
  userPageBody,
} from './schemas';

const keysTags = ['Admin: signing keys'];
const clientTags = ['Admin: clients'];

/** /admin/v1 (signing keys, clients, users, tenants, audit, limits) in the OpenAPI document (src/http/openapi.ts). */
export const adminOpenApi: OpenApiFragment = {
  tags: ['Admin', 'Admin: signing keys', 'Admin: clients', 'Admin: users', 'Admin: tenants', 'Admin: audit', 'Admin: limits'],
  paths: {
    '/admin/v1/keys': {
      get: admin('keys:read', { tags: keysTags, operationId: 'listSigningKeys', summary: 'Every signing key', success: { 200: ok('The keys.', keyListBody) } }),
    },
    '/admin/v1/keys/rotate': {
      post: admin('keys:rotate', {
        tags: keysTags,
        operationId: 'rotateSigningKeys',
        summary: 'Promotes next to current',
        description: 'Refused (409, with safe_at) while next has been published for less than IDP_KEY_PREPUBLISH, unless force.',
        requestBody: jsonBody(rotateKeysBody, false),
        success: { 200: ok('What changed.', rotateKeysResponse) },
        errors: [409],
      }),
    },
    '/admin/v1/keys/{kid}/revoke': {
      post: admin('keys:revoke', {
        tags: keysTags,
        operationId: 'revokeSigningKey',
        summary: 'Emergency: removes a key from the JWKS and destroys it',
        requestParams: { path: pathParameter('kid') },
        requestBody: jsonBody(revokeKeyBody, false),
        success: { 200: ok('What changed.', revokeKeyResponse) },
        errors: [404, 409],
      }),
    },
    '/admin/v1/clients': {
      get: admin('clients:read', {
        tags: clientTags,
        operationId: 'listClients',
        summary: 'OAuth clients, newest first, in pages',
        requestParams: { query: listClientsQuery },
        success: { 200: ok('A page of clients.', clientPageBody) },
      }),
      post: admin('clients:write', {
        tags: clientTags,
        operationId: 'createClient',
        summary: 'Registers a client: with a secret (shown once), private_key_jwt with jwks or jwks_uri, or a public client (none) with redirect_uris',
        requestBody: jsonBody(createClientBody),
        success: { 201: ok('The client.', createdClientBody) },
      }),
    },
    '/admin/v1/clients/{clientId}': {
      get: admin('clients:read', {
        tags: clientTags,
        operationId: 'getClient',
        summary: 'One client',
        requestParams: { path: pathParameter('clientId') },
        success: { 200: ok('The client.', clientViewBody) },
        errors: [404],
      }),
      patch: admin('clients:write', {
        tags: clientTags,
        operationId: 'updateClient',
        summary: 'Changes a client; jwks or jwks_uri replace its keys',
        requestParams: { path: pathParameter('clientId') },
        requestBody: jsonBody(patchClientBody),
        success: { 200: ok('The client.', clientViewBody) },
        errors: [404],
      }),
      delete: admin('clients:write', {
        tags: clientTags,
        operationId: 'deleteClient',
        summary: 'Deletes a client',
        requestParams: { path: pathParameter('clientId') },
        success: { 204: ok('Deleted.') },
        errors: [404, 413, 415],
      }),
    },
    '/admin/v1/clients/{clientId}/secret': {
      post: admin('clients:write', {
        tags: clientTags,
        operationId: 'rotateClientSecret',
        summary: 'A new secret; the previous one keeps working for the grace period',
        requestParams: { path: pathParameter('clientId') },
        requestBody: jsonBody(rotateSecretBody, false),
        success: { 200: ok('The new secret, shown once.', rotatedSecretBody) },
        errors: [404],
      }),
    },
    '/admin/v1/users': {
      get: admin('users:read', {
        tags: ['Admin: users'],
        operationId: 'listUsers',
        summary: 'Users, in pages',
        requestParams: { query: listUsersQuery },
        success: { 200: ok('A page of users.', userPageBody) },
      }),
    },
    '/admin/v1/users/{userId}': {
      patch: admin('users:write', {
        tags: ['Admin: users'],
        operationId: 'updateUser',
        summary: "Changes a user's role, tenant or disabled state (disabling revokes every session)",
        requestParams: { path: pathParameter('userId') },
        requestBody: jsonBody(patchUserBody),
        success: { 200: ok('The user.', publicUserBody) },
        errors: [404],
      }),
    },
    '/admin/v1/tenants': {
      get: admin('tenants:read', { tags: ['Admin: tenants'], operationId: 'listTenants', summary: 'Every tenant', success: { 200: ok('The tenants.', tenantListBody) } }),
      post: admin('tenants:write', {
        tags: ['Admin: tenants'],
        operationId: 'createTenant',
        summary: 'Creates a tenant',
        requestBody: jsonBody(createTenantBody),
        success: { 201: ok('The tenant.', tenantBody) },
        errors: [409],
      }),
    },
    '/admin/v1/tenants/{tenantId}': {
      get: admin('tenants:read', {
        tags: ['Admin: tenants'],
        operationId: 'getTenant',
        summary: 'One tenant',
        requestParams: { path: pathParameter('tenantId') },
        success: { 200: ok('The tenant.', tenantBody) },
        errors: [404],
      }),
      delete: admin('tenants:write', {
        tags: ['Admin: tenants'],
        operationId: 'disableTenant',
        summary: 'Disables a tenant (never deleted): its users and clients get no more tokens',
        requestParams: { path: pathParameter('tenantId') },
        success: { 200: ok('The tenant, disabled.', tenantBody) },
        errors: [404, 413, 415],
      }),
    },
    '/admin/v1/audit': {
      get: admin('audit:read', {
        tags: ['Admin: audit'],
        operationId: 'listAuditEvents',
        summary: 'Audit events, newest first',
        requestParams: { query: auditQuery },
        success: { 200: ok('A page of events.', auditPageBody) },
      }),
    },
    '/admin/v1/limits': {
      get: admin('limits:read', { tags: ['Admin: limits'], operationId: 'listLimitBlocks', summary: 'The abuse-limit blocks in force', success: { 200: ok('The blocks.', limitsBody) } }),
    },
    '/admin/v1/limits/{key}': {
      delete: admin('limits:write', {
        tags: ['Admin: limits'],
        operationId: 'clearLimitBlock',
        summary: 'Lifts a block on every instance and forgets its count',
        requestParams: { path: limitKeyParameter },
        success: { 200: ok('Cleared.', clearedLimitBody) },
        errors: [404, 413, 415],
      }),
    },
  },
};
