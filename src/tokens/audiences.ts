/**
 * The audiences of the identity provider's own tokens. Clients may never be given them (docs/http-api.md
 * "Reserved audiences"), so they live here, below both the admin API and the clients service.
 */
export function adminAudience(issuer: string): string {
  return `${issuer}/admin`;
}
