import request from 'supertest';
import { decodeJwt } from 'jose';
import type { Composition } from '../../src/compose';
import { TOKEN_EXCHANGE } from '../../src/clients/grant-types';
import { clientPolicy, createClient } from '../../src/clients/service';
import { basic } from '../oauth/helpers';
import { authorizePath, cookiesOf, formState, pkce } from '../authorization/support';

export const FORM = 'application/x-www-form-urlencoded';
export { TOKEN_EXCHANGE };
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
/** A loopback redirect URI: the flow only names it in a Location header, nothing listens there. */
export const REDIRECT_URI = 'http://127.0.0.1:9/callback';

export interface Agent {
  id: string;
  secret: string;
  authorization: string;
}

/**
 * A confidential client made through the clients service the CLI and the admin API use: an
 * application of the code flow when `redirect` (first-party: no consent page), else a service.
 */
export async function makeAgent(
  services: Composition,
  input: { name: string; scopes: string[]; audiences?: string[]; grantTypes?: string[]; redirect?: boolean; tenantId?: string },
): Promise<Agent> {
  const { client, secret } = await createClient(
    services.handle.db,
    {
      name: input.name,
      scopes: input.scopes,
      audiences: input.audiences,
      redirectUris: input.redirect ? [REDIRECT_URI] : undefined,
      firstParty: input.redirect ? true : undefined,
      grantTypes: input.grantTypes,
      tenantId: input.tenantId ?? null,
    },
    clientPolicy(services.config),
    { actor: 'test', now: services.now() },
  );
  if (secret === undefined) throw new Error('a confidential client has a secret');
  return { id: client.id, secret, authorization: basic(client.id, secret) };
}

/**
 * A user's access token from the authorization-code flow over real HTTP, the way a browser without
 * JavaScript goes through it: /oauth/authorize, the hosted sign-in form (its CSRF token and binding
 * cookie), the redirect with the code, then the code at /oauth/token (PKCE S256).
 */
export async function codeFlowToken(
  issuer: string,
  app: Agent,
  user: { email: string; password: string },
  scope: string,
  resource?: string,
): Promise<{ access_token: string; refresh_token?: string; id_token?: string; cookie: string }> {
  const { verifier, challenge } = pkce();
  const path = authorizePath({ client_id: app.id, redirect_uri: REDIRECT_URI, response_type: 'code', scope, resource, code_challenge: challenge, code_challenge_method: 'S256' });
  const page = await request(issuer).get(path);
  if (page.status !== 200) throw new Error(`no sign-in page: ${page.status}`);
  let cookie = cookiesOf(page);
  let res = await request(issuer)
    .post('/oauth/authorize')
    .type('form')
    .set('Cookie', cookie)
    .send({ ...formState(page.text), email: user.email, password: user.password });
  for (let hops = 0; hops < 3; hops++) {
    if (res.status !== 302 && res.status !== 303) throw new Error(`sign-in did not redirect: ${res.status}`);
    cookie = mergeCookies(cookie, cookiesOf(res));
    const location = new URL(res.headers.location as string, issuer);
    const code = location.searchParams.get('code');
    if (location.href.startsWith(REDIRECT_URI) && location.searchParams.has('error')) throw new Error(`refused: ${location.search}`);
    if (location.href.startsWith(REDIRECT_URI) && code !== null) {
      const token = await request(issuer)
        .post('/oauth/token')
        .type('form')
        .set('Authorization', app.authorization)
        .send({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: verifier });
      if (token.status !== 200) throw new Error(`code redemption failed: ${token.status} ${JSON.stringify(token.body)}`);
      return { ...(token.body as { access_token: string; refresh_token?: string; id_token?: string }), cookie };
    }
    if (location.origin !== new URL(issuer).origin) throw new Error(`redirected to ${location.href}`);
    res = await request(issuer).get(`${location.pathname}${location.search}`).set('Cookie', cookie);
  }
  throw new Error('no code after three redirects');
}

/** A Cookie header with `later`'s values replacing `earlier`'s of the same name. */
function mergeCookies(earlier: string, later: string): string {
  const jar = new Map<string, string>();
  for (const pair of `${earlier}; ${later}`.split('; ')) {
    const at = pair.indexOf('=');
    if (at > 0) jar.set(pair.slice(0, at), pair);
  }
  return [...jar.values()].join('; ');
}

/** RFC 8693 token exchange at /oauth/token, authenticated as `client` (when given). */
export function exchange(issuer: string, client: Agent | undefined, subjectToken: string, extra: Record<string, string> = {}) {
  const req = request(issuer).post('/oauth/token').set('Content-Type', FORM);
  if (client) req.set('Authorization', client.authorization);
  return req.send(new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: subjectToken, subject_token_type: ACCESS_TOKEN_TYPE, ...extra }).toString());
}

/** POST /oauth/introspect as `client`. */
export async function introspect(issuer: string, client: Agent, token: string): Promise<Record<string, unknown>> {
  const res = await request(issuer).post('/oauth/introspect').set('Content-Type', FORM).set('Authorization', client.authorization).send(`token=${encodeURIComponent(token)}`);
  if (res.status !== 200) throw new Error(`introspection failed: ${res.status}`);
  return res.body as Record<string, unknown>;
}

/** A client_credentials token of `client`: what a sub-agent hands over as actor_token. */
export async function clientCredentialsToken(issuer: string, client: Agent): Promise<string> {
  const res = await request(issuer).post('/oauth/token').set('Content-Type', FORM).set('Authorization', client.authorization).send('grant_type=client_credentials');
  if (res.status !== 200) throw new Error(`client_credentials failed: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as { access_token: string }).access_token;
}

/** A token's claims, unverified (the tests verify them with jose or the verifier kit where it matters). */
export function claimsOf(token: string): Record<string, unknown> {
  return decodeJwt(token) as Record<string, unknown>;
}
