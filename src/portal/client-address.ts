/** Who is calling: the client's address behind trusted reverse proxies, and the key rate limits count it under. */
import { isIP, type BlockList } from 'node:net';

const family = (address: string) => (isIP(address) === 6 ? 'ipv6' : 'ipv4');

/** Strips the IPv4-mapped IPv6 prefix Node reports on dual-stack sockets. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

export function isTrusted(address: string, trusted: BlockList): boolean {
  const plain = plainAddress(address);
  return isIP(plain) !== 0 && trusted.check(plain, family(plain));
}

/**
 * The client's address: the socket's peer, or, while that peer is a trusted proxy, the address it forwarded for
 * (X-Forwarded-For read from the right, skipping trusted proxies). Entries a client wrote itself are never believed.
 */
export function clientAddress(peer: string, forwardedFor: string | undefined, trusted: BlockList): string {
  let client = plainAddress(peer);
  if (!isTrusted(client, trusted) || !forwardedFor) return client;
  const hops = forwardedFor.split(',').map((hop) => plainAddress(hop.trim()));
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (isIP(hop) === 0) return client;
    client = hop;
    if (!isTrusted(hop, trusted)) return hop;
  }
  return client;
}

/** IPv6 clients usually hold a whole /64: they are counted by it, or each could sign up from 2^64 addresses. */
export function rateLimitKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const expanded = expandIpv6(address);
  return `${expanded.slice(0, 4).join(':')}::/64`;
}

function expandIpv6(address: string): string[] {
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const zeros = Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0');
  return [...left, ...(tail === undefined ? [] : zeros), ...right].map((group) => group.toLowerCase().replace(/^0+(?=.)/, ''));
}
