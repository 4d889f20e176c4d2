import type { Kysely } from 'kysely';
import { LRUCache } from 'lru-cache';
import { recordAudit } from '../audit';
import type { Database, StoredClientJwks, TokenEndpointAuthMethod } from '../db/schema';
import type { Logger } from '../observability/logger';
import { AUTHORIZATION_CODE, REFRESH_TOKEN } from './grant-types';
import { checkClientJwks } from './jwks';
import { checkJwksUri, JWKS_URI_MAX_BYTES, JWKS_URI_TIMEOUT_MS } from './jwks-uri';
import { validateRedirectUris } from './redirect-uris';
import type { Client } from './repository';
import { fetchJson, productionHostRefusal, type FetchedJson } from './safe-fetch';

/**
 * Client ID Metadata Documents (docs/oauth.md "Client ID Metadata Documents": a `client_id` that is a URL
 * names a JSON document the client publishes there. It is fetched with the safe fetcher of jwks_uri
 * (src/clients/safe-fetch.ts: deadline, size cap, no redirects, public destinations only in
 * production), checked, and kept as a row of `oauth_clients` (`registered_by` `metadata_document`)
 * so that consents, codes and sessions refer to it like to any client; an operator may disable it.
 * The row is brought in line with the document whenever the document is fetched again. Its creation
 * is audited (`client.created` by the address whose request brought it in); like a dynamically
 * registered client, it is deleted when unused for IDP_DYNAMIC_CLIENT_TTL (src/clients/service.ts
 * `sweepUnusedClients`), and made again, audited again, at its next use.
 */

/** Cache-Control max-age is honoured within [1 min, 1 day]; without it, 5 min (as for a jwks_uri). */
export const METADATA_DOCUMENT_CACHE = Object.freeze({
  minMaxAgeMs: 60_000,
  maxMaxAgeMs: 86_400_000,
  defaultMaxAgeMs: 300_000,
  /** A document that could not be fetched or was refused is not tried again for 30 s. */
  retryAfterFailureMs: 30_000,
});

/** The longest client id URL (the longest presented client id). */
const MAX_CLIENT_ID_URL = 256;
const MAX_NAME = 100;
const MAX_SCOPES = 100;
const MAX_SCOPE_LENGTH = 1000;
// RFC 6749 §3.3 scope-token.
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
/** The grants such a client may have: never client_credentials. */
const DOCUMENT_GRANTS: readonly string[] = [AUTHORIZATION_CODE, REFRESH_TOKEN];
/** Loopback hosts a document may be served from outside production (tests, development). */
const DEV_HTTP_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** A URL client id whose document could not be had or does not qualify: why, for the log (never for the client). */
export class MetadataDocumentRefused extends Error {
  readonly code = 'ERR_METADATA_DOCUMENT';
  constructor(message: string) {
    super(message);
    this.name = 'MetadataDocumentRefused';
  }
}

export interface MetadataDocumentRules {
  /** NODE_ENV=production: https only, public destinations only, no localhost redirect URIs. */
  production: boolean;
}

/**
 * The URL when `id` is a client id URL: `https` with a path (outside production also `http` on
 * 127.0.0.1, [::1] or localhost, any port), in its normal form (so that one document has one id),
 * without user information, fragment or dot segments; in production not a reserved address.
 */
export function clientIdUrl(id: string, rules: MetadataDocumentRules): URL | undefined {
  if (id.length > MAX_CLIENT_ID_URL || !/^https?:\/\//.test(id)) return undefined;
  let url: URL;
  try {
    url = new URL(id);
  } catch {
    return undefined;
  }
  if (url.href !== id || url.username !== '' || url.password !== '' || url.hash !== '' || url.pathname === '/') return undefined;
  if (url.protocol === 'http:' && (rules.production || !DEV_HTTP_HOSTS.has(url.hostname))) return undefined;
  if (rules.production && productionHostRefusal(url) !== undefined) return undefined;
  return url;
}

/** What a document says, checked: the client row is made of it. */
export interface MetadataDocument {
  name: string;
  redirectUris: string[];
  postLogoutRedirectUris: string[];
  tokenEndpointAuthMethod: Extract<TokenEndpointAuthMethod, 'none' | 'private_key_jwt'>;
  jwks: StoredClientJwks | null;
  jwksUri: string | null;
  /** The scopes it may ask for (RFC 7591 `scope`); empty: any a requested resource offers. */
  scopes: string[];
  grantTypes: string[];
}

function stringList(value: unknown, member: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new MetadataDocumentRefused(`${member} is not an array of strings`);
  return value as string[];
}

/** Checks a fetched document for client id `id`; throws MetadataDocumentRefused naming the first fault. */
export function readMetadataDocument(id: string, body: unknown, rules: MetadataDocumentRules): MetadataDocument {
  const refuse = (why: string) => new MetadataDocumentRefused(`metadata document ${id}: ${why}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw refuse('not a JSON object');
  const doc = body as Record<string, unknown>;
  if (doc.client_id !== id) throw refuse('its client_id is not exactly the URL it was fetched from');
  if (doc.client_secret !== undefined) throw refuse('it holds a client_secret; a published document cannot');
  const method = doc.token_endpoint_auth_method ?? 'none';
  if (method !== 'none' && method !== 'private_key_jwt') throw refuse(`token_endpoint_auth_method ${JSON.stringify(method)}: only none and private_key_jwt`);
  try {
    const redirectUris = validateRedirectUris(stringList(doc.redirect_uris, 'redirect_uris'), rules);
    if (!Array.isArray(redirectUris)) throw refuse(redirectUris.message);
    if (redirectUris.length === 0) throw refuse('redirect_uris is empty');
    const postLogout = doc.post_logout_redirect_uris === undefined ? [] : validateRedirectUris(stringList(doc.post_logout_redirect_uris, 'post_logout_redirect_uris'), rules);
    if (!Array.isArray(postLogout)) throw refuse(postLogout.message);
    if (doc.response_types !== undefined && !stringList(doc.response_types, 'response_types').includes('code')) throw refuse('response_types does not include code');
    // Grants this provider never gives such a client (client_credentials above all) are dropped, as at dynamic registration.
    const asked = doc.grant_types === undefined ? DOCUMENT_GRANTS : stringList(doc.grant_types, 'grant_types');
    const grantTypes = DOCUMENT_GRANTS.filter((g) => asked.includes(g));
    if (!grantTypes.includes(AUTHORIZATION_CODE)) throw refuse('grant_types does not include authorization_code');
    let jwks: StoredClientJwks | null = null;
    let jwksUri: string | null = null;
    if (method === 'private_key_jwt') {
      if ((doc.jwks === undefined) === (doc.jwks_uri === undefined)) throw refuse('private_key_jwt needs exactly one of jwks and jwks_uri');
      if (doc.jwks !== undefined) jwks = checkClientJwks(doc.jwks).jwks;
      else if (typeof doc.jwks_uri === 'string') jwksUri = checkJwksUri(doc.jwks_uri, rules);
      else throw refuse('jwks_uri is not a string');
    }
    let scopes: string[] = [];
    if (doc.scope !== undefined) {
      if (typeof doc.scope !== 'string' || doc.scope.length > MAX_SCOPE_LENGTH) throw refuse(`scope is not a string of at most ${MAX_SCOPE_LENGTH} characters`);
      scopes = [...new Set(doc.scope.split(' ').filter((s) => s !== ''))];
      if (scopes.length > MAX_SCOPES || scopes.some((s) => !SCOPE_TOKEN.test(s))) throw refuse('scope is malformed (RFC 6749 §3.3) or lists too many');
    }
    // Shown on the consent page next to the document's host, which is what the user should judge by.
    const named = typeof doc.client_name === 'string' ? doc.client_name.replace(/[\p{Cc}\p{Cf}]/gu, '').trim().slice(0, MAX_NAME) : '';
    return {
      name: named === '' ? new URL(id).host : named,
      redirectUris,
      postLogoutRedirectUris: postLogout,
      tokenEndpointAuthMethod: method,
      jwks,
      jwksUri,
      scopes,
      grantTypes,
    };
  } catch (error) {
    if (error instanceof MetadataDocumentRefused) throw error;
    throw refuse((error as Error).message);
  }
}

/** The row of a document's client as the client cache holds it, compared with the document (a write only when they differ). */
function sameAsStored(client: Client, doc: MetadataDocument): boolean {
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((v, i) => v === b[i]);
  return (
    client.name === doc.name &&
    client.tokenEndpointAuthMethod === doc.tokenEndpointAuthMethod &&
    client.jwksUri === doc.jwksUri &&
    JSON.stringify(client.jwks) === JSON.stringify(doc.jwks) &&
    same(client.scopes, doc.scopes) &&
    same(client.redirectUris, doc.redirectUris) &&
    same(client.postLogoutRedirectUris, doc.postLogoutRedirectUris) &&
    same(client.grantTypes, doc.grantTypes)
  );
}

/** Who brought a document's client in: the request's address (and id), for the audit event of its creation. */
export interface DocumentRequestOrigin {
  ip: string;
  requestId?: string;
}

/** Creates (audited) or updates the document's client row. */
async function storeDocumentClient(db: Kysely<Database>, id: string, doc: MetadataDocument, audience: string, now: Date, origin: DocumentRequestOrigin | undefined): Promise<void> {
  const fields = {
    name: doc.name,
    scopes: JSON.stringify(doc.scopes),
    jwks: doc.jwks ? JSON.stringify(doc.jwks) : null,
    jwks_uri: doc.jwksUri,
    token_endpoint_auth_method: doc.tokenEndpointAuthMethod,
    redirect_uris: JSON.stringify(doc.redirectUris),
    post_logout_redirect_uris: JSON.stringify(doc.postLogoutRedirectUris),
    grant_types: JSON.stringify(doc.grantTypes),
    updated_at: now,
  };
  await db.transaction().execute(async (trx) => {
    const created = await trx
      .insertInto('oauth_clients')
      .values({
        id,
        ...fields,
        secret_hash: null,
        previous_secret_hash: null,
        previous_secret_expires_at: null,
        // Unused for such a client (it may ask for registered resources only); the column needs one.
        audiences: JSON.stringify([audience]),
        tenant_id: null,
        token_ttl_seconds: null,
        disabled_at: null,
        created_at: now,
        first_party: false,
        registered_by: 'metadata_document',
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .returning('id')
      .executeTakeFirst();
    if (created) {
      await recordAudit(trx, {
        actor: origin ? `ip:${origin.ip}` : 'system',
        action: 'client.created',
        target: id,
        reason: `first use of its client ID metadata document${origin ? ` from ${origin.ip}` : ''}`,
        ...(origin?.requestId !== undefined && { requestId: origin.requestId }),
        at: now,
        details: {
          registered_by: 'metadata_document',
          name: doc.name,
          redirect_uris: doc.redirectUris,
          token_endpoint_auth_method: doc.tokenEndpointAuthMethod,
          scopes: doc.scopes,
          grant_types: doc.grantTypes,
        },
      });
      return;
    }
    // Never over another kind of client (ids of those cannot be URLs, but the row says what it is); disabled stays disabled.
    await trx.updateTable('oauth_clients').set(fields).where('id', '=', id).where('registered_by', '=', 'metadata_document').execute();
  });
}

export interface MetadataDocumentClientsOptions extends MetadataDocumentRules {
  db: Kysely<Database>;
  /** The client cache: the row, fresh through its notifications; `forget` after the row was written. */
  clients: { get(id: string): Client | undefined | Promise<Client | undefined>; forget(id: string): void };
  /** IDP_CLIENT_AUDIENCE: the row's audience (a client row holds at least one). */
  defaultAudience: string;
  /** IDP_CLIENT_CACHE_SIZE: the most documents whose freshness is remembered. */
  maxEntries: number;
  logger: Logger;
  now: () => Date;
  /** How a document is fetched (the safe fetcher by default). */
  fetch?: (url: URL) => Promise<FetchedJson>;
}

interface DocumentState {
  /** Until then the row matches the document: no fetch. */
  freshUntil: number;
  /** After a failure, not fetched again before this. */
  retryAfter: number;
  lastError: string | undefined;
  pending: Promise<void> | undefined;
}

/**
 * Resolves client id URLs into clients. Bounded: at most `maxEntries` documents' freshness is kept
 * (least recently used out); one fetch at a time per document, shared by the requests that wait for it.
 */
export class MetadataDocumentClients {
  private readonly states: LRUCache<string, DocumentState>;
  private readonly fetch: (url: URL) => Promise<FetchedJson>;

  constructor(private readonly options: MetadataDocumentClientsOptions) {
    this.states = new LRUCache({ max: options.maxEntries });
    this.fetch =
      options.fetch ??
      ((url) =>
        fetchJson(url, {
          production: options.production,
          timeoutMs: JWKS_URI_TIMEOUT_MS,
          maxBytes: JWKS_URI_MAX_BYTES,
          accept: 'application/json',
          failure: (message) => new MetadataDocumentRefused(message),
        }));
  }

  /** Whether `id` is a client id URL (so its client is resolved here, not looked up). */
  isClientIdUrl(id: string): boolean {
    return clientIdUrl(id, this.options) !== undefined;
  }

  /**
   * The client of a client id URL (undefined when `id` is not one), its document fetched when not
   * fresh (and when its row is gone). `origin`: the request that asks, named in the audit event when
   * the row is made. Throws MetadataDocumentRefused when the document cannot be had or does not
   * qualify; a database failure as it is.
   */
  async resolve(id: string, origin?: DocumentRequestOrigin): Promise<Client | undefined> {
    const url = clientIdUrl(id, this.options);
    if (!url) return undefined;
    let state = this.states.get(id);
    if (!state) {
      state = { freshUntil: 0, retryAfter: 0, lastError: undefined, pending: undefined };
      this.states.set(id, state);
    }
    const fresh = this.options.now().getTime() < state.freshUntil;
    if (!fresh) await this.loaded(id, url, state, origin);
    const client = await this.options.clients.get(id);
    if (client || !fresh) return client;
    // Fresh, yet no row: swept or deleted since (here or by another instance). The document makes it again.
    state.freshUntil = 0;
    await this.loaded(id, url, state, origin);
    return this.options.clients.get(id);
  }

  /** One load at a time per document, shared by the requests that wait for it; none within 30 s of a failure. */
  private async loaded(id: string, url: URL, state: DocumentState, origin: DocumentRequestOrigin | undefined): Promise<void> {
    if (!state.pending && this.options.now().getTime() < state.retryAfter) throw new MetadataDocumentRefused(state.lastError ?? `metadata document ${id} refused`);
    state.pending ??= this.load(id, url, state, origin).finally(() => {
      state.pending = undefined;
    });
    await state.pending;
  }

  private async load(id: string, url: URL, state: DocumentState, origin: DocumentRequestOrigin | undefined): Promise<void> {
    let doc: MetadataDocument;
    let fetched: FetchedJson;
    try {
      fetched = await this.fetch(url);
      doc = readMetadataDocument(id, fetched.body, this.options);
    } catch (error) {
      const refused = error instanceof MetadataDocumentRefused ? error : new MetadataDocumentRefused(`metadata document ${id}: ${(error as Error).message}`);
      state.freshUntil = 0;
      state.lastError = refused.message;
      state.retryAfter = this.options.now().getTime() + METADATA_DOCUMENT_CACHE.retryAfterFailureMs;
      this.options.logger.warn({ client_id: id, err: refused.message }, 'a client ID metadata document was refused');
      throw refused;
    }
    const stored = await this.options.clients.get(id);
    if (stored && stored.registeredBy !== 'metadata_document') throw new MetadataDocumentRefused(`client ${id} exists and was not registered by a metadata document`);
    if (!stored || !sameAsStored(stored, doc)) {
      await storeDocumentClient(this.options.db, id, doc, this.options.defaultAudience, this.options.now(), origin);
      this.options.clients.forget(id);
    }
    const now = this.options.now().getTime();
    const maxAge = fetched.maxAgeMs ?? METADATA_DOCUMENT_CACHE.defaultMaxAgeMs;
    state.freshUntil = now + Math.min(METADATA_DOCUMENT_CACHE.maxMaxAgeMs, Math.max(METADATA_DOCUMENT_CACHE.minMaxAgeMs, maxAge));
    state.lastError = undefined;
    state.retryAfter = 0;
  }
}
