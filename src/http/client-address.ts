import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import proxyaddr from 'proxy-addr';

/** Which peer may name the next address in `X-Forwarded-For` (Express's `trust proxy` function shape). */
export type TrustProxy = (address: string, hop: number) => boolean;

/**
 * The one address of a request (docs/configuration.md "Configuration" `IDP_TRUST_PROXY`): the TCP peer, or, when the peer is a
 * trusted proxy, the rightmost `X-Forwarded-For` entry that no trusted proxy added. Walking from the
 * right is what makes a client unable to choose its own address by sending the header itself.
 * Every limit, log line and audit event uses this value; Express is given the same function, so
 * `req.ip` agrees with it.
 *
 * `Forwarded` (RFC 7239) is not read: a proxy that sets only one of the two headers passes the
 * other through from the client untouched, so reading both would let a client pick its address.
 */
export function clientAddress(req: IncomingMessage, trust: TrustProxy): string {
  if (req.socket.remoteAddress === undefined) return 'unknown';
  return normaliseAddress(proxyaddr(req, trust));
}

/** `::ffff:203.0.113.7` and `203.0.113.7` are the same client: one spelling, so one counter. */
export function normaliseAddress(address: string): string {
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return address.slice(7);
  return address;
}

/**
 * The key a per-address limit counts under. An IPv6 client usually holds a whole /64 and can
 * change its low 64 bits at will, so IPv6 addresses are counted per /64; IPv4 per address.
 */
export function limitedAddress(address: string): string {
  if (!net.isIPv6(address)) return address;
  const groups = expandIPv6(address);
  return groups === undefined ? address : `${groups.slice(0, 4).join(':')}::/64`;
}

function expandIPv6(address: string): string[] | undefined {
  const [head, tail, extra] = address.split('::');
  if (extra !== undefined) return undefined;
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  if (right.some((group) => group.includes('.')) || left.some((group) => group.includes('.'))) return undefined;
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  const groups = [...left, ...Array<string>(missing).fill('0'), ...right].map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''));
  return groups.length === 8 ? groups : undefined;
}
