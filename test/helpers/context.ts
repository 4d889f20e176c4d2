import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig, type Config } from '../../src/config';
import type { DatabaseHandle } from '../../src/db';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { compose, createServer, type Composition } from '../../src/compose';
import type { TestDatabase } from './database';

/** A test key ring: a fresh random MEK per call, never a real key. */
export function testMek(id = 'test-mek-1'): string {
  return `${id}:${crypto.randomBytes(32).toString('base64')}`;
}

/** Short lifetimes so whole lifecycles run in seconds; every one of them is still a valid configuration. */
export const FAST_LIFECYCLE: Record<string, string> = {
  IDP_JWKS_MAX_AGE: '1',
  IDP_KEY_PREPUBLISH: '2s',
  IDP_KEY_ROTATION_INTERVAL: '4s',
  IDP_ACCESS_TOKEN_TTL: '5s',
  IDP_ADMIN_TOKEN_TTL: '5s',
  IDP_CLIENT_TOKEN_TTL: '5s',
  IDP_KEY_RETENTION: '6s',
};

export function testConfig(database: TestDatabase, env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    IDP_LOG_LEVEL: 'silent',
    IDP_ISSUER: 'http://idp.test',
    IDP_MEK: env.IDP_MEK ?? testMek(),
    ...database.env,
    ...env,
  });
}

/** A fake clock: tests move time instead of waiting for it. */
export class FakeClock {
  constructor(private current = new Date('2026-11-22T12:00:00.000Z')) {}
  now = (): Date => new Date(this.current.getTime());
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

export interface TestServer {
  url: string;
  services: Composition;
  server: http.Server;
  close(): Promise<void>;
}

/** Log lines written into an array (parsed), for tests that check what is and is not logged. */
export function captureLogs(): { lines: Array<Record<string, unknown>>; text: () => string; stream: { write(line: string): void } } {
  const raw: string[] = [];
  return {
    get lines() {
      return raw.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    text: () => raw.join(''),
    stream: { write: (line: string) => void raw.push(line) },
  };
}

/** The real service on a real listening socket (port 0), over the given database. */
export async function startTestServer(
  config: Config,
  handle: DatabaseHandle,
  now?: () => Date,
  options: { logs?: ReturnType<typeof captureLogs>; port?: number } = {},
): Promise<TestServer> {
  const logger = createLogger(config.logLevel, options.logs?.stream);
  const metrics = createMetrics();
  const services = await compose({ config, logger, metrics, handle, now });
  const server = createServer({ config, logger, metrics, composition: () => services });
  // A fixed port lets IDP_ISSUER be the server's real URL (clients that discover the issuer, then call its endpoints).
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    services,
    server,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await services.close();
    },
  };
}
