import net from 'node:net';

/**
 * Addresses a production server must never fetch from on a caller's word (a client's jwks_uri, a
 * client's metadata document): the IANA IPv4 and IPv6 Special-Purpose Address Registries, every
 * entry, plus multicast and the deprecated IPv6 forms that embed an IPv4 address. docs/private-key-jwt.md
 * "Clients without shared secrets: `private_key_jwt`" (fetching a jwks_uri).
 *
 * An IPv6 address that embeds an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
 * `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`, NAT64, 6to4, Teredo) is refused for its own
 * range and its embedded IPv4 address is checked too, so that no spelling of 127.0.0.1 gets through
 * should one of those ranges ever be allowed.
 */

export interface SpecialPurposeRange {
  /** The range in CIDR notation, as the registry writes it. */
  range: string;
  name: string;
  /** The RFC that defines it. */
  rfc: string;
}

/** IANA IPv4 Special-Purpose Address Registry, plus multicast (IANA IPv4 Multicast Address Space). */
export const SPECIAL_PURPOSE_IPV4: readonly SpecialPurposeRange[] = [
  { range: '0.0.0.0/8', name: '"this network"', rfc: 'RFC 791' },
  { range: '0.0.0.0/32', name: '"this host on this network"', rfc: 'RFC 1122' },
  { range: '10.0.0.0/8', name: 'private use', rfc: 'RFC 1918' },
  { range: '100.64.0.0/10', name: 'shared address space (carrier-grade NAT)', rfc: 'RFC 6598' },
  { range: '127.0.0.0/8', name: 'loopback', rfc: 'RFC 1122' },
  { range: '169.254.0.0/16', name: 'link-local (cloud metadata services)', rfc: 'RFC 3927' },
  { range: '172.16.0.0/12', name: 'private use', rfc: 'RFC 1918' },
  { range: '192.0.0.0/24', name: 'IETF protocol assignments', rfc: 'RFC 6890' },
  { range: '192.0.0.0/29', name: 'IPv4 service continuity prefix', rfc: 'RFC 7335' },
  { range: '192.0.0.8/32', name: 'IPv4 dummy address', rfc: 'RFC 7600' },
  { range: '192.0.0.9/32', name: 'Port Control Protocol anycast', rfc: 'RFC 7723' },
  { range: '192.0.0.10/32', name: 'TURN anycast', rfc: 'RFC 8155' },
  { range: '192.0.0.170/32', name: 'NAT64/DNS64 discovery', rfc: 'RFC 7050' },
  { range: '192.0.0.171/32', name: 'NAT64/DNS64 discovery', rfc: 'RFC 7050' },
  { range: '192.0.2.0/24', name: 'documentation (TEST-NET-1)', rfc: 'RFC 5737' },
  { range: '192.31.196.0/24', name: 'AS112-v4', rfc: 'RFC 7535' },
  { range: '192.52.193.0/24', name: 'AMT', rfc: 'RFC 7450' },
  { range: '192.88.99.0/24', name: '6to4 relay anycast (deprecated)', rfc: 'RFC 7526' },
  { range: '192.168.0.0/16', name: 'private use', rfc: 'RFC 1918' },
  { range: '192.175.48.0/24', name: 'direct delegation AS112 service', rfc: 'RFC 7534' },
  { range: '198.18.0.0/15', name: 'benchmarking', rfc: 'RFC 2544' },
  { range: '198.51.100.0/24', name: 'documentation (TEST-NET-2)', rfc: 'RFC 5737' },
  { range: '203.0.113.0/24', name: 'documentation (TEST-NET-3)', rfc: 'RFC 5737' },
  { range: '224.0.0.0/4', name: 'multicast', rfc: 'RFC 5771' },
  { range: '240.0.0.0/4', name: 'reserved', rfc: 'RFC 1112' },
  { range: '255.255.255.255/32', name: 'limited broadcast', rfc: 'RFC 919' },
];

/** IANA IPv6 Special-Purpose Address Registry, plus IPv4-compatible, IPv4-translated, site-local and multicast. */
export const SPECIAL_PURPOSE_IPV6: readonly SpecialPurposeRange[] = [
  { range: '::/128', name: 'unspecified', rfc: 'RFC 4291' },
  { range: '::1/128', name: 'loopback', rfc: 'RFC 4291' },
  { range: '::/96', name: 'IPv4-compatible (deprecated)', rfc: 'RFC 4291' },
  { range: '::ffff:0:0/96', name: 'IPv4-mapped', rfc: 'RFC 4291' },
  { range: '::ffff:0:0:0/96', name: 'IPv4-translated', rfc: 'RFC 2765' },
  { range: '64:ff9b::/96', name: 'IPv4-IPv6 translation (NAT64)', rfc: 'RFC 6052' },
  { range: '64:ff9b:1::/48', name: 'IPv4-IPv6 translation, local use', rfc: 'RFC 8215' },
  { range: '100::/64', name: 'discard only', rfc: 'RFC 6666' },
  { range: '100:0:0:1::/64', name: 'dummy IPv6 prefix', rfc: 'RFC 9780' },
  { range: '2001::/23', name: 'IETF protocol assignments', rfc: 'RFC 2928' },
  { range: '2001::/32', name: 'Teredo', rfc: 'RFC 4380' },
  { range: '2001:1::1/128', name: 'Port Control Protocol anycast', rfc: 'RFC 7723' },
  { range: '2001:1::2/128', name: 'TURN anycast', rfc: 'RFC 8155' },
  { range: '2001:1::3/128', name: 'DNS-SD service registration protocol anycast', rfc: 'RFC 9665' },
  { range: '2001:2::/48', name: 'benchmarking', rfc: 'RFC 5180' },
  { range: '2001:3::/32', name: 'AMT', rfc: 'RFC 7450' },
  { range: '2001:4:112::/48', name: 'AS112-v6', rfc: 'RFC 7535' },
  { range: '2001:10::/28', name: 'ORCHID (deprecated)', rfc: 'RFC 4843' },
  { range: '2001:20::/28', name: 'ORCHIDv2', rfc: 'RFC 7343' },
  { range: '2001:30::/28', name: 'drone remote ID entity tags', rfc: 'RFC 9374' },
  { range: '2001:db8::/32', name: 'documentation', rfc: 'RFC 3849' },
  { range: '2002::/16', name: '6to4', rfc: 'RFC 3056' },
  { range: '2620:4f:8000::/48', name: 'direct delegation AS112 service', rfc: 'RFC 7534' },
  { range: '3fff::/20', name: 'documentation', rfc: 'RFC 9637' },
  { range: '5f00::/16', name: 'segment routing (SRv6) SIDs', rfc: 'RFC 9602' },
  { range: 'fc00::/7', name: 'unique local', rfc: 'RFC 4193' },
  { range: 'fe80::/10', name: 'link-local unicast', rfc: 'RFC 4291' },
  { range: 'fec0::/10', name: 'site-local (deprecated)', rfc: 'RFC 3879' },
  { range: 'ff00::/8', name: 'multicast', rfc: 'RFC 4291' },
];

/**
 * One BlockList per entry, to name the entry an address falls in. Never one list for both families:
 * Node's BlockList matches an IPv4 rule against an IPv4-mapped IPv6 address and an IPv6 rule (such
 * as `::ffff:0:0/96`) against every IPv4 address, so each family is checked against its own entries.
 */
function compile(entries: readonly SpecialPurposeRange[], family: 'ipv4' | 'ipv6'): (address: string) => SpecialPurposeRange | undefined {
  const compiled = entries.map((entry) => {
    const [network, prefix] = entry.range.split('/') as [string, string];
    const list = new net.BlockList();
    list.addSubnet(network, Number(prefix), family);
    return { entry, prefix: Number(prefix), list };
  });
  // The most specific entry names the address (::1 is loopback before it is IPv4-compatible).
  return (address) =>
    compiled.filter(({ list }) => list.check(address, family)).reduce<(typeof compiled)[number] | undefined>((best, c) => (best && best.prefix >= c.prefix ? best : c), undefined)?.entry;
}
const IPV4 = compile(SPECIAL_PURPOSE_IPV4, 'ipv4');
const IPV6 = compile(SPECIAL_PURPOSE_IPV6, 'ipv6');

/** The 16 bytes of a valid IPv6 address (zone id dropped, a dotted IPv4 tail read). */
function ipv6Bytes(address: string): Uint8Array {
  let text = address.split('%')[0] as string;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const front = groups(head);
  const back = groups(tail);
  const all = tail === undefined ? front : [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

const ipv4At = (bytes: Uint8Array, at: number, invert = false) =>
  Array.from(bytes.subarray(at, at + 4), (byte) => (invert ? ~byte & 0xff : byte)).join('.');

/** The IPv4 addresses an IPv6 address embeds: mapped, compatible, translated, NAT64 (RFC 6052), 6to4 and Teredo (server and client). */
export function embeddedIPv4(address: string): string[] {
  const b = ipv6Bytes(address);
  const zero = (from: number, to: number) => b.subarray(from, to).every((byte) => byte === 0);
  const ffff = (at: number) => b[at] === 0xff && b[at + 1] === 0xff;
  if (zero(0, 10) && ffff(10)) return [ipv4At(b, 12)]; // ::ffff:0:0/96
  if (zero(0, 12)) return [ipv4At(b, 12)]; // ::/96
  if (zero(0, 8) && ffff(8) && zero(10, 12)) return [ipv4At(b, 12)]; // ::ffff:0:0:0/96
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return [ipv4At(b, 12)]; // 64:ff9b::/96
  if (b[0] === 0x20 && b[1] === 0x02) return [ipv4At(b, 2)]; // 2002::/16
  if (b[0] === 0x20 && b[1] === 0x01 && zero(2, 4)) return [ipv4At(b, 4), ipv4At(b, 12, true)]; // 2001::/32
  return [];
}

/**
 * The special-purpose range `address` is in (for an IPv6 address, its own range first, else that
 * of an IPv4 address it embeds), or undefined for an address a production server may reach.
 * Not an IP address: throws a TypeError.
 */
export function specialPurposeRange(address: string): SpecialPurposeRange | undefined {
  const family = net.isIP(address);
  if (family === 4) return IPV4(address);
  if (family !== 6) throw new TypeError('not an IP address');
  const bare = address.split('%')[0] as string;
  const own = IPV6(bare);
  if (own) return own;
  for (const embedded of embeddedIPv4(bare)) {
    const entry = specialPurposeRange(embedded);
    if (entry) return entry;
  }
  return undefined;
}

/** True for an IP address outside every special-purpose range; false for any other text. */
export function isPublicAddress(address: string): boolean {
  return net.isIP(address) !== 0 && specialPurposeRange(address) === undefined;
}

/** How a refused address reads in a message: `127.0.0.1 (loopback, 127.0.0.0/8, RFC 1122)`. */
export function describeSpecialPurpose(address: string): string {
  const entry = net.isIP(address) === 0 ? undefined : specialPurposeRange(address);
  return entry ? `${address} (${entry.name}, ${entry.range}, ${entry.rfc})` : address;
}
