import { errors, type JWTPayload } from 'jose';
import { recordAudit } from '../audit';
import type { Client } from '../clients/repository';
import { ServiceError } from '../errors';
import type { Logger } from '../observability/logger';
import { InvalidGrant, InvalidRequest, InvalidScope, OAuthError, UnauthorizedClient } from '../oauth/errors';
import { narrowAudience, narrowScopes } from '../oauth/narrowing';
import { readFormParams } from '../oauth/schemas';
import { withinTenant } from '../oauth/tenant-boundary';
import type { Grant, GrantRequest, TokenResponse } from '../oauth/types';
import { peekClaims } from '../tokens/claims';
import { accessTokenRevoked } from '../tokens/deny-list';
import type { Signer } from '../tokens/sign';
import { ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from '../api-keys/schemas';
import { actClaim, peekDelegated, type DelegatedAccessClaims } from './claims';
import { delegationRequest } from './schemas';
import { liveDelegatedToken, type DelegatedTokenDeps } from './tokens';
import { createJtiSource } from '../tokens/jti';

/** The claims of a live user access token the exchange reads (the users' `authenticateAnyAudience`). */
export interface UserTokenClaims {
  sub: string;
  sid: string;
  scope: string;
  exp?: number;
  jti?: string;
  /** The application it was issued to; absent for a /auth/v1 token. */
  client_id?: string;
  tenant_id?: string;
}

/** What the delegation exchange needs, and nothing more. */
export interface DelegationExchangeDeps extends DelegatedTokenDeps {
  logger: Logger;
  sign: Signer;
  settings: { issuer: string; accessTokenTtlMs: number; maxDelegationDepth: number };
  /**
   * A live user access token, whatever its audience (signed, unexpired, not revoked, its session
   * open, user and tenant enabled), with its user's tenant now. Throws a ServiceError when it is not.
   */
  userAccess(token: string): Promise<{ claims: UserTokenClaims; user: { tenant_id: string | null } }>;
}

/** RFC 8693 §2.2.1 success body. */
export interface DelegationResponse extends TokenResponse {
  issued_token_type: typeof ACCESS_TOKEN_TYPE;
  scope: string;
}

/** The subject token, checked: whose it is, what it grants, until when, and who acts for it already. */
interface Subject {
  sub: string;
  sid: string;
  jti: string;
  scopes: readonly string[];
  exp: number;
  tenantId: string | undefined;
  /** The user's tenant now. */
  userTenantId: string | null;
  /** Who holds it: the client it was issued to, or the current actor of a delegated token. */
  holder: string | undefined;
  /** The actors of a delegated subject, outermost first; [] for a user's own token. */
  actors: readonly string[];
  /** `delegated_from` of a delegated subject. */
  ancestors: readonly string[];
}

function scopesOf(scope: string): string[] {
  return scope.split(' ').filter((s) => s !== '');
}

/** The users' refusal of a token (invalid, expired, revoked, signed out) as an invalid_grant; anything else is rethrown. */
function userTokenRefusal(error: unknown): InvalidGrant {
  if (error instanceof ServiceError && (error.code === 'invalid_token' || error.code === 'token_expired')) return new InvalidGrant(`subject_token: ${error.message}`);
  throw error;
}

async function subjectOf(token: string, deps: DelegationExchangeDeps): Promise<Subject> {
  if (peekDelegated(token)) {
    const liveness = await liveDelegatedToken(token, deps);
    if (!liveness?.live) throw new InvalidGrant(`subject_token ${liveness?.reason ?? 'is not a valid access token of this provider'}`);
    const { claims, actors, userTenantId } = liveness;
    return {
      sub: claims.sub,
      sid: claims.sid,
      jti: claims.jti,
      scopes: scopesOf(claims.scope),
      exp: claims.exp,
      tenantId: claims.tenant_id,
      userTenantId,
      holder: actors[0],
      actors,
      ancestors: claims.delegated_from,
    };
  }
  if (peekClaims(token, 'at+jwt')?.token_type !== 'user') {
    throw new InvalidGrant("subject_token must be a user's access token issued by this provider to a client, or a token delegated from one");
  }
  let live: Awaited<ReturnType<DelegationExchangeDeps['userAccess']>>;
  try {
    live = await deps.userAccess(token);
  } catch (error) {
    throw userTokenRefusal(error);
  }
  const { claims, user } = live;
  if (typeof claims.jti !== 'string' || typeof claims.exp !== 'number') throw new InvalidGrant('subject_token is not a valid access token of this provider');
  return {
    sub: claims.sub,
    sid: claims.sid,
    jti: claims.jti,
    scopes: scopesOf(claims.scope),
    exp: claims.exp,
    tenantId: claims.tenant_id,
    userTenantId: user.tenant_id,
    holder: claims.client_id,
    actors: [],
    ancestors: [],
  };
}

/** A client-credentials access token (`sub` = `client_id`, no session, no kind marker). */
function peekClientToken(token: string): JWTPayload | undefined {
  const payload = peekClaims(token, 'at+jwt');
  const isClientToken =
    payload &&
    typeof payload.client_id === 'string' &&
    payload.sub === payload.client_id &&
    payload.sid === undefined &&
    payload.token_type === undefined &&
    payload.api_key_id === undefined &&
    payload.act === undefined;
  return isClientToken ? payload : undefined;
}

/** The client an actor token names: valid, unexpired, not revoked, the client active and of the caller's tenant. */
async function actorOf(token: string, caller: Client, deps: DelegationExchangeDeps): Promise<Client> {
  const peeked = peekClientToken(token);
  if (!peeked || peeked.aud === undefined) throw new InvalidGrant('actor_token must be an access token a client got for itself (client_credentials)');
  let payload: JWTPayload;
  try {
    payload = await deps.verifier.verify(token, { audience: peeked.aud, typ: 'at+jwt', now: deps.now() });
  } catch (error) {
    if (error instanceof errors.JWTExpired) throw new InvalidGrant('actor_token has expired');
    throw new InvalidGrant('actor_token is not a valid access token of this provider');
  }
  if (typeof payload.jti !== 'string' || (await accessTokenRevoked(deps.db, payload.jti))) throw new InvalidGrant('actor_token has been revoked');
  const actor = await deps.client(payload.client_id as string);
  if (!actor || actor.disabledAt !== null || actor.tenantDisabled) throw new InvalidGrant('the client of actor_token is disabled or deleted');
  const claimed = typeof payload.tenant_id === 'string' ? payload.tenant_id : null;
  if (!withinTenant(caller, claimed, actor.tenantId)) throw new InvalidGrant('actor_token belongs to another tenant');
  return actor;
}

/**
 * RFC 8693 token exchange for delegation (docs/delegation.md "Delegation": the authenticated client trades a
 * user's access token it holds for a narrower one, for itself or (with `actor_token`) for a
 * sub-agent. The endpoint has already authenticated the client and checked that its grant_types
 * include the token exchange; public clients are refused (`unauthorized_client`).
 *
 * Checks, in order: the form (`invalid_request`); the subject token live (`invalid_grant`) and of
 * the client's tenant (`invalid_grant`); held by the client (`unauthorized_client`); the actor
 * token (`invalid_grant`); the depth (`invalid_request`); the scope (`invalid_scope`); the audience
 * (`invalid_target`). Every exchange is audited; every refusal is logged with its cause.
 */
export function delegationGrant(deps: DelegationExchangeDeps): Grant {
  const { settings } = deps;
  const newJti = createJtiSource();

  async function exchange({ params, client: caller }: GrantRequest): Promise<DelegationResponse> {
    const request = readFormParams(delegationRequest, params);
    if (request.actor_token !== undefined && request.actor_token_type === undefined) throw new InvalidRequest('actor_token_type is required with actor_token');
    if (request.actor_token === undefined && request.actor_token_type !== undefined) throw new InvalidRequest('actor_token_type given without actor_token');
    const client = caller as Client;

    const subject = await subjectOf(request.subject_token, deps);
    // Tenants are a boundary: a token of another tenant is not one this client can present.
    if (!withinTenant(client, subject.tenantId, subject.userTenantId)) throw new InvalidGrant('subject_token belongs to another tenant');
    if (subject.holder === undefined) {
      throw new UnauthorizedClient('subject_token is a /auth/v1 token, which names no client and cannot be delegated; exchange an API key of the user instead');
    }
    if (subject.holder !== client.id) {
      throw new UnauthorizedClient(subject.actors.length > 0 ? 'this client is not the current actor of subject_token' : 'subject_token was not issued to this client');
    }

    const actor = request.actor_token === undefined ? client : await actorOf(request.actor_token, client, deps);
    if (!withinTenant(actor, subject.tenantId, subject.userTenantId)) throw new InvalidGrant('the actor belongs to another tenant than subject_token');
    const actors = [actor.id, ...subject.actors];
    if (actors.length > settings.maxDelegationDepth) {
      throw new InvalidRequest(`delegation depth ${actors.length} is over the limit of ${settings.maxDelegationDepth} (IDP_MAX_DELEGATION_DEPTH)`);
    }

    const held = subject.scopes.filter((scope) => actor.scopes.includes(scope));
    const scopes = narrowScopes(held, request.scope, 'not granted by subject_token or not allowed for the actor');
    if (scopes.length === 0) throw new InvalidScope('subject_token grants no scope the actor is allowed');
    const aud = narrowAudience(actor.audiences, request.resource, request.audience, 'the actor');

    const iat = Math.floor(deps.now().getTime() / 1000);
    // Never past the subject's expiry: then the deny-list rows of its ancestors outlive it too.
    const ttl = Math.min(Math.floor(settings.accessTokenTtlMs / 1000), actor.tokenTtlSeconds ?? Infinity, subject.exp - iat);
    if (ttl <= 0) throw new InvalidGrant('subject_token has expired');
    const scope = scopes.join(' ');
    const claims: DelegatedAccessClaims = {
      iss: settings.issuer,
      sub: subject.sub,
      aud,
      exp: iat + ttl,
      iat,
      nbf: iat,
      jti: newJti(),
      client_id: actor.id,
      scope,
      sid: subject.sid,
      act: actClaim(actors),
      delegated_from: [subject.jti, ...subject.ancestors],
      ...(subject.tenantId !== undefined && { tenant_id: subject.tenantId }),
    };
    const accessToken = await deps.sign({ ...claims }, 'at+jwt');
    await recordAudit(deps.db, {
      at: deps.now(),
      actor: `client:${client.id}`,
      action: 'token.exchange',
      target: subject.sub,
      details: { subject: subject.sub, actor_chain: actors, scope, audience: aud, jti: claims.jti, subject_jti: subject.jti, ...(claims.tenant_id !== undefined && { tenant_id: claims.tenant_id }) },
    });
    return { access_token: accessToken, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: ttl, scope };
  }

  return {
    grantType: TOKEN_EXCHANGE_GRANT,
    parameters: ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type', 'requested_token_type', 'scope', 'resource', 'audience'],
    clientAuthentication: 'required',
    publicClients: false,
    async handler(request) {
      try {
        return await exchange(request);
      } catch (error) {
        if (error instanceof OAuthError) {
          deps.logger.info({ event: 'token.exchange.refused', client_id: request.client?.id, error: error.error, cause: error.detail ?? error.description }, 'token exchange refused');
        }
        throw error;
      }
    },
  };
}
