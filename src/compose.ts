import express from 'express';
import type http from 'node:http';
import { adminRoutes } from './admin/routes';
import { AdminTokens } from './admin/tokens';
import { apiKeyTokens, exchangedAccessTokens } from './api-keys/introspection';
import { tokenExchangeGrant } from './api-keys/exchange';
import { startApiKeys, type ApiKeys } from './api-keys/service';
import { apiKeyUserRoutes } from './api-keys/user-routes';
import { authorizationCapability } from './authorization';
import { authorizationOpenApi } from './authorization/openapi';
import type { Capability } from './capability';
import { redirectUriMatches } from './clients/redirect-uris';
import { delegates, delegationCapability } from './delegation';
import { delegationOpenApi } from './delegation/openapi';
import { clientPolicy } from './clients/service';
import type { Config } from './config';
import { loadMekRing, type MekProvider } from './crypto/mek';
import { openDatabaseWithRetry, type DatabaseHandle } from './db';
import type { AppRuntime } from './http/app';
import { CursorCodec } from './http/cursor';
import { buildOpenApiDocument, openApiSnapshot, type OpenApiFragment } from './http/openapi';
import { adminOpenApi } from './admin/openapi';
import { apiKeysOpenApi } from './api-keys/openapi';
import { clientCredentialsOpenApi } from './oauth/openapi';
import { usersOpenApi } from './users/openapi';
import { resourcesOpenApi } from './resources/openapi';
import type { oas31 } from 'zod-openapi';
import { createHttpServer } from './http/server';
import { KeyCache } from './keys/cache';
import type { KeyLifecycle } from './keys/lifecycle';
import { openKeyLifecycle } from './keys/start';
import type { Logger } from './observability/logger';
import type { Metrics } from './observability/metrics';
import { clientAccessTokens } from './oauth/access-tokens';
import { clientCredentialsGrant } from './oauth/client-credentials';
import { oauthMetadata, scopesSupported, startOAuth, type OAuthServices } from './oauth';
import { createOAuthRegistry, grantPerRequest, type OAuthRegistry } from './oauth/registry';
import { FailureLimiter } from './ratelimit';
import { AbuseLimits } from './ratelimit/policies';
import { resourcesCapability } from './resources';
import { registrationCapability } from './registration';
import { registrationOpenApi } from './registration/openapi';
import { tenantIsActive } from './tenants/repository';
import { createSigner, type Signer } from './tokens/sign';
import { TokenVerifier } from './tokens/verify';
import { USER_SCOPE } from './users/access-token';
import { refreshTokenGrant, userAccessTokens, userRefreshTokens } from './users/oauth';
import { findSessionWithUser } from './users/repository';
import { PasswordHashing } from './users/passwords';
import { userRoutes } from './users/routes';
import { UserAccounts } from './users/service';

/** How often each instance runs the capabilities' sweeps (each idempotent; instances may overlap). */
const SWEEP_INTERVAL_MS = 5 * 60_000;

/**
 * The composition root (docs/layout.md "Layout": the one place that knows every capability. It opens the
 * database, builds each capability from the narrow dependencies it declares, and assembles what they
 * add: the OAuth registry (grants, and token kinds in an explicit order), the routes, the sweeps.
 * Nothing under src/ imports it but the entry points (src/main.ts, and the CLI's in-process host);
 * `npm run lint` enforces that, and that the import graph has no cycle.
 */

export interface ComposeOptions {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** An already open database (tests); otherwise one is opened from the configuration, and closed with the composition. */
  handle?: DatabaseHandle;
  mek?: MekProvider;
  now?: () => Date;
}

/** Everything one process built: the entry points, the scheduler, the CLI host and tests work with it. */
export interface Composition {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  handle: DatabaseHandle;
  mek: MekProvider;
  lifecycle: KeyLifecycle;
  keys: KeyCache;
  sign: Signer;
  /** Verifies our own JWTs against the published keys in memory. */
  verifier: TokenVerifier;
  /** Shared Postgres failure counters. */
  failures: FailureLimiter;
  /** The abuse limits of docs/security.md "Abuse limits and the threat model" over those counters. */
  limits: AbuseLimits;
  /** argon2id under its concurrency bound, shared by sign-in and sign-up. */
  passwords: PasswordHashing;
  /** User accounts, sessions and refresh tokens (/auth/v1). */
  users: UserAccounts;
  /** Registered admin tokens (/admin/v1, `idp admin-token`). */
  adminTokens: AdminTokens;
  /** OAuth clients (cached in memory), client authentication and its sweeps. */
  oauth: OAuthServices;
  /** API keys, cached in memory. */
  apiKeys: ApiKeys;
  /** The paging cursors of the lists (users, audit events, API keys), authenticated under the MEK ring. */
  cursors: CursorCodec;
  /** The grants and token kinds the OAuth endpoints serve. */
  registry: OAuthRegistry;
  /** The capabilities' sweeps, run every SWEEP_INTERVAL_MS (each idempotent; tests and tools may run one at once). */
  sweeps: ReadonlyArray<{ name: string; run(): Promise<void> }>;
  /** What the HTTP server serves once start-up is done. */
  runtime: AppRuntime;
  now: () => Date;
  close(): Promise<void>;
}

/** Opens the database (waiting for it), migrates, and checks the MEK ring against every key. */
export async function buildLifecycle(options: ComposeOptions): Promise<{ handle: DatabaseHandle; mek: MekProvider; lifecycle: KeyLifecycle }> {
  const { config, logger, metrics } = options;
  const mek = options.mek ?? loadMekRing(config, logger);
  const handle = options.handle ?? (await openDatabaseWithRetry({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger }));
  try {
    const lifecycle = await openKeyLifecycle({
      handle,
      mek,
      logger,
      now: options.now,
      policy: config,
      observer: {
        onChange: (change) => metrics.keyTransitions.inc({ action: change.action }),
        onAlreadyRotated: () => metrics.alreadyRotated.inc(),
      },
    });
    return { handle, mek, lifecycle };
  } catch (error) {
    if (!options.handle) await handle.close();
    throw error;
  }
}

/**
 * Builds the whole service. A failure part-way closes, in reverse order, everything opened so far
 * (caches, listeners, hashing threads, the database when it opened it) before it is rethrown.
 */
export async function compose(options: ComposeOptions): Promise<Composition> {
  const { config, logger, metrics } = options;
  const opened: Array<() => void | Promise<void>> = [];
  const closeOpened = async () => {
    for (const close of opened.reverse().splice(0)) {
      try {
        await close();
      } catch (error) {
        logger.warn({ err: (error as Error).message }, 'closing a part of the service failed');
      }
    }
  };

  const { handle, mek, lifecycle } = await buildLifecycle(options);
  if (!options.handle) opened.push(() => handle.close());
  try {
    const now = options.now ?? (() => new Date());
    const keys = new KeyCache({ handle, mek, logger, refreshIntervalMs: config.keyRefreshIntervalMs });
    opened.push(() => keys.stop());
    // Creates `current` + `next` on first start, and catches up on anything overdue.
    await lifecycle.check('startup');
    await keys.start();
    metrics.watchKeys(() => keys.state, config.rotationIntervalMs);
    const sign = createSigner(keys);
    const verifier = new TokenVerifier(keys, config.issuer);

    const failures = new FailureLimiter({ handle, logger, now });
    await failures.start();
    const limits = new AbuseLimits(failures, config);
    const oauth = await startOAuth({ config, logger, handle, limiter: failures, limits, now });
    opened.push(() => oauth.stop());
    const passwords = new PasswordHashing(config.passwordHashing, { logger });
    opened.push(() => passwords.close());
    const users = new UserAccounts({
      db: handle.db,
      sign,
      verifier,
      logger,
      now,
      limits,
      passwords,
      tenantActive: (id) => tenantIsActive(handle.db, id),
      settings: {
        issuer: config.issuer,
        audience: config.userAudience,
        accessTokenTtlMs: config.accessTokenTtlMs,
        refreshTokenTtlMs: config.refreshTokenTtlMs,
        refreshReuseIntervalMs: config.refreshReuseIntervalMs,
      },
    });
    users.startSweeping();
    opened.push(() => users.stop());
    const apiKeys = await startApiKeys({
      handle,
      logger,
      now,
      policy: { maxTtlMs: config.apiKeyMaxTtlMs, userScopes: [USER_SCOPE] },
      refreshIntervalMs: config.keyRefreshIntervalMs,
    });
    opened.push(() => apiKeys.stop());
    const adminTokens = new AdminTokens({
      db: handle.db,
      verifier,
      sign,
      now,
      settings: { issuer: config.issuer, defaultTtlMs: config.adminTokenTtlMs, retentionMs: config.retentionMs },
    });

    // The capabilities, in the order their token kinds are asked and their routes matched: the most
    // specific recognisers first. An exchanged token of a client-owned API key also looks like a
    // client's own token (`sub` = `client_id`): API keys come before client credentials so that its
    // introspection says `api_key_id`. `/auth/v1/api-keys` is matched before `/auth/v1`.
    // Paging cursors are authenticated under a key derived from the MEK ring, which every instance shares.
    const cursors = new CursorCodec(mek);
    const userTokenDeps = { db: handle.db, users, issuer: config.issuer, now };
    const resources = resourcesCapability({ db: handle.db, now, production: config.production });
    const authorization = authorizationCapability({
      db: handle.db,
      logger,
      now,
      sign,
      verifier,
      settings: config,
      client: (id, origin) => oauth.client(id, origin),
      redirectUriMatches,
      resource: (url) => resources.service.get(url),
      recordClientUse: (client) => oauth.clients.recordUse(client),
      users,
    });
    const delegation = delegationCapability({
      db: handle.db,
      logger,
      now,
      sign,
      verifier,
      settings: config,
      client: (id) => oauth.clients.get(id),
      session: (sid) => findSessionWithUser(handle.db, sid),
      userAccess: (token) => users.authenticateAnyAudience(token),
    });
    // One grant type, two grants (docs/delegation.md "Delegation": an API key as subject_token takes no client
    // authentication; a user's access token is delegated to the authenticated client.
    const apiKeyExchange = tokenExchangeGrant({ apiKeys, limits, settings: config, sign, now });
    const tokenExchange = grantPerRequest([apiKeyExchange, delegation.exchange], (params) => (delegates(params) ? delegation.exchange : apiKeyExchange));
    const registration = registrationCapability({
      db: handle.db,
      logger,
      now,
      settings: config,
      policy: clientPolicy(config),
      reserve: (address) => limits.registrationAttempt(address),
      knownResourceScopes: (scopes) => resources.service.knownScopes(scopes),
      adminTokens,
    });
    const capabilities: Capability[] = [
      {
        name: 'api-keys',
        grants: [tokenExchange],
        tokenKinds: [apiKeyTokens({ db: handle.db, apiKeys, verifier, now }), exchangedAccessTokens({ db: handle.db, apiKeys, verifier, now })],
        routes: [{ path: '/auth/v1/api-keys', handler: apiKeyUserRoutes({ deps: () => ({ apiKeys, users, cursors, now }), logger }) }],
      },
      // Before `users`: /auth/v1/grants is matched before /auth/v1.
      authorization,
      // Its tokens carry `act` and no `token_type`: no other kind claims them.
      delegation,
      {
        name: 'users',
        grants: [refreshTokenGrant(userTokenDeps)],
        tokenKinds: [userAccessTokens(userTokenDeps), userRefreshTokens(userTokenDeps)],
        routes: [{ path: '/auth/v1', handler: userRoutes({ accounts: () => users, logger }) }],
      },
      {
        name: 'client-credentials',
        grants: [clientCredentialsGrant({ issuer: config.issuer, clientTokenTtlMs: config.clientTokenTtlMs, sign, now })],
        tokenKinds: [clientAccessTokens({ db: handle.db, verifier, findClient: (id) => oauth.clients.get(id), now })],
      },
      resources,
      registration,
      {
        name: 'admin',
        routes: [
          {
            path: '/admin/v1',
            handler: adminRoutes({
              deps: () => ({ db: handle.db, now, settings: config, lifecycle, keys, failures, adminTokens, apiKeys, cursors, resources: resources.service }),
              logger,
            }),
          },
        ],
      },
    ];
    // client_credentials is listed first in grant_types_supported, as it always was.
    const grantOrder = ['client-credentials', 'authorization', 'users', 'api-keys', 'resources', 'admin'];
    const registry = createOAuthRegistry({
      grants: grantOrder.flatMap((name) => capabilities.find((c) => c.name === name)?.grants ?? []),
      tokenKinds: capabilities.flatMap((c) => c.tokenKinds ?? []),
    });

    const routes = express.Router({ caseSensitive: true, strict: true });
    for (const capability of capabilities) for (const { path, handler } of capability.routes ?? []) routes.use(path, handler);
    const sweeps = capabilities.flatMap((c) => c.sweeps ?? []);
    const sweepTimer = setInterval(() => {
      for (const sweep of sweeps) sweep.run().catch((error: Error) => logger.warn({ err: error.message, sweep: sweep.name }, 'sweep failed; retrying at the next interval'));
    }, SWEEP_INTERVAL_MS);
    sweepTimer.unref();
    opened.push(() => clearInterval(sweepTimer));

    const runtime: AppRuntime = {
      jwks: () => keys.jwks,
      oauth: { registry, authenticator: oauth.authenticator, trustProxy: config.trustProxy, recordClientUse: (client) => oauth.clients.recordUse(client) },
      readiness: async () => ({ database: await handle.ping(1_000), signingKey: keys.loaded }),
      async metadata() {
        // A scope list that cannot be read is left empty rather than failing discovery (RFC 8414: a RECOMMENDED member).
        const scopes = await scopesSupported(handle, (limit) => resources.service.scopes(limit)).catch((error: Error) => {
          logger.warn({ err: error.message }, 'discovery: scopes_supported could not be read; served empty');
          return [];
        });
        return {
          issuer: config.issuer,
          jwks_uri: `${config.issuer}/.well-known/jwks.json`,
          ...oauthMetadata(config.issuer, scopes, registry.grantTypes(), config.clientIdMetadataDocuments),
          ...Object.assign({}, ...capabilities.map((c) => c.discovery?.() ?? {})),
        };
      },
      routes,
    };

    return {
      config,
      logger,
      metrics,
      handle,
      mek,
      lifecycle,
      keys,
      sign,
      verifier,
      failures,
      limits,
      passwords,
      users,
      adminTokens,
      oauth,
      apiKeys,
      cursors,
      registry,
      sweeps,
      runtime,
      now,
      close: closeOpened,
    };
  } catch (error) {
    await closeOpened();
    throw error;
  }
}

/**
 * The OpenAPI fragments of the capabilities compose() mounts (each beside its routes), in the order
 * their grants are listed: the document is served from the moment the server listens, before start-up
 * is done, so it is assembled from these parts and the configuration rather than from the built
 * capabilities.
 */
function openApiFragments(config: Pick<Config, 'dynamicRegistration'>): readonly OpenApiFragment[] {
  // POST /oauth/register is listed only when registration is on, and described as the mode serves it.
  return [clientCredentialsOpenApi, authorizationOpenApi, usersOpenApi, apiKeysOpenApi, delegationOpenApi, adminOpenApi, resourcesOpenApi, registrationOpenApi(config.dynamicRegistration)];
}

/** The OpenAPI document this composition serves at /openapi.json. */
export function openApiDocument(config: Pick<Config, 'issuer' | 'dynamicRegistration'>): oas31.OpenAPIObject {
  return buildOpenApiDocument(config, openApiFragments(config));
}

/**
 * The HTTP server of this composition, created before start-up is done so that /healthz and
 * /readyz answer while the database is awaited; it serves the composition once `composition()` has one.
 */
export function createServer(options: {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  composition: () => Composition | undefined;
  /** IDP_WORKERS > 1: whether every worker of the instance is ready (/readyz answers for the instance). */
  workersReady?: () => boolean;
}): http.Server {
  const { config, logger, metrics, workersReady } = options;
  return createHttpServer({ config, logger, metrics, openapi: openApiSnapshot(config, openApiFragments(config)), runtime: () => options.composition()?.runtime, workersReady });
}
