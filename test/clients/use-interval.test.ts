import { CLIENT_USE_INTERVAL_MS, clientUseInterval } from '../../src/clients/cache';

describe('clientUseInterval: how often a client use is written, for the sweep of unused clients', () => {
  it('is an hour for the default TTL (30 days)', () => {
    expect(CLIENT_USE_INTERVAL_MS).toBe(3_600_000);
    expect(clientUseInterval(30 * 86_400_000)).toBe(3_600_000);
  });

  it('is a tenth of a shorter TTL, so that a client in use is never older than the TTL when swept', () => {
    expect(clientUseInterval(600_000)).toBe(60_000);
    expect(clientUseInterval(5_000)).toBe(1_000);
  });
});
