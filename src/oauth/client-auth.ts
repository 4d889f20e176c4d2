import type { ClientCache } from '../clients/cache';
import { ISSUED_CLIENT_ID, PRESENTED_CLIENT_ID } from '../clients/client-id';
import { MetadataDocumentRefused } from '../clients/metadata-documents';
import type { Client } from '../clients/repository';
import { hashClientSecret } from '../clients/secret';
import { fingerprint, type AbuseLimits } from '../ratelimit/policies';
import { UnrecordableJti } from './assertion-jtis';
import { AssertionRefused, JWT_BEARER_ASSERTION_TYPE, PresentedAssertion, type ClientAssertionVerifier } from './client-assertion';
import { InvalidClient, InvalidRequest, TemporarilyUnavailable, TooManyFailures } from './errors';
import type { FormParams } from './form';
import crypto from 'node:crypto';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt' | 'none';

/** The methods of confidential clients: every client-authenticated endpoint takes them. */
export const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'];
/** With `none`: the endpoints a public client may call (the token endpoint for the grants that allow it, revocation). */
export const PUBLIC_CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = [...CLIENT_AUTH_METHODS, 'none'];

/** A secret, by the Basic header or in the form. */
export interface SecretCredentials {
  method: 'client_secret_basic' | 'client_secret_post';
  clientId: string;
  clientSecret: string;
}

/** A JWT signed by one of the client's keys (RFC 7523 §2.2, docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`". */
export interface AssertionCredentials {
  method: 'private_key_jwt';
  /** The client the assertion claims to be (its `sub`), before anything is verified. */
  clientId: string;
  /** The `client_id` form parameter, when sent: it must name the same client. */
  statedClientId: string | undefined;
  /** Read once here (its claims decoded), verified by the authenticator. */
  assertion: PresentedAssertion;
}

/** A public client naming itself (docs/oauth.md "Public clients": `client_id` in the form and nothing else. */
export interface PublicCredentials {
  method: 'none';
  clientId: string;
}

export type ClientCredentials = SecretCredentials | AssertionCredentials | PublicCredentials;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before Base64. */
function formDecode(text: string): string {
  // Issued ids and secrets are base64url: nothing to decode (the common case, on the hot path).
  if (!text.includes('%') && !text.includes('+')) return text;
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw new InvalidClient('malformed Basic credentials', 'bad percent-encoding');
  }
}

/**
 * The credentials a request presents, by exactly one method: the Basic header, a secret in the body,
 * or a client assertion. Undefined when none is presented. A malformed Basic header or assertion is
 * `invalid_client`; two methods, `invalid_request`.
 */
export function readClientCredentials(authorization: string | undefined, form: FormParams): ClientCredentials | undefined {
  const bodyId = form.get('client_id');
  const bodySecret = form.get('client_secret');
  const assertionType = form.get('client_assertion_type');
  const assertion = form.get('client_assertion');
  if (assertionType !== undefined || assertion !== undefined) {
    if (authorization !== undefined || bodySecret !== undefined) {
      throw new InvalidRequest('use exactly one client authentication method (Basic header, client_secret or client_assertion)');
    }
    if (assertionType === undefined || assertion === undefined) throw new InvalidRequest('client_assertion and client_assertion_type go together');
    if (assertionType !== JWT_BEARER_ASSERTION_TYPE) throw new InvalidClient(`unsupported client_assertion_type; use ${JWT_BEARER_ASSERTION_TYPE}`);
    const presented = PresentedAssertion.read(assertion);
    if (presented === undefined) throw new InvalidClient('client authentication failed', 'client_assertion is not a JWT naming a client in sub');
    return { method: 'private_key_jwt', clientId: presented.clientId, statedClientId: bodyId, assertion: presented };
  }
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
  if (bodySecret === undefined) return { method: 'none', clientId: bodyId };
  return { method: 'client_secret_post', clientId: bodyId, clientSecret: bodySecret };
}

export interface ClientAuthenticatorOptions {
  clients: ClientCache;
  limits: Pick<AbuseLimits, 'clientAuthenticationFailed'>;
  /** Verifies private_key_jwt assertions from the client's keys in memory. */
  assertions: ClientAssertionVerifier;
  /**
   * Records an accepted assertion's `jti` until `until`; false for a replay (src/oauth/assertion-jtis.ts).
   * Rejects with UnrecordableJti for a `jti` it may not store, otherwise when the database cannot be reached.
   */
  recordJti(clientId: string, jti: string, until: Date): Promise<boolean>;
  now: () => Date;
  /**
   * The client of a client id URL (docs/oauth.md "Client ID Metadata Documents", its document fetched when
   * not fresh; undefined for any other id. Rejects with MetadataDocumentRefused when the document
   * cannot be had or does not qualify. Absent when metadata documents are off.
   */
  documentClient?: (id: string, origin: { ip: string }) => Promise<Client | undefined>;
}

/**
 * Authenticates clients against the in-memory client cache (docs/security.md "Abuse limits and the threat model", "private_key_jwt"). The limits are consulted
 * on the failure path only: a correct secret or a valid assertion of an active client is never
 * refused, whatever the counters of its client_id or its address say. A successful secret touches
 * neither the database nor the limiter; a successful assertion is verified from keys in memory and
 * writes its `jti` (the replay guard, shared by every instance). A failure is answered
 * `invalid_client` (the precise cause only in the log), or `429` once its client_id or address is
 * over its limit.
 */
export class ClientAuthenticator {
  constructor(private readonly options: ClientAuthenticatorOptions) {}

  /**
   * Throws InvalidClient (or TooManyFailures) unless the credentials are those of an active client.
   * `endpointPath` is the endpoint called (an assertion's `aud` may name it). A public client (its
   * `client_id` alone) is accepted only where `publicClients` says the endpoint takes them; a
   * confidential client naming itself without proof never is.
   */
  async authenticate(credentials: ClientCredentials | undefined, address: string, endpointPath = '/oauth/token', publicClients = false): Promise<Client> {
    if (!credentials) return this.fail(address, undefined, new InvalidClient('client authentication required'));
    if (!PRESENTED_CLIENT_ID.test(credentials.clientId)) {
      return this.fail(address, undefined, new InvalidClient('client authentication failed', 'malformed client_id'));
    }
    let client: Client | undefined;
    try {
      // An id this server cannot have issued is unknown without asking the database (nor failing when it is unreachable),
      // unless it is a client id URL.
      if (ISSUED_CLIENT_ID.test(credentials.clientId)) client = await this.options.clients.get(credentials.clientId);
      else client = await this.options.documentClient?.(credentials.clientId, { ip: address });
    } catch (error) {
      if (error instanceof MetadataDocumentRefused) {
        return this.fail(address, undefined, new InvalidClient('client authentication failed', error.message));
      }
      // A client not in memory while the database is unreachable: the caller should retry, not see a 500.
      throw new TemporarilyUnavailable('the client store is unreachable; retry shortly', `client lookup failed: ${(error as Error).message}`);
    }
    // An unknown id is neither logged nor counted verbatim: it may be a secret pasted into the wrong field.
    if (!client) return this.fail(address, undefined, new InvalidClient('client authentication failed', `unknown client ${fingerprint(credentials.clientId)}`));
    if (credentials.method === 'private_key_jwt') return this.authenticateAssertion(client, credentials, address, endpointPath);
    if (credentials.method === 'none') {
      if (client.authMethod !== 'none') {
        return this.fail(address, client.id, new InvalidClient('client authentication required', `client ${client.id} sent only its client_id but is confidential (${client.authMethod})`));
      }
      if (!publicClients) {
        return this.fail(address, client.id, new InvalidClient('a public client may not use this endpoint', `public client ${client.id} at ${endpointPath}`));
      }
      return this.active(client, address);
    }
    if (client.secretHash === null) {
      const how = client.authMethod === 'none' ? 'it is a public client (send client_id alone)' : 'it authenticates with private_key_jwt';
      return this.fail(address, client.id, new InvalidClient('client authentication failed', `client ${client.id} has no secret: ${how}`));
    }
    if (!this.secretMatches(client, client.secretHash, credentials.clientSecret)) {
      return this.fail(address, client.id, new InvalidClient('client authentication failed', `wrong secret for client ${client.id}`));
    }
    return this.active(client, address);
  }

  private async authenticateAssertion(client: Client, credentials: AssertionCredentials, address: string, endpointPath: string): Promise<Client> {
    if (credentials.statedClientId !== undefined && credentials.statedClientId !== client.id) {
      return this.fail(address, client.id, new InvalidClient('client authentication failed', `client_id ${fingerprint(credentials.statedClientId)} is not the assertion's sub ${client.id}`));
    }
    if (client.authMethod !== 'private_key_jwt') {
      const how = client.authMethod === 'none' ? 'is a public client, without keys' : 'authenticates with a secret, not private_key_jwt';
      return this.fail(address, client.id, new InvalidClient('client authentication failed', `client ${client.id} ${how}`));
    }
    let accepted;
    try {
      accepted = await this.options.assertions.verify(client, credentials.assertion, endpointPath);
    } catch (error) {
      if (!(error instanceof AssertionRefused)) throw error;
      return this.fail(address, client.id, new InvalidClient('client authentication failed', `client assertion of ${client.id} refused: ${error.message}`));
    }
    // The replay guard is written only for an active client: a disabled one's assertions leave nothing behind.
    await this.active(client, address);
    let fresh: boolean;
    try {
      fresh = await this.options.recordJti(client.id, accepted.jti, accepted.replayGuardUntil);
    } catch (error) {
      // A jti that cannot be recorded makes the assertion invalid: a counted failure, never a 503 that invites retries.
      if (error instanceof UnrecordableJti) {
        return this.fail(address, client.id, new InvalidClient('client authentication failed', `client assertion of ${client.id} refused: ${error.message}`));
      }
      throw new TemporarilyUnavailable('the assertion replay guard is unreachable; retry shortly', `jti store: ${(error as Error).message}`);
    }
    if (!fresh) return this.fail(address, client.id, new InvalidClient('client authentication failed', `client assertion of ${client.id} replayed (jti already used)`));
    return client;
  }

  /** The client, unless it or its tenant is disabled (then a counted failure). */
  private async active(client: Client, address: string): Promise<Client> {
    if (client.disabledAt !== null) return this.fail(address, client.id, new InvalidClient('client is disabled', `client ${client.id} is disabled`));
    if (client.tenantDisabled) {
      return this.fail(address, client.id, new InvalidClient('client is disabled', `tenant ${client.tenantId} of client ${client.id} is disabled`));
    }
    return client;
  }

  /** One hash, compared in constant time with the current secret and, during its grace period, the previous one. */
  private secretMatches(client: Client, secretHash: Uint8Array, presented: string): boolean {
    const digest = hashClientSecret(presented);
    const current = crypto.timingSafeEqual(digest, secretHash);
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

