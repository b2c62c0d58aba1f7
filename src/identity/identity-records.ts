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

/**
 * The record's strings, one copy each: JSON.parse makes a string per occurrence, so a cached identity would hold the
 * customer's id three times, the subscription's twice, and its own copy of every status, product and plan id.
 */
export function decodeIdentity(text: string): Identity {
  const [key, subscription, customer] = JSON.parse(text) as Encoded;
  const [, customerId, subscriptionId] = key;
  return {
    key: { id: key[0], customerId, subscriptionId, status: interned(key[3]) },
    subscription: subscription
      ? {
          id: sameAs(subscription[0], subscriptionId),
          customerId: sameAs(subscription[1], customerId),
          productId: interned(subscription[2]),
          planId: interned(subscription[3]),
          status: interned(subscription[4]),
          periodAnchor: subscription[5],
        }
      : undefined,
    customer: customer ? { id: sameAs(customer[0], customerId), status: interned(customer[1]), overdue: customer[2] === 1 } : undefined,
  };
}

const sameAs = <T extends string>(value: T, known: T): T => (value === known ? known : value);

/** Statuses, product and plan ids: a catalog's worth of distinct values, held once each (up to a bound). */
const internedValues = new Map<string, string>();
const maxInterned = 4_096;

function interned<T extends string>(value: T): T {
  const held = internedValues.get(value);
  if (held !== undefined) return held as T;
  if (internedValues.size < maxInterned) internedValues.set(value, value);
  return value;
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
