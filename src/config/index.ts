import os from 'node:os';
import cron from 'node-cron';
import proxyaddr from 'proxy-addr';
import { z } from 'zod';
import { checkName } from '../text';
import { formatDuration, parseDuration } from './duration';

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


const SECOND = 1_000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** One of a fixed list of words, mapped to its value. */
function oneOf<const W extends string, T>(env: Env, name: string, words: readonly W[], fallback: W, value: (word: W) => T): T {
  const text = read(env, name) ?? fallback;
  if (!(words as readonly string[]).includes(text)) throw new ConfigError(name, `"${text}" is not one of ${words.join(', ')}`);
  return value(text as W);
}

function databaseUrlOf(env: Env): string | undefined {
  const text = read(env, 'DATABASE_URL');
  if (text !== undefined && !/^postgres(ql)?:\/\//.test(text)) throw new ConfigError('DATABASE_URL', 'must be a postgres:// or postgresql:// connection string');
  return text;
}

function issuerOf(env: Env): string {
  const text = read(env, 'IDP_ISSUER');
  return text === undefined ? `http://localhost:${integer(env, 'PORT', 3000, 0, 65535)}` : url('IDP_ISSUER', text);
}

/** The longest lifetime of a token signed with a key (refresh tokens are opaque, never verified against a key). */
function longestSignedTtl(env: Env): number {
  return Math.max(SETTINGS.accessTokenTtlMs(env), SETTINGS.adminTokenTtlMs(env), SETTINGS.clientTokenTtlMs(env));
}

/**
 * Every setting of the service, parsed and validated once from the environment (docs/configuration.md
 * "Configuration"). Each is written once, here: its variable, its default and its check, with the
 * `Config` type read off this table. Settings derived from others (the issuer from `PORT`, the key
 * retention from the token lifetimes) read those from the environment again, which keeps each entry
 * self-contained; the checks between settings run after the table (`crossChecks`).
 */
const SETTINGS = {
  production: (env) => env.NODE_ENV === 'production',
  /** `PORT`, default 3000. */
  port: (env) => integer(env, 'PORT', 3000, 0, 65535),
  /** `HOST`, default 0.0.0.0. */
  host: (env) => read(env, 'HOST') ?? '0.0.0.0',
  /** `DATABASE_URL`; unset means embedded PGlite. */
  databaseUrl: (env) => databaseUrlOf(env),
  /** `IDP_DATA_DIR`, default `.idp/data`: the PGlite data directory. */
  dataDir: (env) => read(env, 'IDP_DATA_DIR') ?? '.idp/data',
  /** `IDP_ISSUER`, default `http://localhost:$PORT`; never ends with `/`. */
  issuer: (env) => issuerOf(env),
  /** `IDP_MEK`: the key ring text, if given inline. */
  mek: (env) => read(env, 'IDP_MEK'),
  /** `IDP_MEK_FILE`: path of a file holding the key ring. */
  mekFile: (env) => read(env, 'IDP_MEK_FILE'),
  /** `IDP_DEV_MEK_FILE`, default `.idp/dev-mek`: where the development ring lives outside production. */
  devMekFile: (env) => read(env, 'IDP_DEV_MEK_FILE') ?? '.idp/dev-mek',
  /** `IDP_KEY_SIZE`: 2048 (default), 3072 or 4096. */
  keySize: (env) => oneOf(env, 'IDP_KEY_SIZE', ['2048', '3072', '4096'] as const, '2048', (text) => Number(text) as 2048 | 3072 | 4096),
  /** `IDP_ROTATION_CRON`, default every five minutes. */
  rotationCron: (env) => {
    const text = read(env, 'IDP_ROTATION_CRON') ?? '*/5 * * * *';
    if (!cron.validate(text)) throw new ConfigError('IDP_ROTATION_CRON', `"${text}" is not a cron expression`);
    return text;
  },
  /** `IDP_KEY_ROTATION_INTERVAL`, default 30d: how long a key signs. */
  rotationIntervalMs: (env) => duration(env, 'IDP_KEY_ROTATION_INTERVAL', 30 * DAY),
  /** `IDP_KEY_PREPUBLISH`, default 24h: least time a `next` key is published before it may sign. */
  prepublishMs: (env) => duration(env, 'IDP_KEY_PREPUBLISH', DAY),
  /** `IDP_KEY_RETENTION`, default longest token TTL + 10m: how long a `previous` key stays published. */
  retentionMs: (env) => duration(env, 'IDP_KEY_RETENTION', longestSignedTtl(env) + 10 * MINUTE),
  /** `IDP_JWKS_MAX_AGE`, default 300 (seconds). */
  jwksMaxAgeSeconds: (env) => integer(env, 'IDP_JWKS_MAX_AGE', 300, 0, 7 * 86_400),
  /** `IDP_KEY_REFRESH_INTERVAL`, default 30s: periodic re-read of the keys, the fallback to LISTEN/NOTIFY. */
  keyRefreshIntervalMs: (env) => duration(env, 'IDP_KEY_REFRESH_INTERVAL', 30 * SECOND),
  /**
   * `IDP_CLIENT_CACHE_SIZE`, default 10000: the most clients each worker keeps in memory (least
   * recently used first out). A client not in memory costs one primary-key query; memory is bounded
   * by this setting, not by the number of clients.
   */
  clientCacheSize: (env) => integer(env, 'IDP_CLIENT_CACHE_SIZE', 10_000, 1, 10_000_000),
  /**
   * `IDP_CLIENT_ID_METADATA_DOCUMENTS`, `on` (default) or `off`: whether a `client_id` that is a URL
   * is fetched as a client ID metadata document (docs/oauth.md "Client ID Metadata Documents".
   */
  clientIdMetadataDocuments: (env) => oneOf(env, 'IDP_CLIENT_ID_METADATA_DOCUMENTS', ['on', 'off'] as const, 'on', (text) => text === 'on'),
  /** `IDP_ACCESS_TOKEN_TTL`, default 1h. */
  accessTokenTtlMs: (env) => duration(env, 'IDP_ACCESS_TOKEN_TTL', HOUR),
  /** `IDP_REFRESH_TOKEN_TTL`, default 7d. */
  refreshTokenTtlMs: (env) => duration(env, 'IDP_REFRESH_TOKEN_TTL', 7 * DAY),
  /** `IDP_ADMIN_TOKEN_TTL`, default 1h. */
  adminTokenTtlMs: (env) => duration(env, 'IDP_ADMIN_TOKEN_TTL', HOUR),
  /** `IDP_CLIENT_TOKEN_TTL`, default 1h. */
  clientTokenTtlMs: (env) => duration(env, 'IDP_CLIENT_TOKEN_TTL', HOUR),
  /** `IDP_USER_AUDIENCE`, default the issuer. */
  userAudience: (env) => read(env, 'IDP_USER_AUDIENCE') ?? issuerOf(env),
  /** `IDP_WORKERS`: HTTP worker processes; default the CPU count on Postgres, always 1 on PGlite. */
  workers: (env) => {
    const embedded = databaseUrlOf(env) === undefined;
    const workers = integer(env, 'IDP_WORKERS', embedded ? 1 : os.availableParallelism(), 1, 64);
    if (embedded && workers > 1) throw new ConfigError('IDP_WORKERS', 'must be 1 on the embedded PGlite, which one process owns; set DATABASE_URL to run more');
    return workers;
  },
  /** `IDP_LOG_LEVEL`, default `info` (`silent` in tests). */
  logLevel: (env) => oneOf(env, 'IDP_LOG_LEVEL', LOG_LEVELS, 'info', (text) => text),
  /** `IDP_CLIENT_AUDIENCE`, default `$IDP_ISSUER/api`: the audience of a client created without `--audience`. */
  clientDefaultAudience: (env) => read(env, 'IDP_CLIENT_AUDIENCE') ?? `${issuerOf(env)}/api`,
  /**
   * `IDP_CLIENT_SECRET_GRACE`, default 24h: how long the previous secret keeps working after
   * `clients rotate-secret`, so services can be redeployed with the new one (`--grace 0s` after a
   * leak). At most 30 days, the bound `rotate-secret --grace` has too: a leaked secret must not live on for months.
   */
  clientSecretGraceMs: (env) => {
    const ms = duration(env, 'IDP_CLIENT_SECRET_GRACE', DAY);
    if (ms > 30 * DAY) throw new ConfigError('IDP_CLIENT_SECRET_GRACE', `${formatDuration(ms)} is over 30d, the longest a previous secret may keep working`);
    return ms;
  },
  /**
   * Sign-in limits at /auth/v1/token (docs/security.md "Abuse limits and the threat model", after Auth0's
   * brute-force protection); past one, 429 with Retry-After until the window passes. Refused attempts
   * are not counted, so one address can add at most `perEmailIp` failures to an email's count.
   * `IDP_SIGNIN_FAILURES_PER_EMAIL_IP` (10: blocks that pair only), `IDP_SIGNIN_FAILURES_PER_IP` (100
   * across emails: blocks sign-in from the address), `IDP_SIGNIN_FAILURES_PER_EMAIL` (100 from all
   * addresses: blocks that email), `IDP_SIGNIN_FAILURE_WINDOW` (15m).
   */
  signInFailureLimits: (env) =>
    Object.freeze({
      perEmailIp: integer(env, 'IDP_SIGNIN_FAILURES_PER_EMAIL_IP', 10, 1, 1_000_000),
      perIp: integer(env, 'IDP_SIGNIN_FAILURES_PER_IP', 100, 1, 1_000_000),
      perEmail: integer(env, 'IDP_SIGNIN_FAILURES_PER_EMAIL', 100, 1, 1_000_000),
      windowMs: duration(env, 'IDP_SIGNIN_FAILURE_WINDOW', 15 * MINUTE),
    }),
  /** Sign-up limit, every attempt counted: `IDP_SIGNUPS_PER_IP` (20) per `IDP_SIGNUP_WINDOW` (1h). */
  signUpLimits: (env) =>
    Object.freeze({
      perIp: integer(env, 'IDP_SIGNUPS_PER_IP', 20, 1, 1_000_000),
      windowMs: duration(env, 'IDP_SIGNUP_WINDOW', HOUR),
    }),
  /**
   * `IDP_DYNAMIC_REGISTRATION`, default `off`: RFC 7591 registration at POST /oauth/register (docs/agents.md
   * "Dynamic client registration"): `off` (404), `token` (an initial access token: an admin token
   * with `clients:register`) or `open` (anyone, within the registration limit).
   */
  dynamicRegistration: (env) => oneOf(env, 'IDP_DYNAMIC_REGISTRATION', ['off', 'token', 'open'] as const, 'off', (text) => text),
  /** `IDP_DYNAMIC_CLIENT_TTL`, default 30d: a dynamically registered client not used for this long is deleted by the sweep. */
  dynamicClientTtlMs: (env) => duration(env, 'IDP_DYNAMIC_CLIENT_TTL', 30 * DAY),
  /** Registration limit, every registration counted: `IDP_REGISTRATIONS_PER_IP` (20) per `IDP_REGISTRATION_WINDOW` (1h). */
  registrationLimits: (env) =>
    Object.freeze({
      perIp: integer(env, 'IDP_REGISTRATIONS_PER_IP', 20, 1, 1_000_000),
      windowMs: duration(env, 'IDP_REGISTRATION_WINDOW', HOUR),
    }),
  /**
   * Password hashing (argon2id) under a bounded concurrency, so floods never starve the token
   * endpoint: `IDP_PASSWORD_HASH_CONCURRENCY` (1 per process) hashes at once, at most
   * `IDP_PASSWORD_HASH_QUEUE` (32) waiting; past it, 503 with Retry-After.
   */
  passwordHashing: (env) =>
    Object.freeze({
      concurrency: integer(env, 'IDP_PASSWORD_HASH_CONCURRENCY', 1, 1, 64),
      queue: integer(env, 'IDP_PASSWORD_HASH_QUEUE', 32, 0, 100_000),
    }),
  /**
   * `IDP_TRUST_PROXY`, default `false`: which peers may name the client's address in
   * `X-Forwarded-For` (Express's `trust proxy` syntax: a hop count, or addresses, CIDRs and the
   * names loopback, linklocal, uniquelocal).
   */
  trustProxy: (env) => trustProxy(env).fn,
  /** `IDP_TRUST_PROXY` as given. */
  trustProxyText: (env) => trustProxy(env).text,
  /** `IDP_RATE_LIMIT_ALLOWLIST`, default empty: addresses never blocked by a per-address limit. */
  rateLimitAllowlist: (env) => {
    const text = read(env, 'IDP_RATE_LIMIT_ALLOWLIST') ?? '';
    const matches = text === '' ? () => false : addressList('IDP_RATE_LIMIT_ALLOWLIST', text);
    return (address: string) => matches(address, 0);
  },
  /** `IDP_RATE_LIMIT_ALLOWLIST` as given. */
  rateLimitAllowlistText: (env) => read(env, 'IDP_RATE_LIMIT_ALLOWLIST') ?? '',
  /** `IDP_METRICS_PORT` (default 9464; `0` a free port; `off`: none) and `IDP_METRICS_HOST` (default 127.0.0.1). */
  metrics: (env): { readonly port: number; readonly host: string } | undefined => {
    if ((read(env, 'IDP_METRICS_PORT') ?? '9464') === 'off') return undefined;
    return Object.freeze({ port: integer(env, 'IDP_METRICS_PORT', 9464, 0, 65535), host: read(env, 'IDP_METRICS_HOST') ?? '127.0.0.1' });
  },
  /** `IDP_REQUEST_TIMEOUT`, default 30s: the longest a client may take to send one request's headers and body. */
  requestTimeoutMs: (env) => duration(env, 'IDP_REQUEST_TIMEOUT', 30 * SECOND),
  /** `IDP_REFRESH_REUSE_INTERVAL`, default 0s: a refresh token presented again this soon after its rotation gets the current pair. */
  refreshReuseIntervalMs: (env) => optionalDuration(env, 'IDP_REFRESH_REUSE_INTERVAL', 0),
  /** `IDP_API_KEY_MAX_TTL`, default 365d; `never` (undefined here) allows keys without expiry. */
  apiKeyMaxTtlMs: (env) => (read(env, 'IDP_API_KEY_MAX_TTL') === 'never' ? undefined : duration(env, 'IDP_API_KEY_MAX_TTL', 365 * DAY)),
  /**
   * `IDP_AUTH_CODE_TTL`, default 60s, at most 10m (RFC 6749 §4.1.2): how long an authorization code
   * may be redeemed (docs/sign-in.md "Sign-in for applications".
   */
  authCodeTtlMs: (env) => {
    const ms = duration(env, 'IDP_AUTH_CODE_TTL', MINUTE);
    if (ms > 10 * MINUTE) throw new ConfigError('IDP_AUTH_CODE_TTL', `${formatDuration(ms)} is over 10m, the longest an authorization code may live`);
    return ms;
  },
  /** `IDP_SESSION_TTL`, default 12h: the absolute lifetime of a hosted pages' browser session. */
  sessionTtlMs: (env) => duration(env, 'IDP_SESSION_TTL', 12 * HOUR),
  /** `IDP_SESSION_IDLE_TTL`, default 1h, at most IDP_SESSION_TTL: a browser session unused this long is over. */
  sessionIdleTtlMs: (env) => duration(env, 'IDP_SESSION_IDLE_TTL', HOUR),
  /**
   * `IDP_ID_TOKEN_TTL`, default 10m: the lifetime of an ID token. Not part of the key retention (docs/configuration.md
   * "Configuration"): a relying party checks an ID token once, as it receives it.
   */
  idTokenTtlMs: (env) => duration(env, 'IDP_ID_TOKEN_TTL', 10 * MINUTE),
  /**
   * `IDP_MAX_DELEGATION_DEPTH`, default 3 (1 to 10): the most actors one delegated token may carry in
   * its nested `act` chain (docs/delegation.md "Delegation"; a deeper exchange is refused.
   */
  maxDelegationDepth: (env) => integer(env, 'IDP_MAX_DELEGATION_DEPTH', 3, 1, 10),
  /** `IDP_BRAND_NAME`, default `Sign in`: the name the hosted pages show above each page's heading and in its title. */
  brandName: (env) => {
    const text = read(env, 'IDP_BRAND_NAME') ?? 'Sign in';
    try {
      return checkName(text, 'the brand name', 80);
    } catch (error) {
      throw new ConfigError('IDP_BRAND_NAME', (error as Error).message);
    }
  },
  /**
   * Abuse limits on failed client authentication at /oauth/*: `IDP_TOKEN_FAILURES_PER_CLIENT` (20 per
   * `client_id`), `IDP_TOKEN_FAILURES_PER_IP` (20 per address), per `IDP_TOKEN_FAILURE_WINDOW` (1m).
   */
  tokenFailureLimits: (env) =>
    Object.freeze({
      perClient: integer(env, 'IDP_TOKEN_FAILURES_PER_CLIENT', 20, 1, 1_000_000),
      perIp: integer(env, 'IDP_TOKEN_FAILURES_PER_IP', 20, 1, 1_000_000),
      windowMs: duration(env, 'IDP_TOKEN_FAILURE_WINDOW', MINUTE),
    }),
} satisfies Record<string, (env: Env) => unknown>;

/** The configuration: one read-only member per entry of the settings table above. */
export type Config = { readonly [K in keyof typeof SETTINGS]: ReturnType<(typeof SETTINGS)[K]> };

/** Reads and checks the whole configuration; throws a ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const config = Object.fromEntries(Object.entries(SETTINGS).map(([name, setting]) => [name, setting(env)])) as Config;
  crossChecks(config, env);
  return Object.freeze(config);
}

/** The refusals of docs/configuration.md "Configuration" between settings: each would make verifiers reject valid tokens, or production unsafe. */
function crossChecks(config: Config, env: Env): void {
  const { prepublishMs, jwksMaxAgeSeconds, rotationIntervalMs, retentionMs } = config;
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
  const longest = longestSignedTtl(env);
  if (retentionMs < longest) {
    throw new ConfigError('IDP_KEY_RETENTION', `${formatDuration(retentionMs)} is under the longest token TTL (${formatDuration(longest)}): tokens would outlive their key`);
  }
  if (config.sessionIdleTtlMs > config.sessionTtlMs) {
    throw new ConfigError(
      'IDP_SESSION_IDLE_TTL',
      `${formatDuration(config.sessionIdleTtlMs)} is over IDP_SESSION_TTL (${formatDuration(config.sessionTtlMs)}), which ends every session first`,
    );
  }
  if (config.production) {
    const missing = [
      read(env, 'IDP_ISSUER') === undefined ? 'IDP_ISSUER' : undefined,
      config.mek === undefined && config.mekFile === undefined ? 'IDP_MEK (or IDP_MEK_FILE)' : undefined,
      config.databaseUrl === undefined ? 'DATABASE_URL' : undefined,
    ].filter((name): name is string => name !== undefined);
    if (missing.length > 0) throw new ConfigError(missing[0] as string, `required in production (missing: ${missing.join(', ')})`);
  }
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
