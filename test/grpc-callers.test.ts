import { describe, expect, it } from 'vitest';
import { callerAuthenticator } from '../src/grpc/callers.js';
import type { Peer } from '../src/grpc/transport.js';

/** Who may call: client certificates by their SANs as Node prints them, or bearer tokens. */
describe('the caller allowlist', () => {
  const peer = (...identities: string[]): Peer => ({ address: '10.0.0.7', verified: true, identities });
  const allowing = (...allowedPeers: string[]) => callerAuthenticator({ clientCertificates: true, allowedPeers, tokens: () => new Set() });

  it('takes bare SPIFFE ids and DNS names as the SANs Node prints, and prefixes ending in *', () => {
    const authenticate = allowing('spiffe://cluster.local/ns/gateway/sa/*', 'envoy.gateway.svc', 'DNS:edge.example.com');
    expect(authenticate(peer('URI:spiffe://cluster.local/ns/gateway/sa/envoy'), {}).ok).toBe(true);
    expect(authenticate(peer('DNS:envoy.gateway.svc'), {}).ok).toBe(true);
    expect(authenticate(peer('DNS:edge.example.com'), {}).ok).toBe(true);
    expect(authenticate(peer('URI:spiffe://cluster.local/ns/other/sa/envoy'), {}).ok).toBe(false);
    expect(authenticate(peer('DNS:envoy.gateway.svc.evil.example'), {}).ok).toBe(false);
    expect(authenticate({ ...peer('DNS:envoy.gateway.svc'), verified: false }, {}).ok).toBe(false);
  });
});
