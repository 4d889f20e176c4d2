import type { Router, Request } from 'express';
import { quoted } from '../text';
import { findClient, listClients } from '../clients/repository';
import { clientView } from '../clients/view';
import {
  changeClient,
  checkClientKeys,
  clientPolicy,
  createClient,
  createClientWithKeys,
  createPublicClient,
  deleteClient,
  parseGrace,
  rotateClientSecret,
  setClientKeys,
  type ClientKeysInput,
} from '../clients/service';
import { ApiError } from '../http/api-error';
import { pagePosition } from '../http/cursor';
import { parseInput as parse } from '../http/input';
import { createClientBody, listClientsQuery, patchClientBody, rotateSecretBody } from './schemas';
import { clientError, change, type Guard } from './http';

/** /admin/v1/clients: the same service as `idp clients`; every change is audited there with the admin token as actor. */
export function clientRoutes(router: Router, guard: Guard): void {
  const clientId = (req: Request) => String(req.params.clientId);
  /** private_key_jwt keys of a body (`jwks` or `jwks_uri`, exactly one), or undefined when it has neither. */
  const keysOf = (body: { jwks?: unknown; jwks_uri?: string }): ClientKeysInput | undefined => {
    if (body.jwks !== undefined && body.jwks_uri !== undefined) throw new ApiError('invalid_request', 'body: give jwks or jwks_uri, not both');
    if (body.jwks_uri !== undefined) return { jwksUri: body.jwks_uri };
    return body.jwks === undefined ? undefined : { jwks: body.jwks };
  };

  router.get(
    '/clients',
    guard('clients:read', async (req, res, _caller, deps) => {
      const query = parse(listClientsQuery, req.query, 'query');
      const page = await listClients(deps.db, { limit: query.limit, after: pagePosition(deps.cursors, 'clients', query.cursor) });
      res.json({ clients: page.clients.map(clientView), next_cursor: page.next ? deps.cursors.encode('clients', page.next) : null });
    }),
  );
  router.post(
    '/clients',
    guard('clients:write', async (req, res, caller, deps) => {
      const body = parse(createClientBody, req.body ?? {}, 'body');
      const keys = keysOf(body);
      const input = {
        name: body.name,
        scopes: body.scopes,
        audiences: body.audiences,
        tenantId: body.tenant_id,
        tokenTtlSeconds: body.token_ttl_seconds,
        redirectUris: body.redirect_uris,
        postLogoutRedirectUris: body.post_logout_redirect_uris,
        grantTypes: body.grant_types,
        firstParty: body.first_party,
      };
      const method = body.token_endpoint_auth_method;
      if (method === 'private_key_jwt') {
        if (!keys) throw new ApiError('invalid_request', 'body: private_key_jwt needs jwks or jwks_uri');
        const client = await createClientWithKeys(deps.db, { ...input, keys }, clientPolicy(deps.settings), change(deps, req, caller)).catch(clientError);
        // No secret exists for it: it authenticates with assertions signed by its keys.
        res.status(201).json(clientView(client));
        return;
      }
      if (keys) throw new ApiError('invalid_request', 'body: jwks and jwks_uri go with token_endpoint_auth_method "private_key_jwt"');
      if (method === 'none') {
        // A public client: no secret to show, nothing to store but its settings.
        const client = await createPublicClient(deps.db, input, clientPolicy(deps.settings), change(deps, req, caller)).catch(clientError);
        res.status(201).json(clientView(client));
        return;
      }
      const { client, secret } = await createClient(deps.db, { ...input, method }, clientPolicy(deps.settings), change(deps, req, caller)).catch(clientError);
      // The secret is shown once, here; only its hash is stored.
      res.status(201).json({ ...clientView(client), client_secret: secret });
    }),
  );
  router.get(
    '/clients/:clientId',
    guard('clients:read', async (req, res, _caller, deps) => {
      const client = await findClient(deps.db, clientId(req));
      if (!client) throw new ApiError('not_found', `no client ${quoted(clientId(req))}`);
      res.json(clientView(client));
    }),
  );
  router.patch(
    '/clients/:clientId',
    guard('clients:write', async (req, res, caller, deps) => {
      const body = parse(patchClientBody, req.body ?? {}, 'body');
      const now = deps.now();
      const policy = clientPolicy(deps.settings);
      const { jwks: _jwks, jwks_uri: _jwksUri, token_endpoint_auth_method: method, ...settings } = body;
      const keys = keysOf(body);
      if (method !== undefined && !keys) throw new ApiError('invalid_request', 'body: private_key_jwt needs jwks or jwks_uri');
      // Keys are checked before anything is written, so a bad key set leaves the other fields unchanged too.
      if (keys) {
        try {
          checkClientKeys(keys, policy);
        } catch (error) {
          clientError(error);
        }
      }
      let client;
      if (!keys || Object.keys(settings).length > 0) {
        client = await changeClient(
          deps.db,
          clientId(req),
          {
            name: body.name,
            scopes: body.scopes,
            audiences: body.audiences,
            tokenTtlSeconds: body.token_ttl_seconds,
            disabledAt: body.disabled === undefined ? undefined : body.disabled ? now : null,
            redirectUris: body.redirect_uris,
            postLogoutRedirectUris: body.post_logout_redirect_uris,
            grantTypes: body.grant_types,
            firstParty: body.first_party,
          },
          policy,
          { ...change(deps, req, caller), now },
        ).catch(clientError);
      }
      // Replacing the keys (a client with a secret loses it): audited as client.keys-replaced.
      if (keys) client = await setClientKeys(deps.db, clientId(req), keys, policy, { ...change(deps, req, caller), now }).catch(clientError);
      res.json(clientView(client as NonNullable<typeof client>));
    }),
  );
  router.delete(
    '/clients/:clientId',
    guard('clients:write', async (req, res, caller, deps) => {
      await deleteClient(deps.db, clientId(req), change(deps, req, caller)).catch(clientError);
      res.status(204).end();
    }),
  );
  router.post(
    '/clients/:clientId/secret',
    guard('clients:write', async (req, res, caller, deps) => {
      const body = parse(rotateSecretBody, req.body ?? {}, 'body');
      const graceMs = body.grace === undefined ? deps.settings.clientSecretGraceMs : parseGrace(body.grace);
      if (graceMs === undefined) throw new ApiError('invalid_request', `grace ${quoted(String(body.grace))} is not a duration such as 0s, 1h or 1d`);
      const rotated = await rotateClientSecret(deps.db, clientId(req), graceMs, change(deps, req, caller)).catch(clientError);
      res.json({
        client_id: clientId(req),
        client_secret: rotated.secret,
        previous_secret_valid_until: rotated.previousValidUntil ? rotated.previousValidUntil.toISOString() : null,
      });
    }),
  );
}
