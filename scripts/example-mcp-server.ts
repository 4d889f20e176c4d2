import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AuthInfo as McpAuthInfo } from '@modelcontextprotocol/sdk/server/auth/types.js';
import { createVerifier, protectedResource, requireAuth, type AuthInfo } from '../src/verifier';

/**
 * An example MCP server (docs/agents.md "Protecting an MCP server"): the official MCP SDK's server
 * with one tool, `whoami`, over Streamable HTTP on Express, protected by the verifier kit.
 *
 *   npm run example:mcp        (ISSUER=http://localhost:3000 RESOURCE=http://127.0.0.1:4100/mcp PORT=4100)
 *   npm run build && ISSUER=… RESOURCE=… PORT=… node dist/scripts/example-mcp-server.js
 *
 * ISSUER (required): the identity provider. RESOURCE: this server's URL, the `aud` its tokens must
 * carry (register it: `idp resources create <RESOURCE> --name "Example MCP" --scope mcp:tools`);
 * default http://127.0.0.1:$PORT/mcp. PORT: default 4100. In an application, import from
 * '@rs256-idp/verifier' (or '<package>/verifier') instead of '../src/verifier'.
 */

/** The scope a caller needs (the route's), also advertised in the protected-resource metadata. */
export const MCP_SCOPE = 'mcp:tools';

/**
 * The adapter between the kit and the SDK. `requireAuth` sets `req.auth` in the kit's shape; the
 * SDK's transport reads `req.auth` in its own (`AuthInfo` of @modelcontextprotocol/sdk) and hands
 * it to every tool as `extra.authInfo`. The SDK's shape has no user: the kit's caller goes in
 * `extra` (`subject` is the user's id for a user's token).
 */
export function mcpAuthInfo(auth: AuthInfo, authorization: string | undefined, resource: string): McpAuthInfo {
  const exp = auth.claims.exp;
  return {
    token: /^Bearer +(.+)$/i.exec(authorization ?? '')?.[1] ?? '',
    clientId: auth.clientId ?? auth.subject,
    scopes: [...auth.scopes],
    ...(typeof exp === 'number' ? { expiresAt: exp } : {}),
    resource: new URL(resource),
    extra: { subject: auth.subject, tokenType: auth.tokenType, tenantId: auth.tenantId, actor: [...auth.actor] },
  };
}

/** One MCP server per request (the SDK's stateless mode): its one tool says who called it. */
function whoamiServer(): McpServer {
  const server = new McpServer({ name: 'example-mcp-server', version: '1.0.0' });
  server.registerTool('whoami', { description: 'Says who is calling: the user, and the client acting for them.' }, ({ authInfo }) => {
    const user = authInfo?.extra?.subject;
    return { content: [{ type: 'text', text: `You are user ${String(user)}, calling through client ${authInfo?.clientId} with scopes ${authInfo?.scopes.join(' ')}.` }] };
  });
  return server;
}

export interface ExampleMcpOptions {
  /** The identity provider's issuer URL. */
  issuer: string;
  /** This server's URL (path included): the tokens' `aud`, and where the MCP endpoint is served. */
  resource: string;
}

/** The Express app: protected-resource metadata, then the MCP endpoint behind `requireAuth`. */
export function exampleMcpApp({ issuer, resource }: ExampleMcpOptions): express.Express {
  const verifier = createVerifier({ issuer, audience: resource });
  const app = express();
  // RFC 9728 metadata; and every 401 below names it in WWW-Authenticate (resource_metadata, scope).
  app.use(protectedResource({ resource, verifier, scopesSupported: [MCP_SCOPE], resourceName: 'Example MCP server' }));
  const path = new URL(resource).pathname;
  const guard = requireAuth({ verifier, scopes: [MCP_SCOPE] });
  app.post(path, guard, express.json(), async (req, res) => {
    const server = whoamiServer();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    // From here on this request's `auth` is the SDK's shape: that is what the transport reads.
    const auth = mcpAuthInfo(req.auth as AuthInfo, req.headers.authorization, resource);
    await transport.handleRequest(Object.assign(req, { auth }), res, req.body);
  });
  // Stateless: no server-sent event stream to resume, no session to end (authenticated first all the same).
  app.all(path, guard, (_req, res) => {
    res.status(405).set('Allow', 'POST').json({ jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null });
  });
  return app;
}

/**
 * Listens on `port` (0: any free one) on 127.0.0.1; `resource` defaults to http://127.0.0.1:<port>/mcp,
 * known once the port is. Resolves when listening.
 */
export async function startExampleMcpServer(options: { issuer: string; resource?: string; port?: number }): Promise<{ resource: string; close(): Promise<void> }> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const resource = options.resource ?? `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  server.on('request', exampleMcpApp({ issuer: options.issuer, resource }));
  return {
    resource,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (require.main === module) {
  const issuer = process.env.ISSUER?.trim();
  if (!issuer) {
    console.error('example-mcp-server: set ISSUER (the identity provider, e.g. http://localhost:3000); optional RESOURCE and PORT');
    process.exit(2);
  }
  const port = Number(process.env.PORT?.trim() || 4100);
  startExampleMcpServer({ issuer, port, resource: process.env.RESOURCE?.trim() || undefined }).then(
    ({ resource, close }) => {
      console.log(`example MCP server at ${resource} (issuer ${issuer}, scope ${MCP_SCOPE})`);
      const stop = () => void close().then(() => process.exit(0));
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    },
    (error: Error) => {
      console.error(`example-mcp-server: ${error.message}`);
      process.exit(1);
    },
  );
}
