import type { Config } from './config';
import { loadMek, type MekProvider } from './crypto/mek';
import { CursorCodec } from './http/cursor';
import { openDatabase, type DatabaseHandle } from './db';
import { migrateToLatest } from './db/migrate';
import { KeyCache } from './keys/cache';
import { KeyLifecycle } from './keys/lifecycle';
import type { Logger } from './observability/logger';
import type { Metrics } from './observability/metrics';
import { createSigner, type Signer } from './tokens/sign';
import { TokenVerifier } from './tokens/verify';
import { AdminTokens } from './admin/tokens';
import { tenantIsActive } from './tenants/repository';
import { FailureLimiter } from './ratelimit';
import { startOAuth, type OAuthServices } from './oauth';
import { AbuseLimits } from './ratelimit/policies';
import { PasswordHashing } from './users/passwords';
import { UserAccounts } from './users/service';
import { USER_SCOPE } from './users/access-token';
import { startApiKeys, type ApiKeys } from './api-keys/service';
// Registers grant_type=refresh_token and the user token kinds at the OAuth endpoints.
import './users/oauth';
// Registers the token-exchange grant and the API-key token kinds.
import './api-keys/oauth';

/** Everything a request handler, the scheduler or the CLI works with, built once per process. */
export interface Services {
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
  /** The abuse limits of README: "Abuse limits" over those counters. */
  limits: AbuseLimits;
  /** argon2id under its concurrency bound, shared by sign-in and sign-up. */
  passwords: PasswordHashing;
  /** User accounts, sessions and refresh tokens (/auth/v1). */
  users: UserAccounts;
  /** Registered admin tokens (/admin/v1, `idp admin-token`). */
  adminTokens: AdminTokens;
  /** OAuth clients (cached in memory), client authentication, the /oauth/* endpoints' state. */
  oauth: OAuthServices;
  /** API keys (README: "API keys"), cached in memory. */
  apiKeys: ApiKeys;
  /** The paging cursors of the lists (users, audit events, API keys), authenticated under the MEK ring. */
  cursors: CursorCodec;
  now: () => Date;
  close(): Promise<void>;
}

export interface ServiceOptions {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  /** An already open database (tests); otherwise one is opened from the configuration. */
  handle?: DatabaseHandle;
  mek?: MekProvider;
  now?: () => Date;
}

/** Opens the database (waiting for it), migrates, checks the MEK against every key, and builds the key lifecycle. */
export async function buildLifecycle(options: ServiceOptions): Promise<{ handle: DatabaseHandle; mek: MekProvider; lifecycle: KeyLifecycle }> {
  const { config, logger, metrics } = options;
  const mek = options.mek ?? resolveMek(config, logger);
  const handle = options.handle ?? (await openDatabaseWithRetry(config, logger));
  try {
    await migrateToLatest(handle);
    const lifecycle = new KeyLifecycle({
      db: handle.db,
      mek,
      logger,
      now: options.now,
      policy: config,
      observer: {
        onChange: (change) => metrics.keyTransitions.inc({ action: change.action }),
        onAlreadyRotated: () => metrics.alreadyRotated.inc(),
      },
    });
    await lifecycle.assertAllDecryptable();
    return { handle, mek, lifecycle };
  } catch (error) {
    if (!options.handle) await handle.close();
    throw error;
  }
}

/** The whole service: lifecycle, first keys if none exist, and the in-memory key cache. */
export async function startServices(options: ServiceOptions): Promise<Services> {
  const { config, logger, metrics } = options;
  const { handle, mek, lifecycle } = await buildLifecycle(options);
  const keys = new KeyCache({ handle, mek, logger, refreshIntervalMs: config.keyRefreshIntervalMs });
  try {
    // Creates `current` + `next` on first start, and catches up on anything overdue.
    await lifecycle.check('startup');
    await keys.start();
  } catch (error) {
    keys.stop();
    if (!options.handle) await handle.close();
    throw error;
  }
  metrics.watchKeys(() => keys.state, config.rotationIntervalMs);
  const now = options.now ?? (() => new Date());
  const sign = createSigner(keys);
  const verifier = new TokenVerifier(keys, config.issuer);
  const failures = new FailureLimiter({ handle, logger, now });
  await failures.start();
  const limits = new AbuseLimits(failures, config);
  const oauth = await startOAuth({ config, logger, handle, limiter: failures, limits, now });
  const passwords = new PasswordHashing(config.passwordHashing);
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
  const apiKeys = await startApiKeys({
    handle,
    logger,
    now,
    policy: { maxTtlMs: config.apiKeyMaxTtlMs, userScopes: [USER_SCOPE] },
    refreshIntervalMs: config.keyRefreshIntervalMs,
  });
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
    adminTokens: new AdminTokens({
      db: handle.db,
      verifier,
      sign,
      now,
      settings: { issuer: config.issuer, defaultTtlMs: config.adminTokenTtlMs, retentionMs: config.retentionMs },
    }),
    oauth,
    apiKeys,
    cursors: new CursorCodec(mek),
    now,
    async close() {
      apiKeys.stop();
      oauth.stop();
      users.stop();
      keys.stop();
      await passwords.close();
      if (!options.handle) await handle.close();
    },
  };
}

export function resolveMek(config: Config, logger: Logger): MekProvider {
  const loaded = loadMek(config);
  if (loaded.generatedDevRing) {
    logger.warn(
      { file: loaded.generatedDevRing },
      'DEVELOPMENT KEY RING GENERATED: signing keys are encrypted under a MEK kept next to the data. Set IDP_MEK or IDP_MEK_FILE before production.',
    );
  }
  return loaded.provider;
}

/** Postgres unreachable at start: retry with backoff, one log line per attempt. */
export async function openDatabaseWithRetry(config: Config, logger: Logger, maxAttempts = Infinity): Promise<DatabaseHandle> {
  for (let attempt = 1; ; attempt++) {
    const handle = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, logger });
    if (await handle.ping(5_000)) return handle;
    await handle.close();
    const delayMs = Math.min(30_000, 500 * 2 ** (attempt - 1));
    if (attempt >= maxAttempts) throw new Error('database unreachable');
    logger.error({ attempt, retryInMs: delayMs }, `database unreachable (attempt ${attempt}); retrying in ${Math.round(delayMs / 1000)}s`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}
