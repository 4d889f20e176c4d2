import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Client } from '../clients/repository';
import type { Config } from '../config';
import { clientAddress } from '../http/client-address';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { readClientCredentials, type ClientAuthenticator } from './client-auth';
import {
  InvalidClient,
  InvalidRequest,
  MethodNotAllowed,
  NO_STORE_HEADERS,
  oauthErrorResponse,
  TemporarilyUnavailable,
  UnauthorizedClient,
  UnsupportedGrantType,
} from './errors';
import { ClientGone, readForm, type FormParams } from './form';
import type { OAuthRegistry } from './registry';
import { introspectionRequest, readFormParams, revocationRequest } from './schemas';
import { quoted } from '../text';

export const TOKEN_PATH = '/oauth/token';
export const INTROSPECTION_PATH = '/oauth/introspect';
export const REVOCATION_PATH = '/oauth/revoke';

/** What the three endpoints work with once start-up is done. */
export interface OAuthEndpointDeps {
  registry: OAuthRegistry;
  authenticator: Pick<ClientAuthenticator, 'authenticate'>;
  trustProxy: Config['trustProxy'];
  /** Records a client's use (for the sweep of unused self-registered clients, at most once an hour); never waits or fails. */
  recordClientUse?(client: Pick<Client, 'id' | 'registeredBy'>): void;
}

export interface OAuthDispatchContext {
  logger: Logger;
  metrics: Metrics;
  /** Undefined while the service is starting (the endpoints answer 503). */
  deps(): OAuthEndpointDeps | undefined;
}

type Endpoint = (req: IncomingMessage, deps: OAuthEndpointDeps) => Promise<{ body: unknown; grantType?: string }>;

/**
 * POST /oauth/token, /oauth/introspect and /oauth/revoke on the thin node:http dispatch (server.ts):
 * the token endpoint is the one services call thousands of times a second, and Express's routing
 * and body parsing would cost more than the work itself (docs/performance.md "Performance". All three share
 * the form reader, client authentication, the error serializer and the metrics.
 * Returns false for any other path.
 */
export function createOAuthDispatch(context: OAuthDispatchContext): (req: IncomingMessage, res: ServerResponse, path: string) => boolean {
  const { metrics, logger } = context;
  // The success series, looked up once rather than hashing their labels on every token.
  const tokenSucceeded = metrics.oauthTokenDuration.labels({ outcome: 'success' });
  const issued = new Map<string, { inc(): void }>();
  const countIssued = (grantType: string) => {
    let counter = issued.get(grantType);
    if (!counter) {
      // Bounded: only grant types the registry knows get here.
      counter = metrics.oauthTokensIssued.labels({ grant_type: grantType });
      issued.set(grantType, counter);
    }
    counter.inc();
  };
  const endpoints: Record<string, { name: string; handle: Endpoint }> = {
    [TOKEN_PATH]: { name: 'token', handle: token },
    [INTROSPECTION_PATH]: { name: 'introspection', handle: introspection },
    [REVOCATION_PATH]: { name: 'revocation', handle: revocation },
  };

  const send = (res: ServerResponse, status: number, headers: Record<string, string>, body: unknown) => {
    if (body === undefined) {
      const { 'Content-Type': _type, ...rest } = headers;
      res.writeHead(status, { ...rest, 'Content-Length': '0' });
      res.end();
      return;
    }
    const bytes = Buffer.from(JSON.stringify(body));
    res.writeHead(status, { ...headers, 'Content-Length': String(bytes.length) });
    res.end(bytes);
  };

  const serve = async (req: IncomingMessage, res: ServerResponse, endpoint: { name: string; handle: Endpoint }) => {
    const started = process.hrtime.bigint();
    let outcome = 'success';
    try {
      if (req.method !== 'POST') throw new MethodNotAllowed(`use POST`);
      const deps = context.deps();
      if (!deps) throw new TemporarilyUnavailable('the service is starting');
      const { body, grantType } = await endpoint.handle(req, deps);
      if (grantType) countIssued(grantType);
      send(res, 200, NO_STORE_HEADERS, body);
    } catch (thrown) {
      if (thrown instanceof ClientGone) {
        // Anyone can open a request and hang up: not an error, not a metric, one debug line at most.
        outcome = 'client_gone';
        logger.debug({ endpoint: endpoint.name }, thrown.message);
        res.destroy();
        return;
      }
      const response = oauthErrorResponse(thrown, logger, { endpoint: endpoint.name });
      outcome = response.error.error;
      metrics.oauthErrors.inc({ endpoint: endpoint.name, error: response.error.error });
      // A refused body was not read: close the connection rather than read the rest of it.
      if (response.status === 413) response.headers.Connection = 'close';
      send(res, response.status, response.headers, response.body);
    } finally {
      if (endpoint.name === 'token') {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        if (outcome === 'success') tokenSucceeded.observe(seconds);
        else metrics.oauthTokenDuration.observe({ outcome }, seconds);
      }
    }
  };

  return (req, res, path) => {
    const endpoint = endpoints[path];
    if (!endpoint) return false;
    serve(req, res, endpoint).catch((error: unknown) => {
      // Only a failure to write the response gets here: the client went away, which is not our error.
      logger.debug({ err: (error as Error).message, endpoint: endpoint.name }, 'could not answer an OAuth request');
      res.destroy();
    });
    return true;
  };
}

/** The client of a request to `path` (an assertion's `aud` may name the endpoint called); public clients only where `publicClients`. */
async function authenticated(req: IncomingMessage, form: FormParams, deps: OAuthEndpointDeps, path: string, publicClients: boolean, address = clientAddress(req, deps.trustProxy)) {
  return deps.authenticator.authenticate(readClientCredentials(req.headers.authorization, form), address, path, publicClients);
}

const token: Endpoint = async (req, deps) => {
  const form = await readForm(req);
  const grantType = form.get('grant_type');
  if (grantType === undefined) throw new InvalidRequest('missing grant_type');
  const registered = deps.registry.findGrant(grantType);
  if (!registered) throw new UnsupportedGrantType(`unsupported grant_type ${quoted(grantType)}`);
  const grant = registered.select?.(form) ?? registered;
  let client;
  const ip = clientAddress(req, deps.trustProxy);
  // Read again by `authenticated`; only grants that do not require authentication pay for it here.
  const presented = grant.clientAuthentication !== 'required' && readClientCredentials(req.headers.authorization, form) !== undefined;
  if (grant.clientAuthentication === 'required' || (grant.clientAuthentication === 'optional' && presented)) {
    client = await authenticated(req, form, deps, TOKEN_PATH, true, ip);
    // docs/oauth.md "Grant types": each client uses only the grants it was given (RFC 6749 §5.2), and a
    // public client only those that need no client credentials (never client_credentials).
    if (client.authMethod === 'none' && grant.publicClients !== true) {
      throw new UnauthorizedClient(`a public client may not use grant_type ${grantType}`, `public client ${client.id} refused grant_type ${grantType}`);
    }
    if (!client.grantTypes.includes(grantType)) throw new UnauthorizedClient(`this client may not use grant_type ${grantType}`, `client ${client.id} is not allowed grant_type ${grantType}`);
  } else if (presented) {
    throw new InvalidClient(`grant_type ${grantType} takes no client authentication`);
  }
  const body = await grant.handler({ params: form, client, ip });
  if (client) deps.recordClientUse?.(client);
  return { body, grantType };
};

const introspection: Endpoint = async (req, deps) => {
  const form = await readForm(req);
  const client = await authenticated(req, form, deps, INTROSPECTION_PATH, false);
  const { token: tokenText } = readFormParams(introspectionRequest, form);
  return { body: await deps.registry.introspect(tokenText, { client }) };
};

const revocation: Endpoint = async (req, deps) => {
  const form = await readForm(req);
  // RFC 7009 §2.1: a public client may revoke its own tokens, naming itself by client_id.
  const client = await authenticated(req, form, deps, REVOCATION_PATH, true);
  const { token: tokenText } = readFormParams(revocationRequest, form);
  await deps.registry.revoke(tokenText, { client });
  return { body: undefined };
};
