import request from 'supertest';
import type { ApiKeyOwner } from '../../src/api-keys/service';
import type { Composition as Composition } from '../../src/compose';
import { matchesOpenApi } from '../helpers/openapi';
import type { TestClient } from '../oauth/helpers';

export const FORM = 'application/x-www-form-urlencoded';
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** POST /oauth/introspect as `client`. */
export function introspect(url: string, client: TestClient, token: string) {
  return request(url).post('/oauth/introspect').set('Content-Type', FORM).set('Authorization', client.authorization).send(`token=${encodeURIComponent(token)}`).expect(matchesOpenApi);
}

/** POST /oauth/revoke as `client`. */
export function revokeAtOAuth(url: string, client: TestClient, token: string) {
  return request(url).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', client.authorization).send(`token=${encodeURIComponent(token)}`).expect(matchesOpenApi);
}

/** RFC 8693 token exchange of `key`, with no client authentication. */
export function exchange(url: string, key: string, extra: Record<string, string> = {}) {
  const form = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: key, subject_token_type: ACCESS_TOKEN_TYPE, ...extra });
  return request(url).post('/oauth/token').set('Content-Type', FORM).send(form.toString()).expect(matchesOpenApi);
}

export interface CreatedKey {
  id: string;
  key: string;
  scopes: string[];
  expires_at: string | null;
}

/** A key through the service (what the admin API and the CLI call), for tests about using keys. */
export async function makeKey(
  services: Composition,
  owner: ApiKeyOwner,
  input: { name?: string; scopes?: string[]; expiresAt?: Date } = {},
): Promise<CreatedKey> {
  const { key, row } = await services.apiKeys.create({ owner, name: input.name ?? 'test key', scopes: input.scopes, expiresAt: input.expiresAt }, { actor: 'test' });
  return { id: row.id, key, scopes: row.scopes, expires_at: row.expires_at?.toISOString() ?? null };
}

/** Every well-formed-looking or not shape a key could be mangled into. */
export function malformedKeys(valid: string): Array<[string, string]> {
  const id = valid.slice(5, 21);
  const secret = valid.slice(22);
  return [
    ['empty-ish prefix only', 'idpk_'],
    ['wrong prefix', `idpq_${id}_${secret}`],
    ['upper-case prefix', `IDPK_${id}_${secret}`],
    ['no prefix', `${id}_${secret}`],
    ['short secret', `idpk_${id}_${secret.slice(1)}`],
    ['long secret', `idpk_${id}_${secret}a`],
    ['short id', `idpk_${id.slice(1)}_${secret}`],
    ['long id', `idpk_${id}a_${secret}`],
    ['bad base62 in the secret', `idpk_${id}_${secret.slice(0, -1)}-`],
    ['bad base62 in the id', `idpk_${id.slice(0, -1)}+_${secret}`],
    ['NUL inside', `idpk_${id}_${secret.slice(0, -1)}\u0000`],
    ['trailing space', `${valid} `],
    ['trailing newline', `${valid}\n`],
    ['two keys', `${valid}${valid}`],
    ['non-ASCII look-alike', `idpk_${id}_${secret.slice(0, -1)}ａ`],
    ['missing separator', `idpk_${id}${secret}`],
  ];
}
