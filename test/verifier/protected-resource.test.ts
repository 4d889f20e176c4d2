import express from 'express';
import request from 'supertest';
import { makeClient, type TestClient } from '../oauth/helpers';
import { createVerifier, protectedResource, protectedResourceMetadataUrl, requireAuth, type Verifier } from '../../src/verifier';
import { clientToken, startIdp, type Idp } from './support';

/**
 * An MCP-style resource server (docs/verifier-kit.md "Protecting an MCP server": RFC 9728 metadata served by
 * `protectedResource`, and every `requireAuth` refusal after it pointing there, against a real
 * identity provider issuing tokens for the resource (RFC 8707 `resource`).
 */
const RESOURCE = 'https://mcp.test/mcp';
const METADATA_URL = 'https://mcp.test/.well-known/oauth-protected-resource/mcp';
const OTHER = 'https://other-mcp.test/mcp';
const SCOPES = ['mcp:read', 'mcp:write'];

describe('verifier kit: protectedResource (RFC 9728) and its challenges', () => {
  let idp: Idp;
  let verifier: Verifier;
  let app: express.Express;
  let client: TestClient;

  beforeAll(async () => {
    idp = await startIdp();
    client = await makeClient(idp.services, { name: 'agent', scopes: [...SCOPES, 'other'], audiences: [RESOURCE, OTHER] });
    verifier = createVerifier({ issuer: idp.issuer, audience: RESOURCE });
    app = express();
    const answer = (req: express.Request, res: express.Response) => {
      res.json(req.auth);
    };
    // Declared before protectedResource: keeps the plain challenge.
    app.get('/before', requireAuth({ verifier, scopes: ['mcp:read'] }), answer);
    app.use(protectedResource({ resource: RESOURCE, verifier, scopesSupported: SCOPES, resourceName: 'Test MCP server' }));
    app.post('/mcp', requireAuth({ verifier, scopes: SCOPES }), answer);
    app.get('/open', requireAuth({ verifier }), answer);
    app.get('/with-realm', requireAuth({ verifier, scopes: ['mcp:read'], realm: 'mcp' }), answer);
    app.get('/roles', requireAuth({ verifier, scopes: ['mcp:read'], tokenTypes: ['user'] }), answer);
  });
  afterAll(async () => {
    await idp?.close();
  });

  const token = (scope: string, resource = RESOURCE) => clientToken(idp, client, { scope, resource });

  describe('the metadata', () => {
    it('is served at the path-suffixed and at the root well-known URL, with exactly these members', async () => {
      for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
        const res = await request(app).get(path);
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
        expect(res.headers['cache-control']).toBe('public, max-age=3600');
        expect(res.headers['access-control-allow-origin']).toBe('*');
        expect(res.body).toStrictEqual({
          resource: RESOURCE,
          authorization_servers: [idp.issuer],
          scopes_supported: SCOPES,
          bearer_methods_supported: ['header'],
          resource_name: 'Test MCP server',
        });
      }
    });

    it('answers a CORS preflight, HEAD without a body, and leaves other methods and paths to the app', async () => {
      const preflight = await request(app)
        .options('/.well-known/oauth-protected-resource/mcp')
        .set('Origin', 'https://agent.example')
        .set('Access-Control-Request-Method', 'GET')
        .set('Access-Control-Request-Headers', 'mcp-protocol-version');
      expect(preflight.status).toBe(204);
      expect(preflight.headers['access-control-allow-origin']).toBe('*');
      expect(preflight.headers['access-control-allow-methods']).toBe('GET, HEAD, OPTIONS');
      expect(preflight.headers['access-control-allow-headers']).toBe('*');
      const head = await request(app).head('/.well-known/oauth-protected-resource/mcp');
      expect(head.status).toBe(200);
      expect(head.text).toBeUndefined();
      expect((await request(app).post('/.well-known/oauth-protected-resource/mcp')).status).toBe(404);
      expect((await request(app).get('/.well-known/oauth-protected-resource/other')).status).toBe(404);
      expect((await request(app).get('/.well-known/oauth-protected-resource/mcp/')).status).toBe(404);
    });

    it('omits what is not given; a resource without a path is served at the root URL only', async () => {
      const bare = express();
      bare.use(protectedResource({ resource: 'http://127.0.0.1:4000', authorizationServers: ['https://id.example'] }));
      const res = await request(bare).get('/.well-known/oauth-protected-resource');
      expect(res.status).toBe(200);
      expect(res.body).toStrictEqual({ resource: 'http://127.0.0.1:4000', authorization_servers: ['https://id.example'], bearer_methods_supported: ['header'] });
      expect((await request(bare).get('/.well-known/oauth-protected-resource/')).status).toBe(404);
    });

    it('its URL is the resource with the well-known path inserted after the host (RFC 9728 §3.1)', () => {
      expect(protectedResourceMetadataUrl(RESOURCE)).toBe(METADATA_URL);
      expect(protectedResourceMetadataUrl('https://host.example')).toBe('https://host.example/.well-known/oauth-protected-resource');
      expect(protectedResourceMetadataUrl('https://host.example/')).toBe('https://host.example/.well-known/oauth-protected-resource');
      expect(protectedResourceMetadataUrl('http://127.0.0.1:8080/a/b')).toBe('http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b');
    });

    it('misuse throws when the middleware is built, naming the option', () => {
      expect(() => protectedResource({ resource: 'https://elsewhere.test/mcp', verifier })).toThrow(/verifier's audience must include the resource/);
      expect(() => protectedResource({ resource: RESOURCE })).toThrow(/give verifier .* or authorizationServers/);
      for (const resource of ['mcp.test/mcp', 'ftp://mcp.test/mcp', 'https://mcp.test/mcp?x=1', 'https://mcp.test/mcp#f', 'https://MCP.test/mcp', 'https://u:p@mcp.test/mcp', '']) {
        expect(() => protectedResource({ resource, authorizationServers: [idp.issuer] })).toThrow(/resource must be an absolute http\(s\) URL/);
      }
      expect(() => protectedResource({ resource: RESOURCE, authorizationServers: [] })).toThrow(/authorizationServers/);
      expect(() => protectedResource({ resource: RESOURCE, verifier, scopesSupported: ['a b'] })).toThrow(/scopesSupported/);
      expect(() => protectedResource({ resource: RESOURCE, verifier, resourceName: ' ' })).toThrow(/resourceName/);
    });
  });

  describe('the challenges of requireAuth behind it', () => {
    it('401 without a token: resource_metadata and the route scope, no error code (RFC 6750 §3.1)', async () => {
      const res = await request(app).post('/mcp');
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(`Bearer resource_metadata="${METADATA_URL}", scope="mcp:read mcp:write"`);
      expect(res.body).toEqual({ error: 'missing_credentials', error_description: 'missing credentials' });
      expect(res.headers['cache-control']).toBe('no-store');
      // A route without scopes: no scope attribute.
      const open = await request(app).get('/open');
      expect(open.headers['www-authenticate']).toBe(`Bearer resource_metadata="${METADATA_URL}"`);
    });

    it('401 with a bad token: error and error_description too', async () => {
      const [header, payload, signature] = (await token('mcp:read mcp:write')).split('.') as [string, string, string];
      const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), scope: 'mcp:read mcp:write other' })).toString('base64url');
      const res = await request(app).post('/mcp').set('Authorization', `Bearer ${header}.${forged}.${signature}`);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(
        `Bearer resource_metadata="${METADATA_URL}", error="invalid_token", error_description="signature does not verify", scope="mcp:read mcp:write"`,
      );
      expect(res.body).toEqual({ error: 'invalid_token', error_description: 'signature does not verify' });
    });

    it('403 insufficient_scope names every scope the route needs, not only the missing one (step-up)', async () => {
      const res = await request(app).post('/mcp').set('Authorization', `Bearer ${await token('mcp:read')}`);
      expect(res.status).toBe(403);
      expect(res.headers['www-authenticate']).toBe(
        `Bearer resource_metadata="${METADATA_URL}", error="insufficient_scope", error_description="missing scope 'mcp:write'", scope="mcp:read mcp:write"`,
      );
      expect(res.body).toEqual({ error: 'insufficient_scope', error_description: 'missing scope "mcp:write"' });
      // Refused for another requirement (the token type), the route's scopes are still named.
      const roles = await request(app).get('/roles').set('Authorization', `Bearer ${await token('mcp:read')}`);
      expect(roles.status).toBe(403);
      expect(roles.headers['www-authenticate']).toBe(
        `Bearer resource_metadata="${METADATA_URL}", error="insufficient_scope", error_description="token type 'client' not accepted here (accepted: user)", scope="mcp:read"`,
      );
    });

    it('the resource URL is the audience: its tokens pass, a token for another resource is 401 invalid_token', async () => {
      const ok = await request(app).post('/mcp').set('Authorization', `Bearer ${await token('mcp:read mcp:write')}`);
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({ subject: client.id, tokenType: 'client', scopes: SCOPES, claims: { aud: RESOURCE } });
      const res = await request(app).post('/mcp').set('Authorization', `Bearer ${await token('mcp:read mcp:write', OTHER)}`);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe(
        `Bearer resource_metadata="${METADATA_URL}", error="invalid_token", error_description="audience '${OTHER}' not accepted", scope="mcp:read mcp:write"`,
      );
      expect(res.body).toEqual({ error: 'invalid_token', error_description: `audience "${OTHER}" not accepted` });
    });

    it('an explicit realm is kept; routes declared before protectedResource keep the plain challenge', async () => {
      const realm = await request(app).get('/with-realm');
      expect(realm.headers['www-authenticate']).toBe(`Bearer realm="mcp", resource_metadata="${METADATA_URL}", scope="mcp:read"`);
      const before = await request(app).get('/before');
      expect(before.status).toBe(401);
      expect(before.headers['www-authenticate']).toBe(`Bearer realm="${RESOURCE}"`);
    });
  });
});
