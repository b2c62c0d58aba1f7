import { hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http2';
import type { Authentication, Authenticator, Peer } from './transport.js';

/**
 * Who may send Checks and access logs: the port bills whatever reaches it, so only known peers may. A caller is known
 * by a client certificate that verified against the client CA (and, with an allowlist, names an allowed identity:
 * a SPIFFE id or DNS name in its subject alternative names), or by a caller token in the call's metadata
 * (`authorization: Bearer <token>`, which Envoy's `grpc_service.initial_metadata` sends).
 */
export interface CallerPolicy {
  /** Client certificates are verified (a client CA is configured). */
  clientCertificates: boolean;
  /**
   * Subject alternative names a client certificate must carry one of, as Node prints them (`URI:spiffe://…`,
   * `DNS:envoy.example.com`); a bare `spiffe://…` means `URI:spiffe://…`, a bare name `DNS:<name>`; a trailing `*`
   * matches any rest.
   * Empty: any certificate the client CA verified.
   */
  allowedPeers: readonly string[];
  /** The caller tokens in force (rotated tokens: read again when they change). */
  tokens: () => ReadonlySet<string>;
}

/** Whether the policy asks anything of callers at all; without, the port is open to whoever reaches it. */
export const authenticates = (policy: CallerPolicy) => policy.clientCertificates || policy.allowedPeers.length > 0 || policy.tokens().size > 0;

const refusal: Authentication = {
  ok: false,
  reason: 'caller not authenticated: present a client certificate this server trusts or a caller token (authorization: Bearer …)',
};
const accepted: Authentication = { ok: true };

export function callerAuthenticator(policy: CallerPolicy): Authenticator {
  const patterns = policy.allowedPeers.map(sanPattern);
  const peerAllowed = (peer: Peer) =>
    peer.verified && (patterns.length === 0 || peer.identities.some((identity) => patterns.some((pattern) => matches(pattern, identity))));
  const allowedPeers = new WeakMap<Peer, boolean>();
  // Envoy repeats one token on every call of a connection: its hash is checked once per connection and token set.
  const acceptedTokens = new WeakMap<Peer, { header: string; tokens: ReadonlySet<string> }>();
  let hashedFrom: ReadonlySet<string> | undefined;
  let hashed = new Set<string>();
  return (peer: Peer, headers: IncomingHttpHeaders) => {
    let allowed = allowedPeers.get(peer);
    if (allowed === undefined) allowedPeers.set(peer, (allowed = peerAllowed(peer)));
    if (allowed) return accepted;
    const header = headers.authorization;
    if (typeof header !== 'string') return refusal;
    const tokens = policy.tokens();
    const known = acceptedTokens.get(peer);
    if (known && known.header === header && known.tokens === tokens) return accepted;
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (!token) return refusal;
    if (hashedFrom !== tokens) {
      hashed = new Set([...tokens].map(digest));
      hashedFrom = tokens;
    }
    // Compared as digests: the lookup's timing says nothing about the tokens.
    if (!hashed.has(digest(token))) return refusal;
    acceptedTokens.set(peer, { header, tokens });
    return accepted;
  };
}

const digest = (token: string) => hash('sha256', token, 'hex');

function matches(pattern: string, identity: string): boolean {
  return pattern.endsWith('*') ? identity.startsWith(pattern.slice(0, -1)) : identity === pattern;
}

/** An allowlist entry as Node prints a SAN: a URI (SPIFFE id) or a DNS name may be given bare. */
function sanPattern(entry: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) return `URI:${entry}`;
  if (/^(DNS|URI|IP Address|email|othername):/i.test(entry)) return entry;
  return `DNS:${entry}`;
}
