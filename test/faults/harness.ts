import path from 'node:path';
import { clientPolicy, createClient } from '../../src/clients/service';
import { loadConfig } from '../../src/config';
import { KeyRingMekProvider, parseKeyRing } from '../../src/crypto/mek';
import type { DatabaseHandle } from '../../src/db';
import { migrateToLatest } from '../../src/db/migrate';
import { KeyLifecycle } from '../../src/keys/lifecycle';
import { createLogger } from '../../src/observability/logger';
import { StrictVerifier as BaseVerifier } from '../../scripts/lib/strict-verifier';
import { basic } from '../oauth/helpers';
import { freePort, getJson, spawnServer, waitFor, type Child } from '../multiprocess/processes';

export { headerKid } from '../../scripts/lib/strict-verifier';

const FIXTURES = path.resolve(__dirname, '../fixtures');
export const ISSUER = 'http://idp.faults.test';

/** NODE_OPTIONS that preload test fixtures (a drifted clock, a hang inside a key transition) into a server. */
export function preload(...fixtures: Array<'clock-offset' | 'hang-in-rotation'>): string {
  return fixtures.map((f) => `--require ${path.join(FIXTURES, `${f}.js`)}`).join(' ');
}

export interface Server {
  url: string;
  child: Child;
}

/** The compiled server (dist/src/main.js) with exactly `env` plus a port, ready (/readyz 200) or the test fails. */
export async function startServer(env: Record<string, string | undefined>): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawnServer({ NODE_ENV: 'test', IDP_ISSUER: ISSUER, HOST: '127.0.0.1', IDP_WORKERS: '1', IDP_LOG_LEVEL: 'info', ...env, PORT: String(port) });
  await waitFor(
    `the server on ${url} is ready`,
    async () => {
      if (child.process.exitCode !== null) throw new Error(`the server exited with ${child.process.exitCode}:\n${child.output()}`);
      return (await getJson(`${url}/readyz`)).status === 200 ? true : undefined;
    },
    60_000,
    100,
  );
  return { url, child };
}

export interface SeededClient {
  id: string;
  authorization: string;
}

/**
 * Clients created before any server starts: their creation is announced to no one, so a server's
 * first token request reads and keeps them with no notification arriving afterwards.
 */
export async function seedClients(handle: DatabaseHandle, count: number): Promise<SeededClient[]> {
  const policy = clientPolicy(loadConfig({ NODE_ENV: 'test', IDP_ISSUER: ISSUER }));
  const clients: SeededClient[] = [];
  for (let i = 0; i < count; i++) {
    const { client, secret } = await createClient(
      handle.db,
      { name: `fault client ${i}`, scopes: ['read'], audiences: ['https://api.faults.test'] },
      policy,
      { actor: 'test', now: new Date() },
    );
    clients.push({ id: client.id, authorization: basic(client.id, secret) });
  }
  return clients;
}

/** Migrated, with its first keys (made on the database's clock) and `clients` clients, before any server starts. */
export async function prepare(handle: DatabaseHandle, mek: string, clients: number, env: Record<string, string> = {}): Promise<SeededClient[]> {
  await migrateToLatest(handle);
  const lifecycle = new KeyLifecycle({
    db: handle.db,
    mek: new KeyRingMekProvider(parseKeyRing(mek, 'test')),
    policy: loadConfig({ NODE_ENV: 'test', IDP_MEK: mek, ...env }),
    logger: createLogger('silent'),
  });
  await lifecycle.check('startup');
  return seedClients(handle, clients);
}

export interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** POST /oauth/token (client_credentials). A transport failure or a timeout throws. */
export async function token(url: string, authorization: string, timeoutMs: number): Promise<Answer> {
  const response = await fetch(`${url}/oauth/token`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials',
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The strict verifier of the fault tests: honours the JWKS max-age and never refetches on an unknown `kid`. */
export class StrictVerifier extends BaseVerifier {
  constructor() {
    super(ISSUER);
  }
}

/** What a load loop saw, per kind of request. */
export interface LoadRecord {
  statuses: Map<string, number[]>;
  /** Requests that threw (connection refused, reset, or no answer within the timeout), by kind. */
  transportErrors: Map<string, string[]>;
}

/**
 * Runs `concurrency` loops, each calling `step` again and again until `stop()`; `step` records what
 * it sees. Waiting for the loops to end is bounded by the requests' own timeouts.
 */
export function runLoad(concurrency: number, step: (loop: number) => Promise<void>): { stop(): Promise<void> } {
  let running = true;
  const loops = Array.from({ length: concurrency }, async (_, loop) => {
    while (running) await step(loop);
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

export function record(): LoadRecord & { add(kind: string, status: number): void; fail(kind: string, error: unknown): void; count(kind: string): number } {
  const statuses = new Map<string, number[]>();
  const transportErrors = new Map<string, string[]>();
  return {
    statuses,
    transportErrors,
    add(kind, status) {
      statuses.set(kind, [...(statuses.get(kind) ?? []), status]);
    },
    fail(kind, error) {
      const text = error instanceof Error ? `${error.name}: ${error.message}${error.cause ? ` (${String((error.cause as Error).message ?? error.cause)})` : ''}` : String(error);
      transportErrors.set(kind, [...(transportErrors.get(kind) ?? []), text]);
    },
    count(kind) {
      return statuses.get(kind)?.length ?? 0;
    },
  };
}

/** Log lines of a server's output (JSON lines only). */
export function logLines(output: string): Array<Record<string, unknown> & { level: number; msg: string }> {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown> & { level: number; msg: string });
}
