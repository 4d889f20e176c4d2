import crypto from 'node:crypto';
import { z } from 'zod';
import { createDocument, type oas31, type ZodOpenApiOperationObject, type ZodOpenApiPathsObject } from 'zod-openapi';
import type { Config } from '../config';
import { authorizationServerMetadataBody, introspectionRequest, introspectionResponse, jwksBody, revocationRequest } from '../oauth/schemas';
import {
  CLIENT_AUTHENTICATION,
  formBody,
  json,
  METHOD_NOT_ALLOWED,
  noStore,
  oauthError,
  oauthOperation,
  ok,
  OPENAPI_PATH,
  retryAfter,
  type OpenApiFragment,
} from './openapi-kit';
import { healthBody, readinessBody } from './schemas';

export { OPENAPI_PATH, type OpenApiFragment } from './openapi-kit';

/**
 * The OpenAPI 3.1 document of every route of the public port (GET /openapi.json), generated from the
 * zod schemas the routes validate their input with by zod-openapi: nothing is written twice. The
 * routes every server has (discovery, health, the three OAuth endpoints) are described here; each
 * capability adds its own fragment (its folder's openapi.ts: paths, and its grants' forms at the
 * token endpoint), and the composition root passes the fragments of the capabilities it mounts.
 * /metrics is on the management listener and is not part of it. Built once at start-up; the tests
 * check every response they get against it (test/helpers/openapi.ts).
 */

function corePaths(fragments: readonly OpenApiFragment[]): ZodOpenApiPathsObject {
  const jwks: ZodOpenApiOperationObject = {
    tags: ['Discovery'],
    operationId: 'getJwks',
    summary: 'The public signing keys: current, then next, then previous',
    responses: {
      200: {
        description: 'The JWKS, served from memory.',
        headers: z.object({ 'Cache-Control': z.string().meta({ description: 'public, max-age=IDP_JWKS_MAX_AGE' }), ETag: z.string() }),
        content: json(jwksBody),
      },
      304: { description: 'If-None-Match matched the ETag.' },
      503: oauthError('JwksUnavailable', 'temporarily_unavailable: the signing keys are not loaded yet.', retryAfter),
    },
  };
  const metadata = (operationId: string): ZodOpenApiOperationObject => ({
    tags: ['Discovery'],
    operationId,
    summary: 'RFC 8414 authorization server metadata',
    responses: { 200: { description: 'Only what this server offers.', headers: z.object({ 'Cache-Control': z.string() }), content: json(authorizationServerMetadataBody) } },
  });
  const grants = fragments.flatMap((fragment) => fragment.tokenGrants ?? []);
  const [first, ...others] = grants.map((grant) => grant.request);

  return {
    '/.well-known/jwks.json': { get: jwks, head: { ...jwks, operationId: 'headJwks', summary: 'The JWKS headers' } },
    '/.well-known/oauth-authorization-server': { get: metadata('getAuthorizationServerMetadata') },
    '/.well-known/openid-configuration': { get: metadata('getOpenIdConfiguration') },
    [OPENAPI_PATH]: {
      get: {
        tags: ['Discovery'],
        operationId: 'getOpenApiDocument',
        summary: 'This document',
        responses: {
          200: { description: 'OpenAPI 3.1, generated at start-up.', headers: z.object({ 'Cache-Control': z.string(), ETag: z.string() }), content: json(z.object({ openapi: z.string() }).catchall(z.unknown())) },
          304: { description: 'If-None-Match matched the ETag.' },
        },
      },
    },
    '/healthz': { get: { tags: ['Health'], operationId: 'getHealth', summary: 'Liveness: 200 while the process runs', responses: { 200: ok('Alive.', healthBody) } } },
    '/readyz': {
      get: {
        tags: ['Health'],
        operationId: 'getReadiness',
        summary: 'Readiness: the database answers within 1 s, a current signing key is loaded and, with IDP_WORKERS > 1, every worker is ready',
        responses: { 200: ok('Ready.', readinessBody), 503: ok('Not ready; checks says what is missing.', readinessBody) },
      },
    },

    '/oauth/token': {
      post: oauthOperation(
        {
          operationId: 'token',
          summary: 'RFC 6749 token endpoint',
          description: `grant_type ${grants.map((grant) => grant.description).join(', ')}.\n\n${CLIENT_AUTHENTICATION}`,
          requestBody: formBody(first === undefined ? z.object({}) : others.length === 0 ? first : z.discriminatedUnion('grant_type', [first, ...others] as never)),
        },
        { description: 'The token.', headers: noStore, content: json(z.union(grants.map((grant) => grant.response))) },
      ),
    },
    '/oauth/introspect': {
      post: oauthOperation(
        {
          operationId: 'introspect',
          summary: 'RFC 7662 introspection',
          description: `Any authenticated client may introspect, within its tenant. ${CLIENT_AUTHENTICATION}`,
          requestBody: formBody(introspectionRequest),
        },
        { description: 'Active with its members, or exactly {"active": false}.', headers: noStore, content: json(introspectionResponse) },
      ),
    },
    '/oauth/revoke': {
      post: oauthOperation(
        {
          operationId: 'revoke',
          summary: 'RFC 7009 revocation',
          description:
            'A client may revoke its own access tokens and the API keys it owns; anything else valid is 400 unauthorized_client and nothing changes. ' +
            `An invalid or unknown token answers 200. ${CLIENT_AUTHENTICATION}`,
          requestBody: formBody(revocationRequest),
        },
        { description: 'Revoked, or nothing to revoke. Empty body.', headers: noStore },
      ),
    },

  };
}

/** The document for a server whose public URL is `config.issuer`. */
export function buildOpenApiDocument(config: Pick<Config, 'issuer'>, fragments: readonly OpenApiFragment[]): oas31.OpenAPIObject {
  const paths: ZodOpenApiPathsObject = { ...corePaths(fragments) };
  for (const fragment of fragments) Object.assign(paths, fragment.paths);
  return createDocument({
    openapi: '3.1.0',
    info: {
      title: 'RS256 identity provider',
      version: '1.0.0',
      description:
        'OAuth 2.0 client credentials, token exchange of API keys, introspection and revocation (`/oauth/*`, form-encoded, RFC 6749 §5.2 errors ' +
        '`{error, error_description}`); user accounts and their API keys (`/auth/v1`); the admin API (`/admin/v1`, admin tokens). ' +
        'The JSON APIs answer errors as `{error, message}`, take `Content-Type: application/json` bodies of at most 64 KiB, and match routes exactly ' +
        '(case-sensitive, no trailing slash). Prometheus metrics are served on a separate management listener, not here.',
    },
    servers: [{ url: config.issuer }],
    tags: [...new Set(['OAuth', 'Discovery', 'Health', ...fragments.flatMap((fragment) => fragment.tags ?? [])])].map((name) => ({ name })),
    components: {
      responses: { OAuthMethodNotAllowed: METHOD_NOT_ALLOWED },
      securitySchemes: {
        clientSecretBasic: { type: 'http', scheme: 'basic', description: 'client_secret_basic: client id and secret, each form-urlencoded, then Base64 (RFC 6749 §2.3.1).' },
        userAccessToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A user access token from /auth/v1/signup or /auth/v1/token.' },
        applicationAccessToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An access token of the authorization-code flow (grant_type=authorization_code or its refresh).' },
        adminToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'An admin token (`idp admin-token issue`), checked against its row on every request.' },
      },
    },
    paths,
  });
}

/** The document as served: its bytes and a strong ETag, computed once. */
export interface OpenApiSnapshot {
  document: oas31.OpenAPIObject;
  body: Buffer;
  etag: string;
}

export function openApiSnapshot(config: Pick<Config, 'issuer'>, fragments: readonly OpenApiFragment[]): OpenApiSnapshot {
  const document = buildOpenApiDocument(config, fragments);
  const body = Buffer.from(JSON.stringify(document));
  return { document, body, etag: `"${crypto.createHash('sha256').update(body).digest('base64url')}"` };
}
