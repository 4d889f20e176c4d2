import cluster from 'node:cluster';
import crypto from 'node:crypto';
import http from 'node:http';

/**
 * The baseline of bench-token: a bare node:http token endpoint doing only the essential work —
 * read and parse the form, decode the Basic header, hash the secret and compare it in constant
 * time, sign the same claims as the real server with `crypto.sign` asynchronously (RSA-2048, a
 * parsed KeyObject), answer JSON. No client lookup, no limits, no metrics, no error model.
 * BENCH_WORKERS processes share the port through node:cluster, as IDP_WORKERS does for the real one.
 */
const workers = Number(process.env.BENCH_WORKERS ?? '1');

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const clientId = process.env.BENCH_CLIENT_ID ?? 'bench';
  const secretHash = crypto.createHash('sha256').update(process.env.BENCH_CLIENT_SECRET ?? 'secret').digest();
  const privateKey = crypto.createPrivateKey(process.env.BENCH_PRIVATE_KEY as string);
  const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'bench', typ: 'at+jwt' })).toString('base64url');

  http
    .createServer((req, res) => {
      // Readiness probe of the bench.
      if (req.method === 'GET') return void res.end('ok');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(chunks).toString());
        const [id, secret] = Buffer.from((req.headers.authorization ?? '').slice(6), 'base64').toString().split(':');
        const ok = form.get('grant_type') === 'client_credentials' && id === clientId && crypto.timingSafeEqual(crypto.createHash('sha256').update(secret ?? '').digest(), secretHash);
        if (!ok) {
          res.writeHead(401, { 'Content-Type': 'application/json' });
          res.end('{"error":"invalid_client"}');
          return;
        }
        const iat = Math.floor(Date.now() / 1000);
        const claims = { iss: 'http://127.0.0.1', sub: clientId, aud: 'https://api.bench', exp: iat + 3600, iat, nbf: iat, jti: crypto.randomBytes(16).toString('base64url'), client_id: clientId, scope: 'read write' };
        const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
        crypto.sign('sha256', Buffer.from(input), privateKey, (error, signature) => {
          const body = Buffer.from(JSON.stringify({ access_token: `${input}.${signature.toString('base64url')}`, token_type: 'Bearer', expires_in: 3600, scope: claims.scope }));
          res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length, 'Cache-Control': 'no-store', Pragma: 'no-cache' });
          res.end(body);
        });
      });
    })
    .listen(Number(process.env.PORT), '127.0.0.1');
}
