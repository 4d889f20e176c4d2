import { sql, type Kysely } from 'kysely';
import { adminAudience } from '../tokens/audiences';
import { recordAudit, type Actor } from '../audit';
import type { Config } from '../config';
import { formatDuration, parseDuration } from '../config/duration';
import type { ClientRegistrar, Database, StoredRegistrationMetadata, TokenEndpointAuthMethod } from '../db/schema';
import { SWEEP_BATCH_SIZE } from '../db/sweep';
import { findTenant } from '../tenants/repository';
import { checkName, InvalidNameError, quoted } from '../text';
import { CLIENT_CREDENTIALS, CLIENT_GRANT_TYPES, AUTHORIZATION_CODE, resolveGrantTypes } from './grant-types';
import { checkClientJwks, JwksError } from './jwks';
import { checkJwksUri } from './jwks-uri';
import {
  deleteClient as deleteClientRow,
  findClient,
  insertClient,
  replaceClientKeys,
  replaceClientSecret,
  updateClient,
  type Client,
  type ClientChanges,
  type ClientKeySource,
} from './repository';
import { InvalidRedirectUri, validateRedirectUris } from './redirect-uris';
import { generateClientId, generateClientSecret, hashClientSecret } from './secret';

/** A refused client change: `code` is stable, `message` is one line for the operator. */
export class ClientError extends Error {
  constructor(
    readonly code: 'ERR_CLIENT_NOT_FOUND' | 'ERR_CLIENT_INVALID' | 'ERR_TENANT_NOT_FOUND',
    message: string,
  ) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface ClientPolicy {
  /** `aud` of a client created without audiences (IDP_CLIENT_AUDIENCE). */
  defaultAudience: string;
  /** IDP_CLIENT_TOKEN_TTL: a per-client TTL may not exceed it, since key retention is sized by it. */
  maxTokenTtlMs: number;
  /**
   * The identity provider's own audiences, which no client may be given: a resource server that
   * checks `iss`, `aud` and `typ` would otherwise take that client's token for a user or admin token.
   */
  reservedAudiences: readonly string[];
  /** NODE_ENV=production: a jwks_uri must be https and may not name a private or loopback address. */
  production: boolean;
}

/** The policy of every client change, from the configuration (the CLI and the admin API use the same). */
export function clientPolicy(config: Pick<Config, 'issuer' | 'userAudience' | 'clientDefaultAudience' | 'clientTokenTtlMs' | 'production'>): ClientPolicy {
  return {
    defaultAudience: config.clientDefaultAudience,
    maxTokenTtlMs: config.clientTokenTtlMs,
    reservedAudiences: [config.issuer, adminAudience(config.issuer), config.userAudience],
    production: config.production,
  };
}

/** The longest a previous secret may keep working after a rotation. */
export const MAX_SECRET_GRACE_MS = 30 * 86_400_000;

/** A grace period as written by an operator (`0`, `0s`, `1h`, `7d`); undefined when it is not a duration. */
export function parseGrace(text: string): number | undefined {
  return /^0+[smhd]?$/.test(text.trim()) ? 0 : parseDuration(text);
}

export interface ChangeContext {
  actor: Actor;
  now: Date;
  reason?: string;
  requestId?: string;
}

/** The settings of the authorization-code flow (docs/oauth.md "Clients of the authorization-code flow". */
export interface FlowSettings {
  redirectUris?: readonly string[];
  postLogoutRedirectUris?: readonly string[];
  /** Null or absent: the default by rule (src/clients/grant-types.ts). */
  grantTypes?: readonly string[] | null;
  firstParty?: boolean;
}

export interface NewClient extends FlowSettings {
  name: string;
  scopes: readonly string[];
  audiences?: readonly string[];
  tenantId?: string | null;
  tokenTtlSeconds?: number | null;
  /** Who registers it; default `operator` (the CLI and the admin API). */
  registeredBy?: ClientRegistrar;
  /** What a dynamic registration said beyond the other fields (docs/agents.md "Dynamic client registration". */
  registrationMetadata?: StoredRegistrationMetadata;
}

/** RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
// Audiences are compared as exact strings; no whitespace or control characters, bounded length.
const AUDIENCE = /^[\x21-\x7e]{1,2048}$/;

/** Splits and checks a space-separated scope string (RFC 6749 §3.3); undefined when malformed. */
export function parseScope(text: string): string[] | undefined {
  const scopes = text.split(' ').filter((s) => s !== '');
  return scopes.every((s) => SCOPE_TOKEN.test(s)) ? [...new Set(scopes)] : undefined;
}

/**
 * `none`: a client that did not register a scope (docs/agents.md "Dynamic client registration" has no list
 * of its own; it may request what the authorization-code flow offers every such client.
 */
function validScopes(scopes: readonly string[], none: 'allowed' | 'refused' = 'refused'): string[] {
  if (scopes.length === 0 && none === 'refused') throw new ClientError('ERR_CLIENT_INVALID', 'a client needs at least one scope');
  for (const scope of scopes) {
    if (!SCOPE_TOKEN.test(scope)) throw new ClientError('ERR_CLIENT_INVALID', `invalid scope ${quoted(scope)} (RFC 6749 §3.3: printable ASCII, no space, quote or backslash)`);
  }
  return [...new Set(scopes)];
}

// RFC 3986 §2.3: unreserved characters mean the same escaped or not (`%61` is `a`).
const ESCAPED_UNRESERVED = /%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/gi;

/**
 * One spelling per audience for the reserved-audience check, so that a client cannot be given one of
 * ours spelled differently: escaped unreserved characters decoded, then the WHATWG URL form (scheme
 * and host in lower case, no default port, dot segments resolved), without userinfo, an empty query
 * (`?`) or a fragment; finally case and trailing `/` ignored.
 */
function audienceKey(audience: string): string {
  let text = audience.replace(ESCAPED_UNRESERVED, (escape) => String.fromCharCode(parseInt(escape.slice(1), 16)));
  try {
    const url = new URL(text);
    url.username = '';
    url.password = '';
    if (url.search === '') url.search = '';
    url.hash = '';
    text = url.href;
  } catch {
    // Not a URL: compared as written.
  }
  return text.replace(/\/+$/, '').toLowerCase();
}

function validAudiences(audiences: readonly string[], policy: ClientPolicy): string[] {
  if (audiences.length === 0) throw new ClientError('ERR_CLIENT_INVALID', 'a client needs at least one audience');
  const reserved = new Set(policy.reservedAudiences.map(audienceKey));
  for (const audience of audiences) {
    if (!AUDIENCE.test(audience)) {
      throw new ClientError('ERR_CLIENT_INVALID', `invalid audience ${quoted(audience)} (printable ASCII without spaces, up to 2048 characters)`);
    }
    if (reserved.has(audienceKey(audience))) {
      throw new ClientError(
        'ERR_CLIENT_INVALID',
        `audience ${quoted(audience)} is reserved: it is the identity provider's own (IDP_ISSUER, IDP_ISSUER/admin or IDP_USER_AUDIENCE), and a client token for it would pass for a user or admin token`,
      );
    }
  }
  return [...new Set(audiences)];
}

function validTtl(ttl: number | null | undefined, policy: ClientPolicy): number | null {
  if (ttl === undefined || ttl === null) return null;
  if (!Number.isInteger(ttl) || ttl <= 0 || ttl * 1000 > policy.maxTokenTtlMs) {
    throw new ClientError('ERR_CLIENT_INVALID', `token TTL must be a whole number of seconds from 1 to ${policy.maxTokenTtlMs / 1000} (IDP_CLIENT_TOKEN_TTL)`);
  }
  return ttl;
}

function validName(name: string): string {
  try {
    return checkName(name, 'a client name');
  } catch (error) {
    if (error instanceof InvalidNameError) throw new ClientError('ERR_CLIENT_INVALID', error.message);
    throw error;
  }
}

function validUris(uris: readonly string[], what: string, policy: ClientPolicy): string[] {
  const checked = validateRedirectUris(uris, policy);
  if (checked instanceof InvalidRedirectUri) throw new ClientError('ERR_CLIENT_INVALID', `${what}: ${checked.message}`);
  return checked;
}

function validGrantTypes(grantTypes: readonly string[] | null): string[] | null {
  if (grantTypes === null) return null;
  if (grantTypes.length === 0) throw new ClientError('ERR_CLIENT_INVALID', 'a client needs at least one grant type (or the default)');
  for (const grantType of grantTypes) {
    if (!CLIENT_GRANT_TYPES.includes(grantType)) {
      throw new ClientError('ERR_CLIENT_INVALID', `unknown grant type ${JSON.stringify(grantType.slice(0, 100))} (one of ${CLIENT_GRANT_TYPES.join(', ')})`);
    }
  }
  return [...new Set(grantTypes)];
}

/** The flow settings of a create or update, each checked on its own; the whole client is checked by `consistent`. */
function validFlowSettings(input: FlowSettings, policy: ClientPolicy): FlowSettings {
  return {
    ...(input.redirectUris !== undefined && { redirectUris: validUris(input.redirectUris, 'redirect URIs', policy) }),
    ...(input.postLogoutRedirectUris !== undefined && { postLogoutRedirectUris: validUris(input.postLogoutRedirectUris, 'post-logout redirect URIs', policy) }),
    ...(input.grantTypes !== undefined && { grantTypes: validGrantTypes(input.grantTypes) }),
    ...(input.firstParty !== undefined && { firstParty: input.firstParty }),
  };
}

/** What a client must be as a whole, whatever changed: the rules between its method, its grants and its redirect URIs. */
function consistent(client: {
  authMethod: TokenEndpointAuthMethod;
  registeredBy: ClientRegistrar;
  redirectUris: readonly string[];
  grantTypes: readonly string[] | null;
  firstParty: boolean;
}): void {
  const grants = resolveGrantTypes(client.grantTypes, client.redirectUris);
  if (grants.includes(AUTHORIZATION_CODE) && client.redirectUris.length === 0) {
    throw new ClientError('ERR_CLIENT_INVALID', 'the authorization_code grant needs at least one redirect URI');
  }
  if (client.authMethod === 'none' && grants.includes(CLIENT_CREDENTIALS)) {
    throw new ClientError(
      'ERR_CLIENT_INVALID',
      client.redirectUris.length === 0 && client.grantTypes === null
        ? 'a public client needs at least one redirect URI (it has no credentials, so client_credentials, the default without redirect URIs, is not for it)'
        : 'a public client may not have the client_credentials grant: it has no credentials',
    );
  }
  if (client.registeredBy !== 'operator' && grants.includes(CLIENT_CREDENTIALS)) {
    throw new ClientError('ERR_CLIENT_INVALID', `a client registered by ${client.registeredBy === 'dynamic' ? 'dynamic registration' : 'metadata document'} never gets client_credentials`);
  }
  if (client.registeredBy !== 'operator' && client.firstParty) {
    throw new ClientError('ERR_CLIENT_INVALID', 'only a client registered by an operator may be first-party');
  }
}

/**
 * The keys of a private_key_jwt client as an operator gives them: a JWKS (parsed JSON) or a
 * jwks_uri. Exactly one.
 */
export type ClientKeysInput = { jwks: unknown; jwksUri?: undefined } | { jwksUri: string; jwks?: undefined };

/** Checks keys (src/clients/jwks.ts, src/clients/jwks-uri.ts); what is stored, and what the audit event says of it. */
function validKeys(input: ClientKeysInput, policy: ClientPolicy): { keys: ClientKeySource; details: Record<string, unknown> } {
  try {
    if (input.jwksUri !== undefined) {
      const jwksUri = checkJwksUri(input.jwksUri, policy);
      return { keys: { jwksUri }, details: { jwks_uri: jwksUri } };
    }
    const { jwks, keys } = checkClientJwks(input.jwks);
    return { keys: { jwks }, details: { kids: keys.map((k) => k.kid ?? null), key_types: keys.map((k) => k.kty) } };
  } catch (error) {
    if (error instanceof JwksError) throw new ClientError('ERR_CLIENT_INVALID', error.message);
    throw error;
  }
}

/** Checks keys an operator gives, without writing anything; throws ClientError with one line. */
export function checkClientKeys(input: ClientKeysInput, policy: ClientPolicy): void {
  validKeys(input, policy);
}

type NewCredentials =
  | { method: 'client_secret_basic' | 'client_secret_post'; secretHash: Uint8Array; keys?: undefined }
  | { method: 'private_key_jwt'; secretHash: null; keys: { keys: ClientKeySource; details: Record<string, unknown> } }
  | { method: 'none'; secretHash: null; keys?: undefined };

async function insertNewClient(db: Kysely<Database>, input: NewClient, credentials: NewCredentials, policy: ClientPolicy, change: ChangeContext): Promise<Client> {
  const name = validName(input.name);
  const registeredBy = input.registeredBy ?? 'operator';
  const scopes = validScopes(input.scopes, registeredBy === 'operator' ? 'refused' : 'allowed');
  const audiences = validAudiences(input.audiences && input.audiences.length > 0 ? input.audiences : [policy.defaultAudience], policy);
  const tokenTtlSeconds = validTtl(input.tokenTtlSeconds, policy);
  const flow = validFlowSettings(input, policy);
  const redirectUris = flow.redirectUris ?? [];
  const postLogoutRedirectUris = flow.postLogoutRedirectUris ?? [];
  const grantTypes = flow.grantTypes ?? null;
  const firstParty = flow.firstParty ?? false;
  consistent({ authMethod: credentials.method, registeredBy, redirectUris, grantTypes, firstParty });
  const tenantId = input.tenantId ?? null;
  const id = generateClientId();
  await db.transaction().execute(async (trx) => {
    if (tenantId !== null && !(await findTenant(trx, tenantId))) throw new ClientError('ERR_TENANT_NOT_FOUND', `no tenant ${quoted(tenantId)}`);
    await insertClient(trx, {
      id,
      name,
      secretHash: credentials.secretHash,
      keys: credentials.keys?.keys,
      tokenEndpointAuthMethod: credentials.method,
      scopes,
      audiences,
      tenantId,
      tokenTtlSeconds,
      redirectUris,
      postLogoutRedirectUris,
      grantTypes,
      firstParty,
      registeredBy,
      registrationMetadata: input.registrationMetadata,
      now: change.now,
    });
    const keyDetails = credentials.keys ? { auth_method: 'private_key_jwt', ...credentials.keys.details } : credentials.method === 'none' ? { auth_method: 'none' } : {};
    const flowDetails = {
      ...(redirectUris.length > 0 && { redirect_uris: redirectUris }),
      ...(postLogoutRedirectUris.length > 0 && { post_logout_redirect_uris: postLogoutRedirectUris }),
      ...(grantTypes !== null && { grant_types: grantTypes }),
      ...(firstParty && { first_party: true }),
      ...(registeredBy !== 'operator' && { registered_by: registeredBy }),
      ...input.registrationMetadata,
    };
    await recordAudit(trx, { ...audit(change, 'client.created', id), details: { name, scopes, audiences, tenant_id: tenantId, ...keyDetails, ...flowDetails } });
  });
  return (await findClient(db, id)) as Client;
}

/**
 * Creates a client; returns it with its secret, which exists nowhere else afterwards. It may send the
 * secret by Basic or in the form whichever `method` it was registered with (default client_secret_basic).
 */
export async function createClient(
  db: Kysely<Database>,
  input: NewClient & { method?: 'client_secret_basic' | 'client_secret_post' },
  policy: ClientPolicy,
  change: ChangeContext,
): Promise<{ client: Client; secret: string }> {
  const secret = generateClientSecret();
  const client = await insertNewClient(db, input, { method: input.method ?? 'client_secret_basic', secretHash: hashClientSecret(secret) }, policy, change);
  return { client, secret };
}

/**
 * Creates a public client (docs/oauth.md "Public clients": no secret, no keys; it names itself by
 * `client_id` and proves nothing else (PKCE binds its codes). It needs redirect URIs and never gets
 * client_credentials.
 */
export async function createPublicClient(db: Kysely<Database>, input: NewClient, policy: ClientPolicy, change: ChangeContext): Promise<Client> {
  return insertNewClient(db, input, { method: 'none', secretHash: null }, policy, change);
}

/**
 * Creates a client that authenticates with `private_key_jwt` (docs/private-key-jwt.md "Clients without shared secrets: `private_key_jwt`": it has no secret, so
 * `client_secret_basic` and `client_secret_post` are refused for it.
 */
export async function createClientWithKeys(db: Kysely<Database>, input: NewClient & { keys: ClientKeysInput }, policy: ClientPolicy, change: ChangeContext): Promise<Client> {
  const keys = validKeys(input.keys, policy);
  return insertNewClient(db, input, { method: 'private_key_jwt', secretHash: null, keys }, policy, change);
}

/**
 * Replaces a client's keys (audited as `client.keys-replaced`). A client that had a secret loses it,
 * and its previous one, at once: it authenticates with `private_key_jwt` from now on.
 */
export async function setClientKeys(db: Kysely<Database>, id: string, input: ClientKeysInput, policy: ClientPolicy, change: ChangeContext): Promise<Client> {
  const { keys, details } = validKeys(input, policy);
  await db.transaction().execute(async (trx) => {
    const before = await findClient(trx, id);
    if (!before || !(await replaceClientKeys(trx, id, keys, change.now))) throw notFound(id);
    await recordAudit(trx, { ...audit(change, 'client.keys-replaced', id), details: { previous_auth_method: before.authMethod, ...details } });
  });
  return (await findClient(db, id)) as Client;
}

/**
 * Issues a new secret. The previous one keeps working for `graceMs` (IDP_CLIENT_SECRET_GRACE by
 * default, at most 30 days) so the services using it can be redeployed; `graceMs = 0` ends it at
 * once (a leak). A second rotation within the grace period ends the older secret: only one previous
 * secret is kept.
 */
export async function rotateClientSecret(db: Kysely<Database>, id: string, graceMs: number, change: ChangeContext): Promise<{ secret: string; previousValidUntil: Date | null }> {
  if (!Number.isSafeInteger(graceMs) || graceMs < 0 || graceMs > MAX_SECRET_GRACE_MS) {
    const asked = Number.isSafeInteger(graceMs) && graceMs >= 0 ? ` (asked for ${formatDuration(graceMs)})` : '';
    throw new ClientError('ERR_CLIENT_INVALID', `the grace period of the previous secret is at most ${formatDuration(MAX_SECRET_GRACE_MS)}${asked}`);
  }
  const secret = generateClientSecret();
  const previousValidUntil = graceMs > 0 ? new Date(change.now.getTime() + graceMs) : null;
  await db.transaction().execute(async (trx) => {
    const client = await findClient(trx, id);
    if (client?.authMethod === 'private_key_jwt') {
      throw new ClientError('ERR_CLIENT_INVALID', `client ${id} has no secret: it authenticates with private_key_jwt (replace its keys with set-keys)`);
    }
    if (client?.authMethod === 'none') throw new ClientError('ERR_CLIENT_INVALID', `client ${id} has no secret: it is a public client`);
    if (!client || !(await replaceClientSecret(trx, id, hashClientSecret(secret), previousValidUntil, change.now))) throw notFound(id);
    await recordAudit(trx, { ...audit(change, 'client.secret-rotated', id), details: { previous_valid_until: previousValidUntil?.toISOString() ?? null } });
  });
  return { secret, previousValidUntil };
}

/** Changes a client's settings (not its secret or tenant). */
export async function changeClient(db: Kysely<Database>, id: string, changes: ClientChanges, policy: ClientPolicy, change: ChangeContext): Promise<Client> {
  const checked: ClientChanges = {
    ...(changes.name !== undefined && { name: validName(changes.name) }),
    ...(changes.scopes !== undefined && { scopes: validScopes(changes.scopes) }),
    ...(changes.audiences !== undefined && { audiences: validAudiences(changes.audiences, policy) }),
    ...(changes.tokenTtlSeconds !== undefined && { tokenTtlSeconds: validTtl(changes.tokenTtlSeconds, policy) }),
    ...(changes.disabledAt !== undefined && { disabledAt: changes.disabledAt }),
    ...validFlowSettings(changes, policy),
  };
  const flowChanged = checked.redirectUris !== undefined || checked.grantTypes !== undefined || checked.firstParty !== undefined;
  await db.transaction().execute(async (trx) => {
    if (flowChanged) {
      // The rules between method, grants and redirect URIs hold for the client as it will be. The
      // row is locked so that two concurrent updates cannot each pass on half of the other's change.
      const before = await trx.selectFrom('oauth_clients').select(['token_endpoint_auth_method', 'registered_by', 'redirect_uris', 'grant_types', 'first_party']).where('id', '=', id).forUpdate().executeTakeFirst();
      if (!before) throw notFound(id);
      consistent({
        authMethod: before.token_endpoint_auth_method,
        registeredBy: before.registered_by,
        redirectUris: checked.redirectUris ?? before.redirect_uris,
        grantTypes: checked.grantTypes !== undefined ? checked.grantTypes : before.grant_types,
        firstParty: checked.firstParty ?? before.first_party,
      });
    }
    if (!(await updateClient(trx, id, checked, change.now))) throw notFound(id);
    const action = changes.disabledAt === undefined ? 'client.updated' : changes.disabledAt === null ? 'client.enabled' : 'client.disabled';
    // Where a client may send users' codes is security-relevant: the new values are kept, not only the field names.
    const flowDetails = {
      ...(checked.redirectUris !== undefined && { redirect_uris: checked.redirectUris }),
      ...(checked.postLogoutRedirectUris !== undefined && { post_logout_redirect_uris: checked.postLogoutRedirectUris }),
      ...(checked.grantTypes !== undefined && { grant_types: checked.grantTypes }),
      ...(checked.firstParty !== undefined && { first_party: checked.firstParty }),
    };
    await recordAudit(trx, { ...audit(change, action, id), details: { fields: Object.keys(checked), ...flowDetails } });
  });
  return (await findClient(db, id)) as Client;
}

export async function disableClient(db: Kysely<Database>, id: string, change: ChangeContext): Promise<Client> {
  return changeClient(db, id, { disabledAt: change.now }, { defaultAudience: '', maxTokenTtlMs: 0, reservedAudiences: [], production: true }, change);
}

/** Deletes a client. Its tokens stay verifiable offline until they expire, but introspect as inactive. */
export async function deleteClient(db: Kysely<Database>, id: string, change: ChangeContext): Promise<void> {
  await db.transaction().execute(async (trx) => {
    if (!(await deleteClientRow(trx, id))) throw notFound(id);
    await recordAudit(trx, audit(change, 'client.deleted', id));
  });
}

/**
 * The clients that registered themselves, and so are swept when left unused (IDP_DYNAMIC_CLIENT_TTL).
 * Each kind has its partial index (oauth_clients_dynamic_unused, oauth_clients_document_unused): the
 * kind is written into the statement as a literal so that the planner can prove the index applies.
 */
export const SWEPT_CLIENT_KINDS = ['dynamic', 'metadata_document'] as const;

/**
 * Deletes the clients that registered themselves (docs/agents.md "The sweep": dynamic registration,
 * metadata documents) not used for `ttlMs`: no use recorded since the cutoff (oauth_client_uses: a
 * token at the token endpoint, a code at the authorization endpoint), counting from their creation
 * when never used. Operator-created clients are never touched. A metadata document's client comes
 * back (audited as created) at its next use. Returns how many went.
 *
 * Each kind is walked once by creation, only among the clients created before the cutoff (an index
 * range of oauth_clients_<kind>_created, resumed after the last client of the batch before), so a
 * client in use is read once per sweep however many batches there are. Each batch of candidates is
 * deleted in one transaction with its audit events (`client.deleted` by `schedule`), the condition
 * checked again by the delete itself.
 */
export async function sweepUnusedClients(db: Kysely<Database>, now: Date, ttlMs: number, options: { batchSize?: number; pauseMs?: number } = {}): Promise<number> {
  const cutoff = new Date(now.getTime() - ttlMs);
  const batchSize = options.batchSize ?? SWEEP_BATCH_SIZE;
  const reason = `not used for ${formatDuration(ttlMs)} (IDP_DYNAMIC_CLIENT_TTL)`;
  let deleted = 0;
  for (const kind of SWEPT_CLIENT_KINDS) {
    // Where the last batch ended: its creation in microseconds since the epoch (exact, unlike a Date) and its id.
    let after: { micros: string; id: string } | undefined;
    for (;;) {
      const from = after ? sql`and (created_at, id) > (timestamptz 'epoch' + ${after.micros}::int8 * interval '1 microsecond', ${after.id})` : sql``;
      const { rows: batch } = await sql<{ id: string; micros: string }>`
        select id, (extract(epoch from created_at) * 1000000)::int8::text as micros from oauth_clients
         where registered_by = ${kind} and created_at < ${cutoff} ${from}
         order by created_at, id limit ${batchSize}`.execute(db);
      const last = batch[batch.length - 1];
      if (last === undefined) break;
      after = { micros: last.micros, id: last.id };
      deleted += await db.transaction().execute(async (trx) => {
        const { rows } = await sql<{ id: string }>`
          delete from oauth_clients c
           where c.id = any(${batch.map((row) => row.id)}::text[]) and c.registered_by = ${kind} and c.created_at < ${cutoff}
             and coalesce((select u.used_at from oauth_client_uses u where u.client_id = c.id), '-infinity') < ${cutoff}
          returning c.id`.execute(trx);
        for (const { id } of rows) await recordAudit(trx, { actor: 'schedule', action: 'client.deleted', target: id, reason, at: now, details: { registered_by: kind } });
        return rows.length;
      });
      if (batch.length < batchSize) break;
      await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 10));
    }
  }
  return deleted;
}

function notFound(id: string): ClientError {
  return new ClientError('ERR_CLIENT_NOT_FOUND', `no client ${quoted(id)}`);
}

function audit(change: ChangeContext, action: string, target: string) {
  return { actor: change.actor, action, target, reason: change.reason, requestId: change.requestId, at: change.now };
}
