import type { IncomingMessage } from 'node:http';
import type { ClientCache } from '../clients/cache';
import type { Client } from '../clients/repository';
import { hashClientSecret } from '../clients/secret';
import type { FailureLimiter, FailureRule } from '../ratelimit';
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

export interface ClientAuthLimits {
  perClient: FailureRule;
  perIp: FailureRule;
}

export interface ClientAuthenticatorOptions {
  clients: ClientCache;
  limiter: FailureLimiter;
  limits: ClientAuthLimits;
  now: () => Date;
}

/**
 * Authenticates clients against the in-memory client cache; counts failures per client_id and per
 * IP (SPEC §7). A successful request touches neither the database nor the limiter's store: the
 * block check is a map lookup, and failures are counted only on the failure path.
 */
export class ClientAuthenticator {
  constructor(private readonly options: ClientAuthenticatorOptions) {}

  /** Throws InvalidClient (or TooManyFailures) unless the credentials are those of an active client. */
  async authenticate(credentials: ClientCredentials | undefined, ip: string): Promise<Client> {
    const ipKey = `oauth:ip:${ip}`;
    const wellFormed = credentials !== undefined && CLIENT_ID.test(credentials.clientId);
    const clientKey = wellFormed ? `oauth:client:${credentials.clientId}` : undefined;
    const retryAfter = this.options.limiter.retryAfterSeconds(clientKey ? [clientKey, ipKey] : [ipKey]);
    if (retryAfter > 0) throw new TooManyFailures(retryAfter);

    if (!credentials) return this.fail(ipKey, undefined, new InvalidClient('client authentication required'));
    if (!wellFormed) return this.fail(ipKey, undefined, new InvalidClient('client authentication failed', 'malformed client_id'));
    let client: Client | undefined;
    try {
      client = await this.options.clients.get(credentials.clientId);
    } catch (error) {
      // A client not in memory while the database is unreachable: the caller should retry, not see a 500.
      throw new TemporarilyUnavailable('the client store is unreachable; retry shortly', `client lookup failed: ${(error as Error).message}`);
    }
    if (!client) return this.fail(ipKey, clientKey, new InvalidClient('client authentication failed', `unknown client ${credentials.clientId}`));
    if (!this.secretMatches(client, credentials.clientSecret)) {
      return this.fail(ipKey, clientKey, new InvalidClient('client authentication failed', `wrong secret for client ${client.id}`));
    }
    if (client.disabledAt !== null) return this.fail(ipKey, clientKey, new InvalidClient('client is disabled', `client ${client.id} is disabled`));
    if (client.tenantDisabled) return this.fail(ipKey, clientKey, new InvalidClient('client is disabled', `tenant ${client.tenantId} of client ${client.id} is disabled`));
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

  private async fail(ipKey: string, clientKey: string | undefined, error: InvalidClient): Promise<never> {
    const { limiter, limits } = this.options;
    await limiter.recordFailure(clientKey ? [{ key: ipKey, rule: limits.perIp }, { key: clientKey, rule: limits.perClient }] : [{ key: ipKey, rule: limits.perIp }]);
    throw error;
  }
}

/** The address failures are counted against: the peer of the TCP connection (no proxy headers are trusted). */
export function clientIp(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}
