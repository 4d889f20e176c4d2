import net from 'node:net';
import type { RunFigures } from './bench';

/**
 * A closed-loop HTTP/1.1 load generator for benchmarks whose requests differ from one another
 * (each private_key_jwt request carries its own assertion): `connections` keep-alive connections,
 * each sending its next request, prebuilt as bytes, when the previous response is whole. autocannon
 * rebuilds a request that its `setupRequest` changes, which on 2 shared cores cost ~45 µs of CPU a
 * request more than a fixed one (measured with bench:private-key-jwt's CPU figures), taken from the
 * server being measured; here a request costs the same whatever it holds. It reads only what it
 * needs of a response: the status and Content-Length (the server always sends it).
 *
 * Requests per second are the responses over the time from the first to the last.
 */
export async function rawLoad(options: { url: string; connections: number; requests: readonly Buffer[] }): Promise<RunFigures> {
  const { hostname, port } = new URL(options.url);
  const latencies = new Float64Array(options.requests.length);
  let sent = 0;
  let received = 0;
  let non2xx = 0;
  let errors = 0;
  let first = 0;
  let last = 0;

  const connection = () =>
    new Promise<void>((resolve) => {
      const socket = net.connect(Number(port), hostname);
      socket.setNoDelay(true);
      let pending: Buffer = Buffer.alloc(0);
      let startedAt = 0;
      const sendNext = () => {
        if (sent >= options.requests.length) {
          socket.end();
          return;
        }
        const request = options.requests[sent++] as Buffer;
        startedAt = performance.now();
        socket.write(request);
      };
      socket.on('connect', sendNext);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        for (;;) {
          const headerEnd = pending.indexOf('\r\n\r\n');
          if (headerEnd < 0) return;
          const head = pending.toString('latin1', 0, headerEnd);
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (pending.length < headerEnd + 4 + length) return;
          const now = performance.now();
          latencies[received++] = now - startedAt;
          if (received === 1) first = now;
          last = now;
          const status = Number(head.slice(9, 12));
          if (status < 200 || status > 299) non2xx++;
          pending = pending.subarray(headerEnd + 4 + length);
          sendNext();
        }
      });
      socket.on('error', () => {
        errors++;
      });
      socket.on('close', () => resolve());
    });

  await Promise.all(Array.from({ length: options.connections }, connection));
  const sorted = latencies.subarray(0, received).sort();
  const percentile = (p: number) => Math.round(sorted[Math.min(received - 1, Math.floor((received * p) / 100))] ?? 0);
  return { requestsPerSecond: (received - 1) / ((last - first) / 1000), p50: percentile(50), p99: percentile(99), non2xx, errors };
}

/** The bytes of a POST of a form to `url`, with `headers` besides Host, Content-Type and Content-Length. */
export function formRequest(url: string, body: string, headers: Record<string, string> = {}): Buffer {
  const { host, pathname } = new URL(url);
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const bytes = Buffer.from(body);
  return Buffer.concat([
    Buffer.from(`POST ${pathname} HTTP/1.1\r\nhost: ${host}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${bytes.length}\r\n${extra}\r\n`, 'latin1'),
    bytes,
  ]);
}
