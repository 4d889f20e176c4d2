import os from 'node:os';
import cron from 'node-cron';
import proxyaddr from 'proxy-addr';
import { z } from 'zod';
import { checkName } from '../text';
import { formatDuration, parseDuration } from './duration';

/**
 * Every setting of the service, parsed and validated once from the environment (README: "Configuration").
 * Defaults are stated here and nowhere else; the README's configuration table mirrors this file.
 */
export interface Config {
  readonly production: boolean;
  /** `PORT`, default 3000. */
  readonly port: number;
  /** `HOST`, default 0.0.0.0. */
  readonly host: string;
  /** `DATABASE_URL`; unset means embedded PGlite. */
  readonly databaseUrl: string | undefined;
  /** `IDP_DATA_DIR`, default `.idp/data`: the PGlite data directory. */
  readonly dataDir: string;
  /** `IDP_ISSUER`, default `http://localhost:$PORT`; never ends with `/`. */
  readonly issuer: string;
  /** `IDP_MEK`: the key ring text, if given inline. */
  readonly mek: string | undefined;
  /** `IDP_MEK_FILE`: path of a file holding the key ring. */
  readonly mekFile: string | undefined;
  /** `IDP_DEV_MEK_FILE`, default `.idp/dev-mek`: where the development ring lives outside production. */
  readonly devMekFile: string;
  /** `IDP_KEY_SIZE`: 2048 (default), 3072 or 4096. */
  readonly keySize: 2048 | 3072 | 4096;
  /** `IDP_ROTATION_CRON`, default every five minutes. */
  readonly rotationCron: string;
  /** `IDP_KEY_ROTATION_INTERVAL`, default 30d: how long a key signs. */
  readonly rotationIntervalMs: number;
  /** `IDP_KEY_PREPUBLISH`, default 24h: least time a `next` key is published before it may sign. */
  readonly prepublishMs: number;
  /** `IDP_KEY_RETENTION`, default longest token TTL + 10m: how long a `previous` key stays published. */
  readonly retentionMs: number;
  /** `IDP_JWKS_MAX_AGE`, default 300 (seconds). */
  readonly jwksMaxAgeSeconds: number;
  /** `IDP_KEY_REFRESH_INTERVAL`, default 30s: periodic re-read of the keys, the fallback to LISTEN/NOTIFY. */
  readonly keyRefreshIntervalMs: number;
  /**
   * `IDP_CLIENT_CACHE_SIZE`, default 10000: the most clients each worker keeps in memory (least
   * recently used first out). A client not in memory costs one primary-key query; memory is bounded
   * by this setting, not by the number of clients.
   */
  readonly clientCacheSize: number;
  /** `IDP_ACCESS_TOKEN_TTL`, default 1h. */
  readonly accessTokenTtlMs: number;
  /** `IDP_REFRESH_TOKEN_TTL`, default 7d. */
  readonly refreshTokenTtlMs: number;
  /** `IDP_ADMIN_TOKEN_TTL`, default 1h. */
  readonly adminTokenTtlMs: number;
  /** `IDP_CLIENT_TOKEN_TTL`, default 1h. */
  readonly clientTokenTtlMs: number;
  /** `IDP_USER_AUDIENCE`, default the issuer. */
  readonly userAudience: string;
  /** `IDP_WORKERS`: HTTP worker processes; default the CPU count on Postgres, always 1 on PGlite. */
  readonly workers: number;
  /** `IDP_LOG_LEVEL`, default `info` (`silent` in tests). */
  readonly logLevel: string;
  /** `IDP_CLIENT_AUDIENCE`, default `$IDP_ISSUER/api`: the audience of a client created without `--audience`. */
  readonly clientDefaultAudience: string;
  /**
   * `IDP_CLIENT_SECRET_GRACE`, default 24h: how long the previous secret keeps working after
   * `clients rotate-secret`, so services can be redeployed with the new one (`--grace 0s` after a leak).
   */
  readonly clientSecretGraceMs: number;
  /**
   * Sign-in limits at /auth/v1/token (README: "Abuse limits", after Auth0's brute-force protection); past one, 429
   * with Retry-After until the window passes. Refused attempts are not counted, so one address can
   * add at most `perEmailIp` failures to an email's count.
   */
  readonly signInFailureLimits: {
    /** `IDP_SIGNIN_FAILURES_PER_EMAIL_IP`, default 10 failures for one (email, address) pair: blocks that pair only. */
    readonly perEmailIp: number;
    /** `IDP_SIGNIN_FAILURES_PER_IP`, default 100 failures from one address across emails: blocks sign-in from it. */
    readonly perIp: number;
    /** `IDP_SIGNIN_FAILURES_PER_EMAIL`, default 100 failures for one email from all addresses: blocks that email. */
    readonly perEmail: number;
    /** `IDP_SIGNIN_FAILURE_WINDOW`, default 15m. */
    readonly windowMs: number;
  };
  /** Sign-up limit (README: "Abuse limits"): every attempt counts. */
  readonly signUpLimits: {
    /** `IDP_SIGNUPS_PER_IP`, default 20 sign-ups per address and window. */
    readonly perIp: number;
    /** `IDP_SIGNUP_WINDOW`, default 1h. */
    readonly windowMs: number;
  };
  /** Password hashing (argon2id) under a bounded concurrency, so floods never starve the token endpoint (README: "Abuse limits"). */
  readonly passwordHashing: {
    /** `IDP_PASSWORD_HASH_CONCURRENCY`, default 1: hashes computed at once per process. */
    readonly concurrency: number;
    /** `IDP_PASSWORD_HASH_QUEUE`, default 32: hashes waiting per process; past it, 503 with Retry-After. */
    readonly queue: number;
  };
  /**
   * `IDP_TRUST_PROXY`, default `false`: which peers may name the client's address in
   * `X-Forwarded-For` (Express's `trust proxy` syntax: a hop count, or addresses, CIDRs and the
   * names loopback, linklocal, uniquelocal). `trustProxyText` is the setting as given.
   */
  readonly trustProxy: (address: string, hop: number) => boolean;
  readonly trustProxyText: string;
  /** `IDP_RATE_LIMIT_ALLOWLIST`, default empty: addresses never blocked by a per-address limit. */
  readonly rateLimitAllowlist: (address: string) => boolean;
  readonly rateLimitAllowlistText: string;
  /** `IDP_METRICS_PORT` (default 9464; `0` a free port; `off`: none) and `IDP_METRICS_HOST` (default 127.0.0.1). */
  readonly metrics: { readonly port: number; readonly host: string } | undefined;
  /** `IDP_REQUEST_TIMEOUT`, default 30s: the longest a client may take to send one request's headers and body. */
  readonly requestTimeoutMs: number;
  /** `IDP_REFRESH_REUSE_INTERVAL`, default 0s: a refresh token presented again this soon after its rotation gets the current pair. */
  readonly refreshReuseIntervalMs: number;
  /** `IDP_API_KEY_MAX_TTL`, default 365d; `never` (undefined here) allows keys without expiry. */
  readonly apiKeyMaxTtlMs: number | undefined;
  /** `IDP_AUTH_CODE_TTL`, default 60s, at most 10m: how long an authorization code may be redeemed (README: "Sign-in for applications"). */
  readonly authCodeTtlMs: number;
  /** `IDP_SESSION_TTL`, default 12h: the absolute lifetime of a hosted pages' browser session. */
  readonly sessionTtlMs: number;
  /** `IDP_SESSION_IDLE_TTL`, default 1h, at most IDP_SESSION_TTL: a browser session unused this long is over. */
  readonly sessionIdleTtlMs: number;
  /** `IDP_ID_TOKEN_TTL`, default 10m: the lifetime of an ID token. */
  readonly idTokenTtlMs: number;
  /** `IDP_BRAND_NAME`, default `Sign in`: the name the hosted pages show in their title and heading. */
  readonly brandName: string;
  /** Abuse limits on failed client authentication at /oauth/* (README: "Abuse limits"). */
  readonly tokenFailureLimits: {
    /** `IDP_TOKEN_FAILURES_PER_CLIENT`, default 20 failures per `client_id` and window. */
    readonly perClient: number;
    /** `IDP_TOKEN_FAILURES_PER_IP`, default 20 failures per client IP and window. */
    readonly perIp: number;
    /** `IDP_TOKEN_FAILURE_WINDOW`, default 1m. */
    readonly windowMs: number;
  };
}

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function duration(env: Env, name: string, fallback: number): number {
  const text = read(env, name);
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new ConfigError(name, `"${text}" is not a positive duration such as 90s, 15m, 1h or 7d`);
  }
  return ms;
}

/** A duration where `0s` is allowed (a feature turned off). */
function optionalDuration(env: Env, name: string, fallback: number): number {
  const text = read(env, name);
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined || ms < 0) throw new ConfigError(name, `"${text}" is not a duration such as 0s, 10s or 1m`);
  return ms;
}

/** Addresses and CIDRs (with proxy-addr's names) as a matcher; proxy-addr is what Express itself uses. */
function addressList(name: string, text: string): (address: string, hop: number) => boolean {
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  try {
    return proxyaddr.compile(entries);
  } catch (error) {
    throw new ConfigError(name, `${(error as Error).message.replace(/^invalid IP address: /, 'not an address or CIDR: ')}`);
  }
}

/** Express's `trust proxy` values but `true`: trusting every peer would let any client choose its own address. */
function trustProxy(env: Env): { fn: (address: string, hop: number) => boolean; text: string } {
  const text = read(env, 'IDP_TRUST_PROXY') ?? 'false';
  if (text === 'false') return { fn: () => false, text };
  if (text === 'true') {
    throw new ConfigError('IDP_TRUST_PROXY', '"true" would let every client choose its own address; give the hop count or the proxies\' addresses');
  }
  if (/^\d+$/.test(text)) {
    const hops = Number(text);
    if (hops > 16) throw new ConfigError('IDP_TRUST_PROXY', `${hops} hops is not a plausible proxy chain (0 to 16)`);
    return { fn: (_address, hop) => hop < hops, text };
  }
  return { fn: addressList('IDP_TRUST_PROXY', text), text };
}

function metricsListener(env: Env): Config['metrics'] {
  const portText = read(env, 'IDP_METRICS_PORT') ?? '9464';
  if (portText === 'off') return undefined;
  const port = integer(env, 'IDP_METRICS_PORT', 9464, 0, 65535);
  return Object.freeze({ port, host: read(env, 'IDP_METRICS_HOST') ?? '127.0.0.1' });
}

/** At most 30 days, the bound `rotate-secret --grace` has too: a leaked secret must not live on for months. */
function secretGrace(env: Env): number {
  const ms = duration(env, 'IDP_CLIENT_SECRET_GRACE', 86_400_000);
  if (ms > 30 * 86_400_000) throw new ConfigError('IDP_CLIENT_SECRET_GRACE', `${formatDuration(ms)} is over 30d, the longest a previous secret may keep working`);
  return ms;
}

function apiKeyMaxTtl(env: Env): number | undefined {
  if (read(env, 'IDP_API_KEY_MAX_TTL') === 'never') return undefined;
  return duration(env, 'IDP_API_KEY_MAX_TTL', 365 * 86_400_000);
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const text = read(env, name);
  if (text === undefined) return fallback;
  const parsed = z.coerce.number().int().min(min).max(max).safeParse(text);
  if (!parsed.success) throw new ConfigError(name, `"${text}" is not a whole number from ${min} to ${max}`);
  return parsed.data;
}

function url(name: string, text: string): string {
  const parsed = z.url({ protocol: /^https?$/ }).safeParse(text);
  if (!parsed.success) throw new ConfigError(name, `"${text}" is not an http(s) URL`);
  return text.replace(/\/+$/, '');
}

/** Reads and checks the whole configuration; throws a ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV === 'production';
  const port = integer(env, 'PORT', 3000, 0, 65535);
  const databaseUrl = read(env, 'DATABASE_URL');
  if (databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL', 'must be a postgres:// or postgresql:// connection string');
  }
  const issuerText = read(env, 'IDP_ISSUER');
  const issuer = issuerText === undefined ? `http://localhost:${port}` : url('IDP_ISSUER', issuerText);

  const keySizeText = read(env, 'IDP_KEY_SIZE') ?? '2048';
  if (!['2048', '3072', '4096'].includes(keySizeText)) {
    throw new ConfigError('IDP_KEY_SIZE', `"${keySizeText}" is not one of 2048, 3072, 4096`);
  }

  const rotationCron = read(env, 'IDP_ROTATION_CRON') ?? '*/5 * * * *';
  if (!cron.validate(rotationCron)) throw new ConfigError('IDP_ROTATION_CRON', `"${rotationCron}" is not a cron expression`);
  const accessTokenTtlMs = duration(env, 'IDP_ACCESS_TOKEN_TTL', 3_600_000);
  const refreshTokenTtlMs = duration(env, 'IDP_REFRESH_TOKEN_TTL', 7 * 86_400_000);
  const adminTokenTtlMs = duration(env, 'IDP_ADMIN_TOKEN_TTL', 3_600_000);
  const clientTokenTtlMs = duration(env, 'IDP_CLIENT_TOKEN_TTL', 3_600_000);
  const idTokenTtlMs = duration(env, 'IDP_ID_TOKEN_TTL', 600_000);
  // Refresh tokens are opaque and never verified against a key, so they do not count here.
  const longestSignedTtl = Math.max(accessTokenTtlMs, adminTokenTtlMs, clientTokenTtlMs, idTokenTtlMs);

  const jwksMaxAgeSeconds = integer(env, 'IDP_JWKS_MAX_AGE', 300, 0, 7 * 86_400);
  const rotationIntervalMs = duration(env, 'IDP_KEY_ROTATION_INTERVAL', 30 * 86_400_000);
  const prepublishMs = duration(env, 'IDP_KEY_PREPUBLISH', 86_400_000);
  const retentionMs = duration(env, 'IDP_KEY_RETENTION', longestSignedTtl + 600_000);

  // The three refusals of README: "Configuration": each of these would make verifiers reject valid tokens.
  if (prepublishMs < 2 * jwksMaxAgeSeconds * 1000) {
    throw new ConfigError(
      'IDP_KEY_PREPUBLISH',
      `${formatDuration(prepublishMs)} is under 2 × IDP_JWKS_MAX_AGE (${formatDuration(2 * jwksMaxAgeSeconds * 1000)}): verifiers with a cached JWKS would not know the new key`,
    );
  }
  if (rotationIntervalMs < prepublishMs) {
    throw new ConfigError(
      'IDP_KEY_ROTATION_INTERVAL',
      `${formatDuration(rotationIntervalMs)} is under IDP_KEY_PREPUBLISH (${formatDuration(prepublishMs)}): a key would sign before verifiers have seen it`,
    );
  }
  if (retentionMs < longestSignedTtl) {
    throw new ConfigError(
      'IDP_KEY_RETENTION',
      `${formatDuration(retentionMs)} is under the longest token TTL (${formatDuration(longestSignedTtl)}): tokens would outlive their key`,
    );
  }

  const logLevel = read(env, 'IDP_LOG_LEVEL') ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError('IDP_LOG_LEVEL', `"${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  }

  const userAudienceText = read(env, 'IDP_USER_AUDIENCE');
  const defaultWorkers = databaseUrl === undefined ? 1 : os.availableParallelism();
  const workers = integer(env, 'IDP_WORKERS', defaultWorkers, 1, 64);
  if (databaseUrl === undefined && workers > 1) {
    throw new ConfigError('IDP_WORKERS', 'must be 1 on the embedded PGlite, which one process owns; set DATABASE_URL to run more');
  }

  const authCodeTtlMs = duration(env, 'IDP_AUTH_CODE_TTL', 60_000);
  // RFC 6749 §4.1.2: a maximum lifetime of 10 minutes is recommended; a code is redeemed within seconds.
  if (authCodeTtlMs > 600_000) throw new ConfigError('IDP_AUTH_CODE_TTL', `${formatDuration(authCodeTtlMs)} is over 10m, the longest an authorization code may live`);
  const sessionTtlMs = duration(env, 'IDP_SESSION_TTL', 12 * 3_600_000);
  const sessionIdleTtlMs = duration(env, 'IDP_SESSION_IDLE_TTL', 3_600_000);
  if (sessionIdleTtlMs > sessionTtlMs) {
    throw new ConfigError('IDP_SESSION_IDLE_TTL', `${formatDuration(sessionIdleTtlMs)} is over IDP_SESSION_TTL (${formatDuration(sessionTtlMs)}), which ends every session first`);
  }
  const brandName = read(env, 'IDP_BRAND_NAME') ?? 'Sign in';
  try {
    checkName(brandName, 'the brand name', 80);
  } catch (error) {
    throw new ConfigError('IDP_BRAND_NAME', (error as Error).message);
  }

  const trust = trustProxy(env);
  const allowlistText = read(env, 'IDP_RATE_LIMIT_ALLOWLIST') ?? '';
  const allowlist = allowlistText === '' ? () => false : addressList('IDP_RATE_LIMIT_ALLOWLIST', allowlistText);

  const config: Config = {
    production,
    port,
    host: read(env, 'HOST') ?? '0.0.0.0',
    databaseUrl,
    dataDir: read(env, 'IDP_DATA_DIR') ?? '.idp/data',
    issuer,
    mek: read(env, 'IDP_MEK'),
    mekFile: read(env, 'IDP_MEK_FILE'),
    devMekFile: read(env, 'IDP_DEV_MEK_FILE') ?? '.idp/dev-mek',
    keySize: Number(keySizeText) as Config['keySize'],
    rotationCron,
    rotationIntervalMs,
    prepublishMs,
    retentionMs,
    jwksMaxAgeSeconds,
    keyRefreshIntervalMs: duration(env, 'IDP_KEY_REFRESH_INTERVAL', 30_000),
    clientCacheSize: integer(env, 'IDP_CLIENT_CACHE_SIZE', 10_000, 1, 10_000_000),
    accessTokenTtlMs,
    refreshTokenTtlMs,
    adminTokenTtlMs,
    clientTokenTtlMs,
    userAudience: userAudienceText === undefined ? issuer : userAudienceText,
    workers,
    logLevel,
    clientDefaultAudience: read(env, 'IDP_CLIENT_AUDIENCE') ?? `${issuer}/api`,
    clientSecretGraceMs: secretGrace(env),
    signInFailureLimits: Object.freeze({
      perEmailIp: integer(env, 'IDP_SIGNIN_FAILURES_PER_EMAIL_IP', 10, 1, 1_000_000),
      perIp: integer(env, 'IDP_SIGNIN_FAILURES_PER_IP', 100, 1, 1_000_000),
      perEmail: integer(env, 'IDP_SIGNIN_FAILURES_PER_EMAIL', 100, 1, 1_000_000),
      windowMs: duration(env, 'IDP_SIGNIN_FAILURE_WINDOW', 15 * 60_000),
    }),
    signUpLimits: Object.freeze({
      perIp: integer(env, 'IDP_SIGNUPS_PER_IP', 20, 1, 1_000_000),
      windowMs: duration(env, 'IDP_SIGNUP_WINDOW', 3_600_000),
    }),
    passwordHashing: Object.freeze({
      concurrency: integer(env, 'IDP_PASSWORD_HASH_CONCURRENCY', 1, 1, 64),
      queue: integer(env, 'IDP_PASSWORD_HASH_QUEUE', 32, 0, 100_000),
    }),
    trustProxy: trust.fn,
    trustProxyText: trust.text,
    rateLimitAllowlist: (address: string) => allowlist(address, 0),
    rateLimitAllowlistText: allowlistText,
    metrics: metricsListener(env),
    requestTimeoutMs: duration(env, 'IDP_REQUEST_TIMEOUT', 30_000),
    refreshReuseIntervalMs: optionalDuration(env, 'IDP_REFRESH_REUSE_INTERVAL', 0),
    apiKeyMaxTtlMs: apiKeyMaxTtl(env),
    authCodeTtlMs,
    sessionTtlMs,
    sessionIdleTtlMs,
    idTokenTtlMs,
    brandName,
    tokenFailureLimits: Object.freeze({
      perClient: integer(env, 'IDP_TOKEN_FAILURES_PER_CLIENT', 20, 1, 1_000_000),
      perIp: integer(env, 'IDP_TOKEN_FAILURES_PER_IP', 20, 1, 1_000_000),
      windowMs: duration(env, 'IDP_TOKEN_FAILURE_WINDOW', 60_000),
    }),
  };

  if (production) {
    const missing = [
      issuerText === undefined ? 'IDP_ISSUER' : undefined,
      config.mek === undefined && config.mekFile === undefined ? 'IDP_MEK (or IDP_MEK_FILE)' : undefined,
      databaseUrl === undefined ? 'DATABASE_URL' : undefined,
    ].filter((name): name is string => name !== undefined);
    if (missing.length > 0) {
      throw new ConfigError(missing[0] as string, `required in production (missing: ${missing.join(', ')})`);
    }
  }
  return Object.freeze(config);
}

/** Warnings that do not stop start-up but that an operator must see. */
export function configWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.production && config.prepublishMs < 86_400_000) {
    warnings.push(
      `IDP_KEY_PREPUBLISH is ${formatDuration(config.prepublishMs)}: some verifiers refresh a JWKS only every 12–24 h and may reject tokens of a new key`,
    );
  }
  return warnings;
}
