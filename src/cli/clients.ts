import fs from 'node:fs';
import type { Command } from 'commander';
import type { Kysely } from 'kysely';
import { findClient, listClients } from '../clients/repository';
import { clientView, type ClientView } from '../clients/view';
import { MAX_INLINE_JWKS_BYTES } from '../clients/jwks';
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../json-depth';
import {
  changeClient,
  ClientError,
  clientPolicy,
  createClient,
  createClientWithKeys,
  createPublicClient,
  deleteClient,
  disableClient,
  parseScope,
  rotateClientSecret,
  setClientKeys,
  type ClientKeysInput,
} from '../clients/service';
import { parseDuration } from '../config/duration';
import type { Database } from '../db/schema';
import { listClientsQuery } from '../admin/schemas';
import { CursorCodec } from '../http/cursor';
import { CliError, table, type CliContext, type OutputOptions } from './context';
import { mekOf } from './services';
import { printable } from './text';
import { quoted } from '../text';

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

function durationOption(name: string, text: string, allowZero: boolean): number {
  const ms = /^0+[smhd]?$/.test(text) && allowZero ? 0 : parseDuration(text);
  if (ms === undefined || (ms <= 0 && !allowZero)) throw new CliError(`${name} "${text}" is not a duration such as 90s, 15m, 1h or 7d`);
  return ms;
}

/** The keys of `--jwks-file F | --jwks-uri URL` (exactly one), the file read and parsed here. */
function keysOption(opts: { jwksFile?: string; jwksUri?: string }): ClientKeysInput {
  if ((opts.jwksFile === undefined) === (opts.jwksUri === undefined)) throw new CliError('give exactly one of --jwks-file and --jwks-uri');
  if (opts.jwksUri !== undefined) return { jwksUri: opts.jwksUri };
  const file = opts.jwksFile as string;
  let text: string;
  try {
    if (fs.statSync(file).size > MAX_INLINE_JWKS_BYTES) throw new CliError(`--jwks-file ${file} is over ${MAX_INLINE_JWKS_BYTES} bytes`);
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(`--jwks-file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  let jwks: unknown;
  try {
    jwks = JSON.parse(text);
  } catch {
    throw new CliError(`--jwks-file ${file} is not JSON (a JSON Web Key Set {"keys": [...]} is expected)`);
  }
  if (nestedDeeperThan(jwks)) throw new CliError(`--jwks-file ${file} is nested more than ${MAX_JSON_DEPTH} levels deep (a JSON Web Key Set {"keys": [...]} is expected)`);
  return { jwks };
}

/** How a client's keys read in one line: the jwks_uri, or the kids of its JWKS. */
function keysText(view: ClientView): string {
  if (view.jwks_uri !== undefined) return `jwks_uri ${view.jwks_uri}`;
  return `jwks ${(view.jwks?.keys ?? []).map((k) => k.kid ?? `(${k.kty} without kid)`).join(' ')}`;
}

/**
 * The authorization-code flow's settings of a client as the JSON of `create` shows them: nothing for a
 * plain client-credentials client, whose `create` JSON keeps its documented shape
 * `{client_id, client_secret, name, scopes, audiences}`; all of them for any other.
 */
function flowJson(view: ClientView) {
  const plain =
    view.redirect_uris.length === 0 &&
    view.post_logout_redirect_uris.length === 0 &&
    !view.first_party &&
    view.grant_types.length === 1 &&
    view.grant_types[0] === 'client_credentials' &&
    view.token_endpoint_auth_method === 'client_secret_basic';
  return plain ? {} : flowFields(view);
}

function flowFields(view: ClientView) {
  return {
    token_endpoint_auth_method: view.token_endpoint_auth_method,
    redirect_uris: view.redirect_uris,
    post_logout_redirect_uris: view.post_logout_redirect_uris,
    grant_types: view.grant_types,
    first_party: view.first_party,
  };
}

/** Lines of the readable output for a client's flow settings, when it has any beyond the defaults. */
function flowText(view: ClientView): string {
  const lines = [`grant_types:   ${view.grant_types.join(' ')}`];
  if (view.redirect_uris.length > 0) lines.push(`redirect_uris: ${view.redirect_uris.join(' ')}`);
  if (view.post_logout_redirect_uris.length > 0) lines.push(`post_logout_redirect_uris: ${view.post_logout_redirect_uris.join(' ')}`);
  if (view.first_party) lines.push('first_party:   yes (never asks for consent)');
  return lines.join('\n');
}

function scopeOption(text: string): string[] {
  const scopes = parseScope(text);
  if (scopes === undefined) throw new CliError(`--scope "${text}" is not a space-separated list of scopes (RFC 6749 §3.3)`);
  return scopes;
}

type CreateOptions = OutputOptions & {
  name: string;
  scope: string;
  audience: string[];
  tenant?: string;
  tokenTtl?: string;
  authMethod: string;
  jwksFile?: string;
  jwksUri?: string;
  redirectUri?: string[];
  postLogoutRedirectUri?: string[];
  grantType?: string[];
  public?: boolean;
  firstParty?: boolean;
};

type UpdateOptions = OutputOptions & {
  redirectUri?: string[];
  clearRedirectUris?: boolean;
  postLogoutRedirectUri?: string[];
  clearPostLogoutRedirectUris?: boolean;
  grantType?: string[];
  defaultGrantTypes?: boolean;
  scope?: string;
  firstParty?: boolean;
  thirdParty?: boolean;
};

export function registerClientCommands(program: Command, context: CliContext): void {
  const clients = program.command('clients').description('OAuth clients (client credentials, authorization code)');
  const now = () => (context.overrides.now ?? (() => new Date()))();
  /** Opens and migrates the database, and turns a refused change into one line on stderr. */
  const withDb = <T>(work: (db: Kysely<Database>) => Promise<T>) => context.withMigratedDatabase((handle) => work(handle.db), [ClientError]);

  clients
    .command('create')
    .description('add a client; prints its client_id and client_secret (the secret is shown once), or registers its public keys (private_key_jwt)')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--scope <scopes>', 'allowed scopes, space-separated')
    .option('--audience <audience>', 'an allowed audience (repeat for more; the first is the default)', collect, [])
    .option('--tenant <id>', 'the tenant the client belongs to')
    .option('--token-ttl <duration>', 'access token lifetime for this client (at most IDP_CLIENT_TOKEN_TTL)')
    .option('--auth-method <method>', 'client_secret_basic (a secret, by Basic or in the form) or private_key_jwt (no secret: JWTs signed by its keys)', 'client_secret_basic')
    .option('--jwks-file <file>', 'private_key_jwt: a JSON Web Key Set of its public keys')
    .option('--jwks-uri <url>', 'private_key_jwt: where it publishes its public keys (https)')
    .option('--redirect-uri <uri>', 'a redirect URI of the authorization-code flow (repeat for more)', collect)
    .option('--post-logout-redirect-uri <uri>', 'where sign-out may return to (repeat for more)', collect)
    .option('--grant-type <grant>', 'a grant it may use (repeat; full URNs for extension grants; replaces the default)', collect)
    .option('--public', 'a public client: no secret, no keys (SPAs, native apps, CLIs); needs --redirect-uri')
    .option('--first-party', 'never ask users for consent')
    .option('--json', 'print JSON')
    .action(async (opts: CreateOptions) => {
      const config = context.config();
      const scopes = scopeOption(opts.scope);
      const ttlMs = opts.tokenTtl === undefined ? undefined : durationOption('--token-ttl', opts.tokenTtl, false);
      if (ttlMs !== undefined && ttlMs % 1000 !== 0) throw new CliError('--token-ttl must be whole seconds');
      const input = {
        name: opts.name,
        scopes,
        audiences: opts.audience ?? [],
        tenantId: opts.tenant ?? null,
        tokenTtlSeconds: ttlMs === undefined ? null : ttlMs / 1000,
        redirectUris: opts.redirectUri,
        postLogoutRedirectUris: opts.postLogoutRedirectUri,
        grantTypes: opts.grantType,
        firstParty: opts.firstParty === true,
      };
      if (opts.public) {
        if (opts.authMethod !== 'client_secret_basic' || opts.jwksFile !== undefined || opts.jwksUri !== undefined) {
          throw new CliError('--public has no credentials: not with --auth-method, --jwks-file or --jwks-uri');
        }
        const client = await withDb((db) => createPublicClient(db, input, clientPolicy(config), { actor: 'cli', now: now() }));
        const view = clientView(client);
        context.print(
          opts,
          { client_id: client.id, client_secret: null, name: client.name, scopes: client.scopes, audiences: client.audiences, ...flowJson(view) },
          `client_id:     ${client.id}\n(no secret: a public client, PKCE is its only proof)\n${flowText(view)}`,
        );
        return;
      }
      if (opts.authMethod === 'private_key_jwt') {
        const keys = keysOption(opts);
        const client = await withDb((db) => createClientWithKeys(db, { ...input, keys }, clientPolicy(config), { actor: 'cli', now: now() }));
        const view = clientView(client);
        context.print(
          opts,
          {
            client_id: client.id,
            client_secret: null,
            token_endpoint_auth_method: view.token_endpoint_auth_method,
            name: client.name,
            scopes: client.scopes,
            audiences: client.audiences,
            ...flowJson(view),
            ...(view.jwks_uri !== undefined ? { jwks_uri: view.jwks_uri } : { jwks: view.jwks }),
          },
          `client_id: ${client.id}\n(no secret: it authenticates with private_key_jwt, ${keysText(view)})\n${flowText(view)}`,
        );
        return;
      }
      const method = opts.authMethod;
      if (method !== 'client_secret_basic' && method !== 'client_secret_post') {
        throw new CliError(`--auth-method "${method}" is not one of client_secret_basic, client_secret_post, private_key_jwt (or --public)`);
      }
      if (opts.jwksFile !== undefined || opts.jwksUri !== undefined) throw new CliError('--jwks-file and --jwks-uri go with --auth-method private_key_jwt');
      const { client, secret } = await withDb((db) => createClient(db, { ...input, method }, clientPolicy(config), { actor: 'cli', now: now() }));
      const view = clientView(client);
      context.print(
        opts,
        { client_id: client.id, client_secret: secret, name: client.name, scopes: client.scopes, audiences: client.audiences, ...flowJson(view) },
        `client_id:     ${client.id}\nclient_secret: ${secret}\n(the secret is shown once: store it now)\n${flowText(view)}`,
      );
    });

  clients
    .command('update')
    .description('change the authorization-code settings or scopes of a client; each list given replaces the old one')
    .argument('<id>', 'client_id')
    .option('--redirect-uri <uri>', 'a redirect URI (repeat for more; replaces the list)', collect)
    .option('--clear-redirect-uris', 'remove every redirect URI')
    .option('--post-logout-redirect-uri <uri>', 'where sign-out may return to (repeat for more; replaces the list)', collect)
    .option('--clear-post-logout-redirect-uris', 'remove every post-logout redirect URI')
    .option('--grant-type <grant>', 'a grant it may use (repeat; full URNs for extension grants; replaces the list)', collect)
    .option('--default-grant-types', 'back to the default grants (client_credentials without redirect URIs, authorization_code refresh_token with them)')
    .option('--scope <scopes>', 'allowed scopes, space-separated (replaces them)')
    .option('--first-party', 'never ask users for consent')
    .option('--third-party', 'ask users for consent (the default)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: UpdateOptions) => {
      const config = context.config();
      const both = (a: unknown, b: unknown, names: string) => {
        if (a !== undefined && b !== undefined) throw new CliError(`give one of ${names}`);
      };
      both(opts.redirectUri, opts.clearRedirectUris, '--redirect-uri and --clear-redirect-uris');
      both(opts.postLogoutRedirectUri, opts.clearPostLogoutRedirectUris, '--post-logout-redirect-uri and --clear-post-logout-redirect-uris');
      both(opts.grantType, opts.defaultGrantTypes, '--grant-type and --default-grant-types');
      both(opts.firstParty, opts.thirdParty, '--first-party and --third-party');
      const changes = {
        ...(opts.redirectUri !== undefined && { redirectUris: opts.redirectUri }),
        ...(opts.clearRedirectUris && { redirectUris: [] }),
        ...(opts.postLogoutRedirectUri !== undefined && { postLogoutRedirectUris: opts.postLogoutRedirectUri }),
        ...(opts.clearPostLogoutRedirectUris && { postLogoutRedirectUris: [] }),
        ...(opts.grantType !== undefined && { grantTypes: opts.grantType }),
        ...(opts.defaultGrantTypes && { grantTypes: null }),
        ...(opts.scope !== undefined && { scopes: scopeOption(opts.scope) }),
        ...(opts.firstParty && { firstParty: true }),
        ...(opts.thirdParty && { firstParty: false }),
      };
      if (Object.keys(changes).length === 0) throw new CliError('nothing to change: give at least one option (see idp clients update --help)');
      const client = await withDb((db) => changeClient(db, id, changes, clientPolicy(config), { actor: 'cli', now: now() }));
      const view = clientView(client);
      const updated = Object.keys(changes).map((k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
      context.print(opts, { client_id: id, updated, ...flowFields(view), scopes: view.scopes }, `updated client ${id}: ${updated.join(', ')}\n${flowText(view)}`);
    });

  clients
    .command('list')
    .description('clients, newest first, a page at a time (never a secret); prints next_cursor when there are more')
    .option('--limit <n>', 'clients on the page, 1 to 500 (default 100)')
    .option('--cursor <cursor>', 'the next_cursor of the previous page, unchanged')
    .option('--json', 'print JSON: {clients, next_cursor}, as GET /admin/v1/clients')
    .action(async (opts: OutputOptions & { limit?: string; cursor?: string }) => {
      // The rules and defaults of GET /admin/v1/clients, whose cursors are interchangeable with these.
      const parsed = listClientsQuery.safeParse({ limit: opts.limit, cursor: opts.cursor });
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new CliError(`--${String(issue?.path[0] ?? 'limit')}: ${issue?.message ?? 'invalid'}`);
      }
      const { limit, cursor } = parsed.data;
      // Read inside the command's database work, so that a command handed to the running server
      // (src/cli/program.ts) reads the cursor under the server's MEK ring. The ring is loaded only
      // when a cursor is read or written: a list that fits on one page needs none.
      const { clients: found, next } = await withDb(async (db) => {
        let cursors: CursorCodec | undefined;
        const codec = () => (cursors ??= new CursorCodec(mekOf(context)));
        const after = cursor === undefined ? undefined : codec().decode('clients', cursor);
        if (cursor !== undefined && after === undefined) throw new CliError('--cursor: not a cursor of idp clients list or GET /admin/v1/clients (pass next_cursor back unchanged)');
        const page = await listClients(db, { limit, after });
        return { clients: page.clients, next: page.next ? codec().encode('clients', page.next) : null };
      });
      const list = found.map(clientView);
      const rows = list.map((c) => ({ ...c, scopes: c.scopes.join(' '), audiences: c.audiences.join(' ') }));
      const text = table(rows, ['client_id', 'name', 'scopes', 'audiences', 'tenant_id', 'registered_by', 'disabled_at', 'created_at']);
      context.print(opts, { clients: list, next_cursor: next }, next ? `${text}\nnext_cursor: ${next}` : text);
    });

  clients
    .command('show')
    .description('one client')
    .argument('<id>', 'client_id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      const client = await withDb((db) => findClient(db, id));
      if (!client) throw new CliError(`no client ${quoted(id)}`);
      const view = clientView(client);
      const text = Object.entries({ ...view, ...(view.jwks !== undefined && { jwks: keysText(view).slice('jwks '.length) }) })
        .map(([k, v]) => `${k.padEnd(28)} ${printable(Array.isArray(v) ? v.join(' ') : String(v ?? '-'))}`)
        .join('\n');
      context.print(opts, view, text);
    });

  clients
    .command('rotate-secret')
    .description('issue a new secret; the previous one keeps working for the grace period')
    .argument('<id>', 'client_id')
    .option('--grace <duration>', 'how long the previous secret keeps working (default IDP_CLIENT_SECRET_GRACE; 0s after a leak)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions & { grace?: string }) => {
      const graceMs = opts.grace === undefined ? context.config().clientSecretGraceMs : durationOption('--grace', opts.grace, true);
      const { secret, previousValidUntil } = await withDb((db) => rotateClientSecret(db, id, graceMs, { actor: 'cli', now: now() }));
      const until = previousValidUntil?.toISOString() ?? null;
      context.print(
        opts,
        { client_id: id, client_secret: secret, previous_secret_valid_until: until },
        `client_secret: ${secret}\n(the secret is shown once)\nprevious secret valid until: ${until ?? 'no longer valid'}`,
      );
    });

  clients
    .command('set-keys')
    .description('replace the public keys of a private_key_jwt client (a client with a secret loses it and uses private_key_jwt from now on)')
    .argument('<id>', 'client_id')
    .option('--jwks-file <file>', 'a JSON Web Key Set of its public keys')
    .option('--jwks-uri <url>', 'where it publishes its public keys (https)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions & { jwksFile?: string; jwksUri?: string }) => {
      const config = context.config();
      const keys = keysOption(opts);
      const client = await withDb((db) => setClientKeys(db, id, keys, clientPolicy(config), { actor: 'cli', now: now() }));
      const view = clientView(client);
      context.print(
        opts,
        {
          client_id: id,
          token_endpoint_auth_method: view.token_endpoint_auth_method,
          ...(view.jwks_uri !== undefined ? { jwks_uri: view.jwks_uri } : { jwks: view.jwks }),
          updated_at: view.updated_at,
        },
        `replaced the keys of client ${id}: ${keysText(view)}`,
      );
    });

  clients
    .command('disable')
    .description('refuse tokens to a client from now on; its tokens introspect as inactive')
    .argument('<id>', 'client_id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      const client = await withDb((db) => disableClient(db, id, { actor: 'cli', now: now() }));
      context.print(opts, { client_id: id, disabled: true, disabled_at: client.disabledAt?.toISOString() ?? null }, `disabled client ${id}`);
    });

  clients
    .command('delete')
    .description('delete a client; its tokens introspect as inactive')
    .argument('<id>', 'client_id')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: OutputOptions) => {
      await withDb((db) => deleteClient(db, id, { actor: 'cli', now: now() }));
      context.print(opts, { client_id: id, deleted: true }, `deleted client ${id}`);
    });
}
