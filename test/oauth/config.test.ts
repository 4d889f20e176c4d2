import { ConfigError, loadConfig } from '../../src/config';

describe('OAuth configuration', () => {
  it('documents its defaults: client audience, secret grace, failure limits', () => {
    const config = loadConfig({ IDP_ISSUER: 'https://idp.example' });
    expect(config.clientDefaultAudience).toBe('https://idp.example/api');
    expect(config.clientSecretGraceMs).toBe(86_400_000);
    expect(config.tokenFailureLimits).toEqual({ perClient: 20, perIp: 20, windowMs: 60_000 });
  });

  it('reads the variables', () => {
    const config = loadConfig({
      IDP_CLIENT_AUDIENCE: 'https://api.example',
      IDP_CLIENT_SECRET_GRACE: '15m',
      IDP_TOKEN_FAILURES_PER_CLIENT: '5',
      IDP_TOKEN_FAILURES_PER_IP: '50',
      IDP_TOKEN_FAILURE_WINDOW: '5m',
    });
    expect(config.clientDefaultAudience).toBe('https://api.example');
    expect(config.clientSecretGraceMs).toBe(900_000);
    expect(config.tokenFailureLimits).toEqual({ perClient: 5, perIp: 50, windowMs: 300_000 });
  });

  it.each([
    [{ IDP_CLIENT_SECRET_GRACE: 'later' }, 'IDP_CLIENT_SECRET_GRACE'],
    [{ IDP_TOKEN_FAILURES_PER_CLIENT: '0' }, 'IDP_TOKEN_FAILURES_PER_CLIENT'],
    [{ IDP_TOKEN_FAILURES_PER_IP: 'many' }, 'IDP_TOKEN_FAILURES_PER_IP'],
    [{ IDP_TOKEN_FAILURE_WINDOW: '-1m' }, 'IDP_TOKEN_FAILURE_WINDOW'],
  ])('refuses %p naming %s', (env, variable) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    try {
      loadConfig(env);
    } catch (error) {
      expect((error as ConfigError).variable).toBe(variable);
    }
  });
});
