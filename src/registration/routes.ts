import { Router, type Request, type Response } from 'express';
import type { Kysely } from 'kysely';
import type { Permission } from '../admin/permissions';
import { allows, type AdminTokens } from '../admin/tokens';
import type { Client } from '../clients/repository';
import { ClientError, createClient, createClientWithKeys, createPublicClient, type ClientPolicy, type NewClient } from '../clients/service';
import type { Database, StoredRegistrationMetadata } from '../db/schema';
import { ServiceError } from '../errors';
import { ApiError } from '../http/api-error';
import { readJsonBody } from '../http/json-body';
import { requestId, withRequestId } from '../http/request';
import type { Logger } from '../observability/logger';
import type { Reservation } from '../ratelimit';
import { defaultClientName, readRegistration, RegistrationError, type Registration } from './metadata';

export const REGISTER_PATH = '/oauth/register';

/** The permission an initial access token needs (IDP_DYNAMIC_REGISTRATION=token). */
export const REGISTER_PERMISSION: Permission = 'clients:register';

export interface RegistrationRouteDeps {
  db: Kysely<Database>;
  logger: Logger;
  now(): Date;
  mode: 'token' | 'open';
  /** The rules of every client change (the CLI and the admin API use the same). */
  policy: ClientPolicy;
  /** Reserves a registration for an address (docs/security.md "Abuse limits and the threat model", or says how long to wait. */
  reserve(address: string): Promise<Reservation>;
  /** Of the given scopes, those a registered resource has. */
  knownResourceScopes(scopes: readonly string[]): Promise<readonly string[]>;
  adminTokens: Pick<AdminTokens, 'authenticate'>;
}

/** RFC 7591 §3.2.1: the client's id, its secret when it has one, and its metadata as stored. */
export interface RegistrationResponse {
  client_id: string;
  client_id_issued_at: number;
  client_secret?: string;
  client_secret_expires_at?: 0;
  client_name: string;
  redirect_uris: string[];
  grant_types: string[];
  response_types: ['code'];
  token_endpoint_auth_method: string;
  scope?: string;
  jwks?: unknown;
  jwks_uri?: string;
  logo_uri?: string;
  client_uri?: string;
  contacts?: string[];
  software_id?: string;
  software_version?: string;
}

const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };

/** A refusal in the shape of RFC 7591 §3.2.2 (and RFC 6750 §3 for the initial access token). */
class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
  }
}

/** RFC 6750 §3: a quoted-string value; quotes and backslashes are kept out of it. */
function quotedString(text: string): string {
  return `"${text.replace(/["\\]/g, "'")}"`;
}

/**
 * IDP_DYNAMIC_REGISTRATION=token: the caller of a registration, by its initial access token (an admin
 * token with `clients:register`, RFC 7591 §3). Refused per RFC 6750 §3, before the body is read: no
 * token 401 (a challenge without error), a malformed header 400, an invalid, expired or revoked token
 * 401 invalid_token, a valid admin token without the permission 403 insufficient_scope.
 */
async function initialAccessToken(req: Request, deps: RegistrationRouteDeps): Promise<string> {
  const header = req.get('authorization');
  const challenge = 'Bearer realm="registration"';
  if (header === undefined) {
    throw new Refusal(401, 'invalid_request', 'registration needs an initial access token: "Authorization: Bearer <admin token with clients:register>"', { 'WWW-Authenticate': challenge });
  }
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
  if (!match) throw new Refusal(400, 'invalid_request', 'the Authorization header must be "Bearer <initial access token>"');
  try {
    const caller = await deps.adminTokens.authenticate(match[1] as string);
    if (!allows(caller, REGISTER_PERMISSION)) {
      const description = `admin token ${caller.id} lacks the permission "${REGISTER_PERMISSION}"`;
      throw new Refusal(403, 'insufficient_scope', description, {
        'WWW-Authenticate': `${challenge}, error="insufficient_scope", error_description=${quotedString(description)}, scope="${REGISTER_PERMISSION}"`,
      });
    }
    return caller.actor;
  } catch (error) {
    if (!(error instanceof ServiceError) || (error.code !== 'invalid_token' && error.code !== 'token_expired')) throw error;
    if (error.refusal.logDetail) deps.logger.info({ detail: error.refusal.logDetail }, 'registration refused an initial access token');
    throw new Refusal(401, 'invalid_token', error.message, { 'WWW-Authenticate': `${challenge}, error="invalid_token", error_description=${quotedString(error.message)}` });
  }
}

/** Reading the body: the JSON APIs' checks, answered in this endpoint's shape. */
async function readBody(req: Request): Promise<unknown> {
  try {
    await readJsonBody(req);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // 413 and 415 close the connection: the rest of the body is never read.
    if (error.status === 400) throw new Refusal(400, 'invalid_client_metadata', error.message);
    throw new Refusal(error.status, 'invalid_request', error.message, error.options.headers);
  }
  return req.body as unknown;
}

async function create(deps: RegistrationRouteDeps, registration: Registration, change: { actor: string; now: Date; requestId: string; reason: string }) {
  const input: NewClient = {
    name: registration.clientName ?? defaultClientName(registration.redirectUris[0] as string),
    scopes: registration.scopes,
    redirectUris: registration.redirectUris,
    grantTypes: registration.grantTypes,
    firstParty: false,
    registeredBy: 'dynamic',
    registrationMetadata: registration.metadata,
  };
  switch (registration.method) {
    case 'none':
      return { client: await createPublicClient(deps.db, input, deps.policy, change) };
    case 'private_key_jwt': {
      const keys = registration.jwksUri !== undefined ? { jwksUri: registration.jwksUri } : { jwks: registration.jwks };
      return { client: await createClientWithKeys(deps.db, { ...input, keys }, deps.policy, change) };
    }
    default:
      return createClient(deps.db, { ...input, method: registration.method }, deps.policy, change);
  }
}

function responseOf(client: Client, metadata: StoredRegistrationMetadata, secret: string | undefined): RegistrationResponse {
  return {
    client_id: client.id,
    client_id_issued_at: Math.floor(client.createdAt.getTime() / 1000),
    // RFC 7591 §3.2.1: 0, the secret does not expire.
    ...(secret !== undefined && { client_secret: secret, client_secret_expires_at: 0 as const }),
    client_name: client.name,
    redirect_uris: [...client.redirectUris],
    grant_types: [...client.grantTypes],
    response_types: ['code'],
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    ...(client.scopes.length > 0 && { scope: client.scopes.join(' ') }),
    ...(client.jwks !== null && { jwks: client.jwks }),
    ...(client.jwksUri !== null && { jwks_uri: client.jwksUri }),
    ...metadata,
  };
}

/**
 * POST /oauth/register (docs/agents.md "Dynamic client registration", RFC 7591): a JSON body of client
 * metadata; 201 with the client. In order: the initial access token (`token` mode), the body, the
 * metadata, then the address's registration limit (429 with Retry-After) and the insert. A refusal
 * changes nothing and counts against no limit.
 */
export function registrationRoutes(deps: RegistrationRouteDeps): Router {
  const router = Router({ caseSensitive: true, strict: true });

  router.post(REGISTER_PATH, withRequestId, async (req: Request, res: Response) => {
    res.set(NO_STORE);
    try {
      const address = req.ip ?? req.socket.remoteAddress ?? 'unknown';
      const actor = deps.mode === 'token' ? await initialAccessToken(req, deps) : `ip:${address}`;
      const registration = await readRegistration(await readBody(req), { production: deps.policy.production, knownResourceScopes: deps.knownResourceScopes });
      const reservation = await deps.reserve(address);
      if (!reservation.ok) {
        throw new Refusal(429, 'temporarily_unavailable', 'too many registrations from this address; retry later', { 'Retry-After': String(reservation.retryAfter) });
      }
      let created: { client: Client; secret?: string };
      try {
        created = await create(deps, registration, { actor, now: deps.now(), requestId: requestId(req), reason: `dynamic registration from ${address}` });
      } catch (error) {
        await reservation.attempt.release();
        throw error;
      }
      await reservation.attempt.count();
      res.status(201).json(responseOf(created.client, registration.metadata, created.secret));
    } catch (thrown) {
      const refusal =
        thrown instanceof Refusal
          ? thrown
          : thrown instanceof RegistrationError
            ? new Refusal(400, thrown.error, thrown.message)
            : thrown instanceof ClientError
              ? new Refusal(400, 'invalid_client_metadata', thrown.message)
              : undefined;
      if (refusal) {
        res.status(refusal.status).set(refusal.headers).json({ error: refusal.error, error_description: refusal.description });
        return;
      }
      deps.logger.error({ err: thrown, requestId: requestId(req) }, 'unhandled error at the registration endpoint');
      res.status(500).json({ error: 'server_error', error_description: 'internal error; the request id is in the X-Request-Id header' });
    }
  });

  // RFC 7591 defines POST only.
  router.all(REGISTER_PATH, (_req: Request, res: Response) => {
    res.status(405).set({ ...NO_STORE, Allow: 'POST' }).json({ error: 'invalid_request', error_description: 'use POST' });
  });
  return router;
}
