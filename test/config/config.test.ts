import { ConfigError, configWarnings, loadConfig } from '../../src/config';
import { formatDuration, parseDuration } from '../../src/config/duration';

const problem = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (error) {
    return error as ConfigError;
  }
  throw new Error('configuration was accepted');
};

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: '0.0.0.0',
      databaseUrl: undefined,
      dataDir: '.idp/data',
      issuer: 'http://localhost:3000',
      keySize: 2048,
      rotationCron: '*/5 * * * *',
      rotationIntervalMs: 30 * 86_400_000,
      prepublishMs: 86_400_000,
      retentionMs: 3_600_000 + 600_000,
      jwksMaxAgeSeconds: 300,
      accessTokenTtlMs: 3_600_000,
      refreshTokenTtlMs: 7 * 86_400_000,
      userAudience: 'http://localhost:3000',
      workers: 1,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('derives the retention from the longest signed-token TTL', () => {
    expect(loadConfig({ IDP_ADMIN_TOKEN_TTL: '2h' }).retentionMs).toBe(2 * 3_600_000 + 600_000);
  });

  it('the sign-in settings: defaults, and the values given', () => {
    expect(loadConfig({})).toMatchObject({ authCodeTtlMs: 60_000, sessionTtlMs: 12 * 3_600_000, sessionIdleTtlMs: 3_600_000, idTokenTtlMs: 600_000, brandName: 'Sign in' });
    const config = loadConfig({ IDP_AUTH_CODE_TTL: '30s', IDP_SESSION_TTL: '8h', IDP_SESSION_IDLE_TTL: '8h', IDP_ID_TOKEN_TTL: '5m', IDP_BRAND_NAME: ' Acme Accounts ' });
    expect(config).toMatchObject({ authCodeTtlMs: 30_000, sessionTtlMs: 8 * 3_600_000, sessionIdleTtlMs: 8 * 3_600_000, idTokenTtlMs: 300_000, brandName: 'Acme Accounts' });
  });

  it('the dynamic registration settings: defaults, and the values given', () => {
    expect(loadConfig({})).toMatchObject({ dynamicRegistration: 'off', dynamicClientTtlMs: 30 * 86_400_000, registrationLimits: { perIp: 20, windowMs: 3_600_000 } });
    const config = loadConfig({ IDP_DYNAMIC_REGISTRATION: 'token', IDP_DYNAMIC_CLIENT_TTL: '7d', IDP_REGISTRATIONS_PER_IP: '5', IDP_REGISTRATION_WINDOW: '10m' });
    expect(config).toMatchObject({ dynamicRegistration: 'token', dynamicClientTtlMs: 7 * 86_400_000, registrationLimits: { perIp: 5, windowMs: 600_000 } });
    expect(loadConfig({ IDP_DYNAMIC_REGISTRATION: 'open' }).dynamicRegistration).toBe('open');
  });

  it('IDP_MAX_DELEGATION_DEPTH: 3 by default, 1 to 10', () => {
    expect(loadConfig({}).maxDelegationDepth).toBe(3);
    expect(loadConfig({ IDP_MAX_DELEGATION_DEPTH: '1' }).maxDelegationDepth).toBe(1);
    expect(loadConfig({ IDP_MAX_DELEGATION_DEPTH: '10' }).maxDelegationDepth).toBe(10);
    for (const text of ['0', '11', '2.5', 'deep']) {
      expect(problem({ IDP_MAX_DELEGATION_DEPTH: text })).toMatchObject({ variable: 'IDP_MAX_DELEGATION_DEPTH', message: expect.stringContaining('whole number from 1 to 10') });
    }
  });

  it.each([
    [{ IDP_KEY_PREPUBLISH: '9m', IDP_JWKS_MAX_AGE: '300' }, 'IDP_KEY_PREPUBLISH', 'under 2 × IDP_JWKS_MAX_AGE'],
    [{ IDP_KEY_ROTATION_INTERVAL: '1h', IDP_KEY_PREPUBLISH: '2h' }, 'IDP_KEY_ROTATION_INTERVAL', 'under IDP_KEY_PREPUBLISH'],
    [{ IDP_KEY_RETENTION: '30m' }, 'IDP_KEY_RETENTION', 'under the longest token TTL'],
    [{ IDP_KEY_SIZE: '1024' }, 'IDP_KEY_SIZE', 'not one of 2048, 3072, 4096'],
    [{ IDP_ACCESS_TOKEN_TTL: 'soon' }, 'IDP_ACCESS_TOKEN_TTL', 'not a positive duration'],
    [{ IDP_ROTATION_CRON: 'every day' }, 'IDP_ROTATION_CRON', 'not a cron expression'],
    [{ PORT: 'http' }, 'PORT', 'not a whole number'],
    [{ IDP_ISSUER: 'ftp://x' }, 'IDP_ISSUER', 'not an http(s) URL'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL', 'postgres://'],
    [{ IDP_WORKERS: '4' }, 'IDP_WORKERS', 'must be 1 on the embedded PGlite'],
  ])('refuses %j naming the variable in one line', (env, variable, text) => {
    const error = problem(env as Record<string, string>);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
    expect(error.message).toContain(text);
    expect(error.message).not.toContain('\n');
  });

  it('refuses to start in production without issuer, MEK and database, naming what is missing', () => {
    const error = problem({ NODE_ENV: 'production' });
    expect(error.message).toContain('IDP_ISSUER');
    expect(error.message).toContain('IDP_MEK');
    expect(error.message).toContain('DATABASE_URL');
    const onlyMek = problem({ NODE_ENV: 'production', IDP_ISSUER: 'https://id.example', DATABASE_URL: 'postgres://db/idp' });
    expect(onlyMek.variable).toBe('IDP_MEK (or IDP_MEK_FILE)');
  });

  it('warns in production about a pre-publication under 24h, and accepts small values outside production', () => {
    const production = loadConfig({
      NODE_ENV: 'production',
      IDP_ISSUER: 'https://id.example',
      DATABASE_URL: 'postgres://db/idp',
      IDP_MEK: 'k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',
      IDP_KEY_PREPUBLISH: '12h',
    });
    expect(configWarnings(production)).toEqual([expect.stringContaining('IDP_KEY_PREPUBLISH is 12h')]);
    const test = loadConfig({ IDP_JWKS_MAX_AGE: '1', IDP_KEY_PREPUBLISH: '2s', IDP_KEY_ROTATION_INTERVAL: '4s', IDP_ACCESS_TOKEN_TTL: '5s', IDP_ADMIN_TOKEN_TTL: '5s', IDP_CLIENT_TOKEN_TTL: '5s' });
    expect(test.prepublishMs).toBe(2000);
    expect(test.retentionMs).toBe(5000 + 600_000);
    expect(configWarnings(test)).toEqual([]);
  });

  it('parses and formats durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('1.5h')).toBeUndefined();
    expect(parseDuration('-1s')).toBeUndefined();
    expect(formatDuration(86_400_000)).toBe('1d');
    expect(formatDuration(90_000)).toBe('90s');
  });
});

describe('configuration of the hardening (docs/configuration.md "Configuration", "Abuse limits")', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    expect(config.signInFailureLimits).toEqual({ perEmailIp: 10, perIp: 100, perEmail: 100, windowMs: 15 * 60_000 });
    expect(config.signUpLimits).toEqual({ perIp: 20, windowMs: 3_600_000 });
    expect(config.passwordHashing).toEqual({ concurrency: 1, queue: 32 });
    expect(config.metrics).toEqual({ port: 9464, host: '127.0.0.1' });
    expect(config.requestTimeoutMs).toBe(30_000);
    expect(config.refreshReuseIntervalMs).toBe(0);
    expect(config.apiKeyMaxTtlMs).toBe(365 * 86_400_000);
    expect(config.trustProxyText).toBe('false');
    expect(config.trustProxy('127.0.0.1', 0)).toBe(false);
    expect(config.rateLimitAllowlist('127.0.0.1')).toBe(false);
    expect(config.clientCacheSize).toBe(10_000);
    expect(loadConfig({ IDP_CLIENT_CACHE_SIZE: '100000' }).clientCacheSize).toBe(100_000);
  });

  it('reads IDP_TRUST_PROXY as Express does: a hop count, or addresses, CIDRs and names', () => {
    const hops = loadConfig({ IDP_TRUST_PROXY: '2' }).trustProxy;
    expect([hops('203.0.113.1', 0), hops('203.0.113.1', 1), hops('203.0.113.1', 2)]).toEqual([true, true, false]);
    const named = loadConfig({ IDP_TRUST_PROXY: 'loopback, 10.0.0.0/8' }).trustProxy;
    expect([named('127.0.0.1', 0), named('10.1.2.3', 0), named('203.0.113.1', 0)]).toEqual([true, true, false]);
  });

  it('reads IDP_RATE_LIMIT_ALLOWLIST, IDP_METRICS_PORT=off and 0, a 0s reuse interval, a never-expiring API key maximum', () => {
    const config = loadConfig({ IDP_RATE_LIMIT_ALLOWLIST: '192.0.2.0/24,2001:db8::/32', IDP_METRICS_PORT: 'off', IDP_REFRESH_REUSE_INTERVAL: '10s', IDP_API_KEY_MAX_TTL: 'never' });
    expect([config.rateLimitAllowlist('192.0.2.77'), config.rateLimitAllowlist('2001:db8::1'), config.rateLimitAllowlist('198.51.100.1')]).toEqual([true, true, false]);
    expect(config.metrics).toBeUndefined();
    expect(config.refreshReuseIntervalMs).toBe(10_000);
    expect(config.apiKeyMaxTtlMs).toBeUndefined();
    expect(loadConfig({ IDP_METRICS_PORT: '0', IDP_METRICS_HOST: '::1' }).metrics).toEqual({ port: 0, host: '::1' });
    expect(loadConfig({ IDP_REFRESH_REUSE_INTERVAL: '0s' }).refreshReuseIntervalMs).toBe(0);
  });

  it.each([
    [{ IDP_TRUST_PROXY: 'true' }, 'IDP_TRUST_PROXY', /every client choose its own address/],
    [{ IDP_TRUST_PROXY: 'my-proxy' }, 'IDP_TRUST_PROXY', /not an address or CIDR/],
    [{ IDP_TRUST_PROXY: '99' }, 'IDP_TRUST_PROXY', /not a plausible proxy chain/],
    [{ IDP_RATE_LIMIT_ALLOWLIST: '10.0.0.0/99' }, 'IDP_RATE_LIMIT_ALLOWLIST', /./],
    [{ IDP_METRICS_PORT: 'public' }, 'IDP_METRICS_PORT', /whole number/],
    [{ IDP_REQUEST_TIMEOUT: '0s' }, 'IDP_REQUEST_TIMEOUT', /positive duration/],
    [{ IDP_REFRESH_REUSE_INTERVAL: 'soon' }, 'IDP_REFRESH_REUSE_INTERVAL', /duration/],
    [{ IDP_SIGNIN_FAILURES_PER_EMAIL_IP: '0' }, 'IDP_SIGNIN_FAILURES_PER_EMAIL_IP', /whole number/],
    [{ IDP_PASSWORD_HASH_CONCURRENCY: '0' }, 'IDP_PASSWORD_HASH_CONCURRENCY', /whole number/],
    [{ IDP_API_KEY_MAX_TTL: 'forever' }, 'IDP_API_KEY_MAX_TTL', /positive duration/],
    [{ IDP_CLIENT_SECRET_GRACE: '31d' }, 'IDP_CLIENT_SECRET_GRACE', /over 30d/],
    [{ IDP_CLIENT_CACHE_SIZE: '0' }, 'IDP_CLIENT_CACHE_SIZE', /whole number/],
    [{ IDP_AUTH_CODE_TTL: '11m' }, 'IDP_AUTH_CODE_TTL', /over 10m/],
    [{ IDP_AUTH_CODE_TTL: '0s' }, 'IDP_AUTH_CODE_TTL', /positive duration/],
    [{ IDP_SESSION_TTL: 'a day' }, 'IDP_SESSION_TTL', /positive duration/],
    [{ IDP_SESSION_IDLE_TTL: '13h' }, 'IDP_SESSION_IDLE_TTL', /over IDP_SESSION_TTL/],
    [{ IDP_SESSION_TTL: '30m', IDP_SESSION_IDLE_TTL: '31m' }, 'IDP_SESSION_IDLE_TTL', /over IDP_SESSION_TTL/],
    [{ IDP_ID_TOKEN_TTL: '-1m' }, 'IDP_ID_TOKEN_TTL', /positive duration/],
    [{ IDP_BRAND_NAME: 'Acme\u0007' }, 'IDP_BRAND_NAME', /control character/],
    [{ IDP_BRAND_NAME: 'x'.repeat(81) }, 'IDP_BRAND_NAME', /1 to 80 characters/],
    [{ IDP_DYNAMIC_REGISTRATION: 'on' }, 'IDP_DYNAMIC_REGISTRATION', /not one of off, token, open/],
    [{ IDP_DYNAMIC_CLIENT_TTL: 'never' }, 'IDP_DYNAMIC_CLIENT_TTL', /positive duration/],
    [{ IDP_REGISTRATIONS_PER_IP: '0' }, 'IDP_REGISTRATIONS_PER_IP', /whole number/],
    [{ IDP_REGISTRATION_WINDOW: '0s' }, 'IDP_REGISTRATION_WINDOW', /positive duration/],
  ])('refuses %j naming the variable', (env, variable, message) => {
    const error = problem(env as Record<string, string>);
    expect(error.variable).toBe(variable);
    expect(error.message).toMatch(message);
  });
});
