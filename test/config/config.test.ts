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
