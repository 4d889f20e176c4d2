import express from 'express';
import { createVerifier, requireAuth } from '../src/verifier';

/**
 * An example resource server protected by the verifier kit (docs/verifier-kit.md "Protecting an API".
 *
 *   npm run build
 *   ISSUER=http://localhost:3000 AUDIENCE=https://billing.example \
 *   CLIENT_ID=... CLIENT_SECRET=... PORT=4000 node dist/scripts/example-resource-server.js
 *
 * ISSUER (required): the identity provider's issuer URL. AUDIENCE (required): this API's audience;
 * several may be given, separated by commas. CLIENT_ID / CLIENT_SECRET (optional): this API's own
 * OAuth client, needed to accept API keys (checked at the introspection endpoint). PORT: default 4000.
 * In an application, import from '<package>/verifier' instead of '../src/verifier'.
 */
const env = (name: string): string | undefined => (process.env[name] ?? '').trim() || undefined;
const issuer = env('ISSUER');
const audience = env('AUDIENCE');
if (!issuer || !audience) {
  console.error('example-resource-server: set ISSUER (the identity provider, e.g. http://localhost:3000) and AUDIENCE (this API, e.g. https://billing.example)');
  process.exit(2);
}
const clientId = env('CLIENT_ID');
const clientSecret = env('CLIENT_SECRET');

// One verifier per process: it holds the discovered metadata, the key set and the caches.
const verifier = createVerifier({
  issuer,
  audience: audience.split(',').map((a) => a.trim()),
  ...(clientId && clientSecret ? { clientId, clientSecret } : {}),
  // Application roles, declared once; every request gets `req.auth.roles`.
  roles: {
    admin: [{ role: 'admin' }, { tokenType: 'admin' }],
    'billing-reader': { scope: 'invoices:read' },
    'billing-writer': { scope: 'invoices:write' },
    automation: { tokenType: ['api_key', 'exchanged', 'client'] },
  },
});

// Refusals are answered by the middleware; log the private detail of each one here.
const onError = (error: Error, req: express.Request) => {
  const cause = error.cause instanceof Error ? error.cause.message : undefined;
  console.warn(JSON.stringify({ method: req.method, path: req.path, error: error.message, ...(cause ? { cause } : {}) }));
};

const app = express();
app.get('/health', (_req, res) => {
  res.json({ ok: true, identityProvider: verifier.status() });
});
app.get('/me', requireAuth({ verifier, onError }), (req, res) => {
  res.json(req.auth);
});
app.get('/invoices', requireAuth({ verifier, onError, scopes: ['invoices:read'] }), (req, res) => {
  res.json({ invoices: [{ id: 'inv_1', amount: 4200 }], for: req.auth?.subject });
});
app.post('/invoices', requireAuth({ verifier, onError, scopes: ['invoices:write'] }), (req, res) => {
  res.status(201).json({ created: 'inv_2', by: req.auth?.subject });
});
app.get('/admin/report', requireAuth({ verifier, onError, roles: ['admin'] }), (req, res) => {
  res.json({ report: 'ok', roles: req.auth?.roles });
});

const port = Number(env('PORT') ?? 4000);
const server = app.listen(port, () => {
  console.log(`example resource server on http://localhost:${port} (issuer ${issuer}, audience ${audience}${clientId ? ', API keys on' : ', API keys off: no CLIENT_ID'})`);
  // Optional: discover the issuer and fetch its keys now rather than at the first request.
  verifier.ready().then(
    () => console.log(`identity provider reachable; signing keys ${verifier.status().keys.kids.join(', ')}`),
    (error: Error) => console.warn(`identity provider not reachable yet (${error.message}); requests will retry`),
  );
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
