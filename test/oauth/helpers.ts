import type { Client } from '../../src/clients/repository';
import { clientPolicy, createClient } from '../../src/clients/service';
import type { Composition as Composition } from '../../src/compose';

/** RFC 6749 §2.3.1: form-urlencode id and secret, then Base64. */
export function basic(clientId: string, secret: string): string {
  const encode = (text: string) => encodeURIComponent(text).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`;
}

export interface TestClient {
  client: Client;
  id: string;
  secret: string;
  authorization: string;
}

/** A client created through the same service the CLI uses. */
export async function makeClient(
  services: Composition,
  input: { name?: string; scopes?: string[]; audiences?: string[]; tenantId?: string; tokenTtlSeconds?: number } = {},
): Promise<TestClient> {
  const { client, secret } = await createClient(
    services.handle.db,
    {
      name: input.name ?? 'test service',
      scopes: input.scopes ?? ['read', 'write'],
      audiences: input.audiences ?? ['https://api.test'],
      tenantId: input.tenantId ?? null,
      tokenTtlSeconds: input.tokenTtlSeconds ?? null,
    },
    clientPolicy(services.config),
    { actor: 'test', now: services.now() },
  );
  return { client, id: client.id, secret, authorization: basic(client.id, secret) };
}

/** Polls until `check` passes (cross-instance propagation); fails after `timeoutMs`. */
export async function eventually(check: () => Promise<void>, timeoutMs = 1_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
