import crypto from 'node:crypto';
import { decodeJwt } from 'jose';
import request from 'supertest';
import type { DatabaseHandle } from '../../src/db';
import { sweepExpired } from '../../src/authorization/repository';
import { createTenant } from '../../src/tenants/repository';
import { useBrowser, withPage } from '../helpers/browser';
import { FakeClock, type TestServer } from '../helpers/context';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { basic } from '../oauth/helpers';
import { authorizePath, browserSession, landedAt, makeCodeClient, signInOnPage, makeUser, pkce, registerResource, startCallback, startIssuer, type TestUser } from './support';

const FORM = 'application/x-www-form-urlencoded';

/**
 * Every refusal of docs/sign-in.md "Sign-in for applications": requests that are never redirected (an error
 * page), errors redirected to the client with state and iss, and each way a code can be refused at
 * the token endpoint, replay included (its tokens revoked). The browser session the codes come from
 * is made by a real browser signing in; the codes are then fetched with its cookies.
 */
describe('sign-in for applications: refusals', () => {
  let database: TestDatabase;
  let handle: DatabaseHandle;
  let server: TestServer;
  let callback: Awaited<ReturnType<typeof startCallback>>;
  let user: TestUser;
  /** First party (no consent), confidential. */
  let app: { id: string; secret?: string };
  /** Another confidential client with the same redirect URI. */
  let other: { id: string; secret?: string };
  /** Third party: asks for consent. */
  let thirdParty: { id: string; secret?: string };
  let cookies: string;
  const clock = new FakeClock(new Date());
  const browser = useBrowser();

  beforeAll(async () => {
    database = await createTestDatabase();
    handle = await database.open();
    server = await startIssuer(database, handle, {}, clock.now);
    callback = await startCallback();
    user = await makeUser(server.url);
    app = await makeCodeClient(server.services, { name: 'First Party', redirectUris: [callback.url], firstParty: true });
    other = await makeCodeClient(server.services, { name: 'Other App', redirectUris: [callback.url], firstParty: true });
    thirdParty = await makeCodeClient(server.services, { name: 'Third Party', redirectUris: [callback.url] });
  });
  afterAll(async () => {
    await callback?.close();
    await server?.close();
    await database?.drop();
  });

  const authorize = (params: Record<string, string | string[] | undefined>, cookie?: string) => {
    const req = request(server.url).get(authorizePath(params));
    return cookie ? req.set('Cookie', cookie) : req;
  };
  /** A valid request of `client` with a fresh PKCE pair, overridden by `extra`. */
  const valid = (clientId: string, extra: Record<string, string | string[] | undefined> = {}) => {
    const { verifier, challenge } = pkce();
    return {
      verifier,
      params: { client_id: clientId, redirect_uri: callback.url, response_type: 'code', scope: 'openid', state: 'st-1', code_challenge: challenge, code_challenge_method: 'S256', ...extra },
    };
  };
  /** The redirect of a refused request: error, description, state and iss in the query of the registered URI. */
  const redirected = (res: request.Response, error: string) => {
    expect(res.status).toBe(302);
    const location = new URL(res.headers.location as string);
    expect(`${location.origin}${location.pathname}`).toBe(callback.url);
    expect(Object.fromEntries(location.searchParams)).toEqual({ error, error_description: expect.any(String), state: 'st-1', iss: server.url });
  };
  /** An error page: 400, no redirect, the pages' headers. */
  const errorPage = (res: request.Response, status = 400) => {
    expect(res.status).toBe(status);
    expect(res.headers.location).toBeUndefined();
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.text).not.toContain(callback.url);
  };
  const count = async (table: 'authorization_interactions' | 'authorization_codes') =>
    Number((await server.services.handle.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const redeem = (client: { id: string; secret?: string }, fields: Record<string, string>) => {
    const req = request(server.url).post('/oauth/token').set('Content-Type', FORM);
    const form = { grant_type: 'authorization_code', redirect_uri: callback.url, ...fields };
    if (client.secret) return req.set('Authorization', basic(client.id, client.secret)).send(new URLSearchParams(form).toString());
    return req.send(new URLSearchParams({ ...form, client_id: client.id }).toString());
  };
  /** A code for `client` from the browser session (a first-party client answers at once). */
  const code = async (clientId: string, extra: Record<string, string | string[] | undefined> = {}) => {
    const request = valid(clientId, extra);
    const res = await authorize(request.params, cookies);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.location as string);
    expect(location.searchParams.get('iss')).toBe(server.url);
    const value = location.searchParams.get('code');
    if (value === null) throw new Error(`no code: ${location.href}`);
    return { code: value, verifier: request.verifier };
  };

  it('discovery: both documents are complete OpenID Provider metadata', async () => {
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const { body } = await request(server.url).get(path).expect(200);
      expect(body).toMatchObject({
        issuer: server.url,
        authorization_endpoint: `${server.url}/oauth/authorize`,
        userinfo_endpoint: `${server.url}/oauth/userinfo`,
        end_session_endpoint: `${server.url}/oauth/logout`,
        response_types_supported: ['code'],
        response_modes_supported: ['query'],
        code_challenge_methods_supported: ['S256'],
        authorization_response_iss_parameter_supported: true,
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
        claims_supported: expect.arrayContaining(['sub', 'email', 'email_verified', 'auth_time', 'nonce', 'sid', 'at_hash']),
      });
      expect(body.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token', 'client_credentials']));
      expect(body.token_endpoint_auth_methods_supported).toContain('none');
      expect(body.scopes_supported).toEqual(expect.arrayContaining(['openid', 'email', 'offline_access']));
    }
  });

  describe('requests that are never redirected: an error page', () => {
    it('an unknown client, a missing client_id, an unregistered redirect URI', async () => {
      errorPage(await authorize(valid('no-such-client').params));
      errorPage(await authorize({ ...valid(app.id).params, client_id: undefined }));
      for (const redirect of [`${callback.url}/other`, `${callback.url}?x=1`, 'https://attacker.example/callback', callback.url.replace('127.0.0.1', 'localhost')]) {
        errorPage(await authorize(valid(app.id, { redirect_uri: redirect }).params));
      }
      // Even with other errors in the request: the redirect URI is checked first.
      errorPage(await authorize(valid(app.id, { redirect_uri: 'https://attacker.example/cb', response_type: 'token' }).params));
      errorPage(await authorize({ ...valid(app.id).params, client_id: [app.id, other.id] }));
    });
  });

  describe('errors redirected with error, error_description, state and iss', () => {
    it('response_type other than code', async () => {
      redirected(await authorize(valid(app.id, { response_type: 'token' }).params), 'unsupported_response_type');
      redirected(await authorize(valid(app.id, { response_type: 'code id_token' }).params), 'unsupported_response_type');
      redirected(await authorize(valid(app.id, { response_type: undefined }).params), 'invalid_request');
    });

    it('PKCE: missing, plain, no method, malformed', async () => {
      redirected(await authorize(valid(app.id, { code_challenge: undefined, code_challenge_method: undefined }).params), 'invalid_request');
      redirected(await authorize(valid(app.id, { code_challenge_method: 'plain' }).params), 'invalid_request');
      redirected(await authorize(valid(app.id, { code_challenge_method: undefined }).params), 'invalid_request');
      redirected(await authorize(valid(app.id, { code_challenge: 'short' }).params), 'invalid_request');
    });

    it('scope, resource, prompt, max_age and repeated parameters', async () => {
      redirected(await authorize(valid(app.id, { scope: 'openid admin' }).params), 'invalid_scope');
      redirected(await authorize(valid(app.id, { scope: 'user' }).params), 'invalid_scope');
      redirected(await authorize(valid(app.id, { resource: 'https://unregistered.example/api' }).params), 'invalid_target');
      redirected(await authorize(valid(app.id, { resource: 'https://api.example/x#frag' }).params), 'invalid_target');
      redirected(await authorize(valid(app.id, { prompt: 'select_account' }).params), 'invalid_request');
      redirected(await authorize(valid(app.id, { prompt: 'none login' }).params), 'invalid_request');
      redirected(await authorize(valid(app.id, { max_age: '-1' }).params), 'invalid_request');
      redirected(await authorize(valid(app.id, { nonce: ['a', 'b'] }).params), 'invalid_request');
      redirected(await authorize(valid(app.id, { request: 'eyJ...' }).params), 'request_not_supported');
    });

    it('prompt=none without a browser session: login_required', async () => {
      redirected(await authorize(valid(app.id, { prompt: 'none' }).params), 'login_required');
    });

    it('a POSTed authorization request is read the same way (303)', async () => {
      const res = await request(server.url)
        .post('/oauth/authorize')
        .set('Content-Type', FORM)
        .send(new URLSearchParams(valid(app.id, { response_type: 'token' }).params as Record<string, string>).toString());
      expect(res.status).toBe(303);
      expect(new URL(res.headers.location as string).searchParams.get('error')).toBe('unsupported_response_type');
    });
  });

  describe('with a browser session', () => {
    beforeAll(async () => {
      cookies = await browserSession(browser(), server.url, app.id, callback.url, user);
      expect(cookies).toMatch(/idp_session=/);
    });

    it('prompt=none: a code for a first-party client; consent_required for a third party the user never allowed', async () => {
      await code(app.id, { prompt: 'none' });
      redirected(await authorize(valid(thirdParty.id, { prompt: 'none' }).params, cookies), 'consent_required');
    });

    it('a wrong, missing or malformed code_verifier: invalid_grant / invalid_request, and the code is not spent', async () => {
      const issued = await code(app.id);
      const wrong = await redeem(app, { code: issued.code, code_verifier: pkce().verifier });
      expect(wrong.status).toBe(400);
      expect(wrong.body).toEqual({ error: 'invalid_grant', error_description: expect.stringContaining('code_verifier') });
      expect((await redeem(app, { code: issued.code })).body.error).toBe('invalid_request');
      expect((await redeem(app, { code: issued.code, code_verifier: 'short' })).body.error).toBe('invalid_grant');
      const right = await redeem(app, { code: issued.code, code_verifier: issued.verifier });
      expect(right.status).toBe(200);
      expect(right.headers['cache-control']).toBe('no-store');
    });

    it("client A's code at client B: invalid_grant, and A can still redeem it", async () => {
      const issued = await code(app.id);
      const stolen = await redeem(other, { code: issued.code, code_verifier: issued.verifier });
      expect(stolen.body).toEqual({ error: 'invalid_grant', error_description: 'the authorization code was not issued to this client' });
      expect((await redeem(app, { code: issued.code, code_verifier: issued.verifier })).status).toBe(200);
    });

    it('a redirect_uri other than the request\'s, or none when the request had one: invalid_grant', async () => {
      const issued = await code(app.id);
      expect((await redeem(app, { code: issued.code, code_verifier: issued.verifier, redirect_uri: `${callback.url}x` })).body.error).toBe('invalid_grant');
      const req = request(server.url).post('/oauth/token').set('Content-Type', FORM).set('Authorization', basic(app.id, app.secret as string));
      const without = await req.send(new URLSearchParams({ grant_type: 'authorization_code', code: issued.code, code_verifier: issued.verifier }).toString());
      expect(without.body.error).toBe('invalid_grant');
    });

    it('an expired code (IDP_AUTH_CODE_TTL, 60 s): invalid_grant', async () => {
      const issued = await code(app.id);
      clock.advance(61_000);
      const late = await redeem(app, { code: issued.code, code_verifier: issued.verifier });
      expect(late.body).toEqual({ error: 'invalid_grant', error_description: expect.stringContaining('expired') });
    });

    it('a code presented twice: invalid_grant, and every token issued from it is revoked (audited)', async () => {
      const issued = await code(app.id, { scope: 'openid offline_access' });
      const first = await redeem(app, { code: issued.code, code_verifier: issued.verifier });
      expect(first.status).toBe(200);
      const { access_token: accessToken, refresh_token: refreshToken } = first.body as { access_token: string; refresh_token: string };
      const userinfo = () => request(server.url).get('/oauth/userinfo').set('Authorization', `Bearer ${accessToken}`);
      expect((await userinfo()).status).toBe(200);

      const again = await redeem(app, { code: issued.code, code_verifier: issued.verifier });
      expect(again.body).toEqual({ error: 'invalid_grant', error_description: expect.stringContaining('already used') });

      expect((await userinfo()).status).toBe(401);
      const refresh = await request(server.url)
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .set('Authorization', basic(app.id, app.secret as string))
        .send(new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString());
      expect(refresh.body.error).toBe('invalid_grant');
      const introspected = await request(server.url)
        .post('/oauth/introspect')
        .set('Content-Type', FORM)
        .set('Authorization', basic(app.id, app.secret as string))
        .send(new URLSearchParams({ token: accessToken }).toString());
      expect(introspected.body).toEqual({ active: false });
      const jti = decodeJwt(accessToken).jti as string;
      const db = server.services.handle.db;
      expect(await db.selectFrom('revoked_access_tokens').select('jti').where('jti', '=', jti).executeTakeFirst()).toEqual({ jti });
      const events = await db.selectFrom('audit_events').selectAll().where('action', '=', 'authorization_code.replayed').execute();
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ actor: `client:${app.id}`, target: decodeJwt(accessToken).sid });
      // Nothing of the code in the audit log.
      expect(JSON.stringify(events)).not.toContain(issued.code);
    });

    it('a public client redeems with its client_id alone; with a secret it has none of, it is refused', async () => {
      const pub = await makeCodeClient(server.services, { redirectUris: [callback.url], public: true, firstParty: true });
      const issued = await code(pub.id);
      const bad = await request(server.url)
        .post('/oauth/token')
        .set('Content-Type', FORM)
        .set('Authorization', basic(pub.id, 'guess'))
        .send(new URLSearchParams({ grant_type: 'authorization_code', code: issued.code, code_verifier: issued.verifier, redirect_uri: callback.url }).toString());
      expect(bad.status).toBe(401);
      const ok = await redeem(pub, { code: issued.code, code_verifier: issued.verifier });
      expect(ok.status).toBe(200);
      expect(ok.body.refresh_token).toBeUndefined();
    });

    it('resources become aud: one a string, several an array, each registered and with a granted scope', async () => {
      await registerResource(server.services, 'https://api.example/orders', 'Orders', ['orders:read']);
      await registerResource(server.services, 'https://api.example/billing', 'Billing', ['billing:read']);
      const wide = await makeCodeClient(server.services, {
        redirectUris: [callback.url],
        firstParty: true,
        scopes: ['orders:read', 'billing:read'],
        audiences: ['https://api.example/orders', 'https://api.example/billing'],
      });
      const one = await code(wide.id, { scope: 'openid orders:read', resource: 'https://api.example/orders' });
      const token1 = (await redeem(wide, { code: one.code, code_verifier: one.verifier })).body.access_token as string;
      expect(decodeJwt(token1)).toMatchObject({ aud: 'https://api.example/orders', scope: 'openid orders:read' });
      const two = await code(wide.id, { scope: 'orders:read billing:read', resource: ['https://api.example/orders', 'https://api.example/billing'] });
      const token2 = (await redeem(wide, { code: two.code, code_verifier: two.verifier })).body.access_token as string;
      expect(decodeJwt(token2).aud).toEqual(['https://api.example/orders', 'https://api.example/billing']);
      // A registered resource outside the client's allowed audiences, a scope of no requested resource.
      redirected(await authorize(valid(app.id, { resource: 'https://api.example/orders', scope: 'orders:read' }).params, cookies), 'invalid_target');
      redirected(await authorize(valid(wide.id, { scope: 'orders:read' }).params, cookies), 'invalid_scope');
    });

    it("an application's refresh token: only its client refreshes it; introspection names the client; the client revokes its own tokens", async () => {
      const issued = await code(app.id, { scope: 'openid offline_access' });
      const tokens = (await redeem(app, { code: issued.code, code_verifier: issued.verifier })).body as { access_token: string; refresh_token: string };
      const refresh = (authorization?: string, extra: Record<string, string> = {}) => {
        const req = request(server.url).post('/oauth/token').set('Content-Type', FORM);
        return (authorization ? req.set('Authorization', authorization) : req).send(new URLSearchParams({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token, ...extra }).toString());
      };
      expect((await refresh()).body.error).toBe('invalid_grant');
      expect((await refresh(basic(other.id, other.secret as string))).body.error).toBe('invalid_grant');
      expect((await request(server.url).post('/auth/v1/token?grant_type=refresh_token').send({ refresh_token: tokens.refresh_token })).body.error).toBe('invalid_grant');
      // None of those spent it.
      const rotated = await refresh(basic(app.id, app.secret as string));
      expect(rotated.status).toBe(200);
      expect(rotated.body.scope).toBe('openid offline_access');

      const introspect = (token: string, authorization: string) =>
        request(server.url).post('/oauth/introspect').set('Content-Type', FORM).set('Authorization', authorization).send(new URLSearchParams({ token }).toString());
      expect((await introspect(rotated.body.access_token, basic(other.id, other.secret as string))).body).toMatchObject({ active: true, client_id: app.id, sub: user.id, scope: 'openid offline_access' });
      expect((await introspect(rotated.body.refresh_token, basic(app.id, app.secret as string))).body).toMatchObject({ active: true, client_id: app.id, token_type: 'refresh_token' });

      const revoke = (token: string, authorization: string) =>
        request(server.url).post('/oauth/revoke').set('Content-Type', FORM).set('Authorization', authorization).send(new URLSearchParams({ token }).toString());
      expect((await revoke(rotated.body.access_token, basic(other.id, other.secret as string))).body.error).toBe('unauthorized_client');
      expect((await revoke(rotated.body.access_token, basic(app.id, app.secret as string))).status).toBe(200);
      expect((await introspect(rotated.body.access_token, basic(app.id, app.secret as string))).body).toEqual({ active: false });
      expect((await revoke(rotated.body.refresh_token, basic(app.id, app.secret as string))).status).toBe(200);
      expect((await refresh(basic(app.id, app.secret as string), { refresh_token: rotated.body.refresh_token })).body.error).toBe('invalid_grant');
    });

    it('userinfo errors per RFC 6750: no token, a bad one, one without openid', async () => {
      const none = await request(server.url).get('/oauth/userinfo');
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer realm="userinfo"');
      const bad = await request(server.url).get('/oauth/userinfo').set('Authorization', 'Bearer abc.def.ghi');
      expect(bad.status).toBe(401);
      expect(bad.headers['www-authenticate']).toMatch(/^Bearer realm="userinfo", error="invalid_token", error_description="[^"]+"$/);
      const issued = await code(app.id, { scope: 'email' });
      const token = (await redeem(app, { code: issued.code, code_verifier: issued.verifier })).body.access_token as string;
      const noOpenid = await request(server.url).post('/oauth/userinfo').set('Authorization', `Bearer ${token}`);
      expect(noOpenid.status).toBe(403);
      expect(noOpenid.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expect(noOpenid.body.error).toBe('insufficient_scope');
    });

    it('the access token of an application is not accepted by /auth/v1', async () => {
      const issued = await code(app.id);
      const token = (await redeem(app, { code: issued.code, code_verifier: issued.verifier })).body.access_token as string;
      const res = await request(server.url).get('/auth/v1/user').set('Authorization', `Bearer ${token}`);
      expect(res.status).toBe(401);
    });

    it("a tenant's application: a user of no tenant is refused with access_denied after signing in, and keeps the session", async () => {
      await createTenant(server.services.handle.db, { id: 'acme', name: 'Acme', now: server.services.now() });
      const acmeApp = await makeCodeClient(server.services, { redirectUris: [callback.url], firstParty: true, tenantId: 'acme' });
      await withPage(browser(), async (page) => {
        const request = valid(acmeApp.id);
        await page.goto(`${server.url}${authorizePath(request.params)}`);
        await signInOnPage(page, user);
        const back = await landedAt(page, callback.url);
        expect(Object.fromEntries(back.searchParams)).toMatchObject({ error: 'access_denied', state: 'st-1', iss: server.url });
        expect((await page.context().cookies(server.url)).map((c) => c.name)).toContain('idp_session');
      });
    });

    it('a consent form answers once: submitted again (a double click, a replayed form), it is refused and gives no second code', async () => {
      await withPage(browser(), async (page) => {
        await page.context().addCookies(cookies.split('; ').map((pair) => ({ name: pair.split('=')[0] as string, value: pair.slice(pair.indexOf('=') + 1), url: server.url })));
        await page.goto(`${server.url}${authorizePath(valid(thirdParty.id, { scope: 'openid email' }).params)}`);
        const form = { interaction: await page.locator('input[name="interaction"]').inputValue(), csrf_token: await page.locator('input[name="csrf_token"]').inputValue() };
        await page.getByRole('button', { name: 'Allow' }).click();
        await landedAt(page, callback.url);
        // The same form again, from the same browser with its cookies.
        const again = await page.request.post(`${server.url}/oauth/authorize`, { form: { ...form, decision: 'allow' }, maxRedirects: 0 });
        expect(again.status()).toBe(400);
        expect(again.headers().location).toBeUndefined();

        // Submitted several times at once: one code, whichever submission gets there first.
        await page.goto(`${server.url}${authorizePath(valid(thirdParty.id, { prompt: 'consent' }).params)}`);
        const racing = { interaction: await page.locator('input[name="interaction"]').inputValue(), csrf_token: await page.locator('input[name="csrf_token"]').inputValue(), decision: 'allow' };
        const answers = await Promise.all(Array.from({ length: 6 }, () => page.request.post(`${server.url}/oauth/authorize`, { form: racing, maxRedirects: 0 })));
        const codes = answers.filter((a) => a.status() === 303 && new URL(a.headers().location as string).searchParams.has('code'));
        expect(codes).toHaveLength(1);
        expect(answers.filter((a) => a.status() === 400)).toHaveLength(5);
      });
    });

    it('the sweep deletes interactions past their 30 minutes and codes a day past their expiry', async () => {
      const db = server.services.handle.db;
      expect((await authorize(valid(thirdParty.id, { prompt: 'consent' }).params, cookies)).status).toBe(200);
      await code(app.id);
      expect(await count('authorization_interactions')).toBeGreaterThan(0);
      clock.advance(2 * 86_400_000);
      await sweepExpired(db, clock.now());
      expect(await count('authorization_interactions')).toBe(0);
      expect(await count('authorization_codes')).toBe(0);
    });

    it('CSRF: a form posted without the browser (no binding cookie) or without its token is refused with 403', async () => {
      const consents = () => server.services.handle.db.selectFrom('consents').selectAll().where('client_id', '=', thirdParty.id).execute();
      const before = await consents();
      const page = await authorize(valid(thirdParty.id, { prompt: 'consent', scope: 'openid offline_access' }).params, cookies);
      expect(page.status).toBe(200);
      const interaction = /name="interaction" value="([^"]+)"/.exec(page.text)?.[1] as string;
      const csrf = /name="csrf_token" value="([^"]+)"/.exec(page.text)?.[1] as string;
      const post = (fields: Record<string, string>, cookie?: string) => {
        const req = request(server.url).post('/oauth/authorize').set('Content-Type', FORM);
        return (cookie ? req.set('Cookie', cookie) : req).send(new URLSearchParams(fields).toString());
      };
      // A cross-site form carries no cookie (SameSite=Lax): refused though the token is right.
      const crossSite = await post({ interaction, csrf_token: csrf, decision: 'allow' });
      errorPage(crossSite, 403);
      errorPage(await post({ interaction, decision: 'allow' }, cookies), 403);
      errorPage(await post({ interaction, csrf_token: crypto.randomBytes(32).toString('base64url'), decision: 'allow' }, cookies), 403);
      expect(await consents()).toEqual(before);
    });
  });
});
