/** Every permission of admin tokens (docs/http-api.md "HTTP"; each route is guarded by exactly one of them. */
export const PERMISSIONS = [
  'keys:read',
  'keys:rotate',
  'keys:revoke',
  'clients:read',
  'clients:write',
  /** Not an /admin/v1 route: the initial access token of POST /oauth/register with IDP_DYNAMIC_REGISTRATION=token. */
  'clients:register',
  'users:read',
  'users:write',
  'tenants:read',
  'tenants:write',
  'audit:read',
  'api-keys:read',
  'api-keys:write',
  'limits:read',
  'limits:write',
  'resources:read',
  'resources:write',
] as const;

export type Permission = (typeof PERMISSIONS)[number];

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}
