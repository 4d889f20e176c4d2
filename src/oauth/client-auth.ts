import type { ClientCache } from '../clients/cache';
import type { Client } from '../clients/repository';
import { hashClientSecret } from '../clients/secret';
import { fingerprint, type AbuseLimits } from '../ratelimit/policies';
import { InvalidClient, InvalidRequest, TemporarilyUnavailable, TooManyFailures } from './errors';
import type { FormParams } from './form';
import crypto from 'node:crypto';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

export const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post'];

export interface ClientCredentials {
  method: ClientAuthMethod;
  clientId: string;
  clientSecret: string;
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// Ids are generated base64url; anything outside printable ASCII is unknown without asking the database.
const CLIENT_ID = /^[\x21-\x7e]{1,256}$/;

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before Base64. */
function formDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw new InvalidClient('malformed Basic credentials', 'bad percent-encoding');
  }
}

/**
 * The credentials a request presents, by exactly one method: the Basic header or the body. Undefined
 * when none is presented. A malformed Basic header is `invalid_client`; two methods, `invalid_request`.
 */
export function readClientCredentials(authorization: string | undefined, form: FormParams): ClientCredentials | undefined {
  const bodyId = form.get('client_id');
  const bodySecret = form.get('client_secret');
  if (authorization !== undefined) {
    const space = authorization.indexOf(' ');
    const scheme = space < 0 ? authorization : authorization.slice(0, space);
    if (scheme.toLowerCase() !== 'basic') throw new InvalidClient('unsupported authentication scheme; use Basic or client_secret_post');
    if (bodySecret !== undefined) throw new InvalidRequest('use exactly one client authentication method (Basic header or client_secret in the body)');
    const encoded = authorization.slice(space + 1).trim();
    if (!BASE64.test(encoded)) throw new InvalidClient('malformed Basic credentials');
    const decoded = Buffer.from(encoded, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new InvalidClient('malformed Basic credentials');
    const clientId = formDecode(decoded.slice(0, colon));
    const clientSecret = formDecode(decoded.slice(colon + 1));
    if (clientId === '' || clientSecret === '') throw new InvalidClient('malformed Basic credentials');
    if (bodyId !== undefined && bodyId !== clientId) throw new InvalidRequest('client_id in the body differs from the Basic credentials');
    return { method: 'client_secret_basic', clientId, clientSecret };
  }
  if (bodySecret !== undefined && bodyId === undefined) throw new InvalidClient('client_secret without client_id');
  if (bodyId === undefined) return undefined;
  if (bodySecret === undefined) throw new InvalidClient('client authentication required: this server has no public clients');
  return { method: 'client_secret_post', clientId: bodyId, clientSecret: bodySecret };
}

export interface ClientAuthenticatorOptions {
  clients: ClientCache;
  limits: Pick<AbuseLimits, 'clientAuthenticationFailed'>;
  now: () => Date;
}

/**
 * Authenticates clients against the in-memory client cache (SPEC §7). The limits are consulted on
 * the failure path only: a correct secret of an active client is never refused, whatever the
 * counters of its client_id or its address say, and a successful request touches neither the
 * database nor the limiter. A failure is answered `invalid_client`, or `429` once its client_id or
 * address is over its limit.
 */
export class ClientAuthenticator {
  constructor(private readonly options: ClientAuthenticatorOptions) {}

  /** Throws InvalidClient (or TooManyFailures) unless the credentials are those of an active client. */
  async authenticate(credentials: ClientCredentials | undefined, address: string): Promise<Client> {
    if (!credentials) return this.fail(address, undefined, new InvalidClient('client authentication required'));
    if (!CLIENT_ID.test(credentials.clientId)) {
      return this.fail(address, undefined, new InvalidClient('client authentication failed', 'malformed client_id'));
    }
    let client: Client | undefined;
    try {
      client = await this.options.clients.get(credentials.clientId);
    } catch (error) {
      // A client not in memory while the database is unreachable: the caller should retry, not see a 500.
      throw new TemporarilyUnavailable('the client store is unreachable; retry shortly', `client lookup failed: ${(error as Error).message}`);
    }
    // An unknown id is neither logged nor counted verbatim: it may be a secret pasted into the wrong field.
    if (!client) return this.fail(address, undefined, new InvalidClient('client authentication failed', `unknown client ${fingerprint(credentials.clientId)}`));
    if (!this.secretMatches(client, credentials.clientSecret)) {
      return this.fail(address, client.id, new InvalidClient('client authentication failed', `wrong secret for client ${client.id}`));
    }
    if (client.disabledAt !== null) return this.fail(address, client.id, new InvalidClient('client is disabled', `client ${client.id} is disabled`));
    if (client.tenantDisabled) {
      return this.fail(address, client.id, new InvalidClient('client is disabled', `tenant ${client.tenantId} of client ${client.id} is disabled`));
    }
    return client;
  }

  /** One hash, compared in constant time with the current secret and, during its grace period, the previous one. */
  private secretMatches(client: Client, presented: string): boolean {
    const digest = hashClientSecret(presented);
    const current = crypto.timingSafeEqual(digest, client.secretHash);
    const previous =
      client.previousSecretHash !== null &&
      client.previousSecretExpiresAt !== null &&
      client.previousSecretExpiresAt.getTime() > this.options.now().getTime() &&
      crypto.timingSafeEqual(digest, client.previousSecretHash);
    return current || previous;
  }

  private async fail(address: string, knownClientId: string | undefined, error: InvalidClient): Promise<never> {
    const retryAfter = await this.options.limits.clientAuthenticationFailed(address, knownClientId);
    if (retryAfter > 0) throw new TooManyFailures(retryAfter);
    throw error;
  }
}

