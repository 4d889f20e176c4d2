import http from 'node:http';

/**
 * The baseline of bench-jwks: bare node:http answering the same JWKS bytes (passed in
 * BENCH_JWKS_BODY) with the same headers, and nothing else.
 */
const body = Buffer.from(process.env.BENCH_JWKS_BODY ?? '{"keys":[]}');
const etag = process.env.BENCH_JWKS_ETAG ?? '"bare"';
http
  .createServer((_req, res) => {
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': body.length,
      'Cache-Control': 'public, max-age=300',
      ETag: etag,
    });
    res.end(body);
  })
  .listen(Number(process.env.PORT), '127.0.0.1');
