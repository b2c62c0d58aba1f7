import type { Identity } from './types.js';
import type { CustomerStatus, KeyStatus, SubscriptionStatus } from './types.js';

/**
 * How identities are kept in Redis (docs/ARCHITECTURE.md, "Identity on demand"):
 * - one record per key hash, the key with its subscription and customer denormalised, so that a miss is one GET;
 * - per customer, the set of its records' hashes (so an erasure, which changes a key's hash, can delete the old record);
 * - a version counter, raised after every write, and a marker saying the records are complete (rebuilt from
 *   PostgreSQL), under one hash tag so that one MGET reads both on Redis Cluster;
 * - a pub/sub channel carrying each write's version and the hashes it touched.
 * Pure: names and encoding only.
 */
export interface IdentityKeys {
  record(hash: string): string;
  customerHashes(customerId: string): string;
  version: string;
  complete: string;
  channel: string;
}

export function identityKeys(prefix: string): IdentityKeys {
  return {
    record: (hash) => `${prefix}:idk:${hash}`,
    // The customer's own hash tag, as its counters have (counters/store.ts).
    customerHashes: (customerId) => `${prefix}:{${customerId}}:idkeys`,
    version: `${prefix}:{identity}:version`,
    complete: `${prefix}:{identity}:complete`,
    channel: `${prefix}:identity:changes`,
  };
}

/** A write's notice on the channel: its version and the key hashes whose records it changed or deleted. */
export interface IdentityChange {
  version: number;
  hashes: string[];
}

type Encoded = [
  key: [id: string, customerId: string, subscriptionId: string, status: KeyStatus],
  subscription: [id: string, customerId: string, productId: string, planId: string, status: SubscriptionStatus, periodAnchor: number] | 0,
  customer: [id: string, status: CustomerStatus, overdue: 0 | 1] | 0,
];

/** Positional JSON: a record is about 150 bytes, and Redis holds one per key. */
export function encodeIdentity({ key, subscription, customer }: Identity): string {
  const encoded: Encoded = [
    [key.id, key.customerId, key.subscriptionId, key.status],
    subscription ? [subscription.id, subscription.customerId, subscription.productId, subscription.planId, subscription.status, subscription.periodAnchor] : 0,
    customer ? [customer.id, customer.status, customer.overdue ? 1 : 0] : 0,
  ];
  return JSON.stringify(encoded);
}

export function decodeIdentity(text: string): Identity {
  const [key, subscription, customer] = JSON.parse(text) as Encoded;
  return {
    key: { id: key[0], customerId: key[1], subscriptionId: key[2], status: key[3] },
    subscription: subscription
      ? { id: subscription[0], customerId: subscription[1], productId: subscription[2], planId: subscription[3], status: subscription[4], periodAnchor: subscription[5] }
      : undefined,
    customer: customer ? { id: customer[0], status: customer[1], overdue: customer[2] === 1 } : undefined,
  };
}

export const encodeChange = (change: IdentityChange) => JSON.stringify([change.version, change.hashes]);

export function decodeChange(text: string): IdentityChange | undefined {
  try {
    const [version, hashes] = JSON.parse(text) as [unknown, unknown];
    if (typeof version !== 'number' || !Array.isArray(hashes) || !hashes.every((hash) => typeof hash === 'string')) return undefined;
    return { version, hashes };
  } catch {
    return undefined;
  }
}
