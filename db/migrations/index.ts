import type { Migration } from 'kysely';
import * as signingKeys from './2026-11-22T1900-signing-keys';
import * as usersSessionsAdmin from './2026-11-22T2100-users-sessions-admin';
import * as oauthClients from './2026-11-22T2200-oauth-clients';
import * as usersTenantFk from './2026-11-22T2300-users-tenant-fk';
import * as apiKeys from './2026-11-23T1200-api-keys';
import * as refreshTokenSuccessor from './2026-11-26T1200-refresh-token-successor';
import * as privateKeyJwt from './2026-11-28T0900-private-key-jwt';
import * as indexesAtScale from './2026-11-28T1200-indexes-at-scale';
import * as rateLimitPending from './2026-12-01T1200-rate-limit-pending';
import * as authorizationCodeClients from './2026-12-06T1000-authorization-code-clients';
import * as authorizationCode from './2026-12-06T1100-authorization-code';
import * as dynamicRegistration from './2026-12-10T1000-dynamic-registration';
import * as documentClientsUnused from './2026-12-11T1000-document-clients-unused';
import * as clientsCreatedAtId from './2026-12-12T1000-clients-created-at-id';
import * as clientUseNotify from './2026-12-12T1100-client-use-notify';
import * as clientUses from './2026-12-13T1000-client-uses';

/** Every migration, by dated name; the migrator applies them in name order. */
export const migrations: Record<string, Migration> = {
  '2026-11-22T1900-signing-keys': signingKeys,
  '2026-11-22T2100-users-sessions-admin': usersSessionsAdmin,
  '2026-11-22T2200-oauth-clients': oauthClients,
  '2026-11-22T2300-users-tenant-fk': usersTenantFk,
  '2026-11-23T1200-api-keys': apiKeys,
  '2026-11-26T1200-refresh-token-successor': refreshTokenSuccessor,
  '2026-11-28T0900-private-key-jwt': privateKeyJwt,
  '2026-11-28T1200-indexes-at-scale': indexesAtScale,
  '2026-12-01T1200-rate-limit-pending': rateLimitPending,
  '2026-12-06T1000-authorization-code-clients': authorizationCodeClients,
  '2026-12-06T1100-authorization-code': authorizationCode,
  '2026-12-10T1000-dynamic-registration': dynamicRegistration,
  '2026-12-11T1000-document-clients-unused': documentClientsUnused,
  '2026-12-12T1000-clients-created-at-id': clientsCreatedAtId,
  '2026-12-12T1100-client-use-notify': clientUseNotify,
  '2026-12-13T1000-client-uses': clientUses,
};
