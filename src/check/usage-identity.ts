import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { minSigningKeyLength } from '../config/index.js';

/**
 * The identity the Check gives each allowed call's usage: an id of its own (never the client's x-request-id) and an
 * HMAC over the facts the call is billed on, both sent in the ext_authz dynamic metadata. Metering bills an access-log
 * entry only when that signature verifies, de-duplicates on the id and attributes the call to the subscription and
 * billing period the Check decided on. Anyone able to stream access logs can write metadata; only Tollgate can sign it.
 */

/** Dynamic metadata keys: the call's usage id and the signature over it and its facts. */
export const usageIdKey = 'usage_id';
export const usageSignatureKey = 'usage_sig';

/** The facts a call's usage is billed on, besides its id, in signing order. */
export interface UsageFacts {
  customerId: string;
  subscriptionId: string;
  planId: string;
  /** Epoch ms: start of the billing period the Check counted the call in. */
  periodStart: number;
  endpointId: string;
  weight: number;
}

/**
 * The signed message is the JSON array [usage id, customer, subscription, plan, period start, endpoint, weight]:
 * unambiguous whatever the ids hold. This is its part after the usage id, built once per shared set of facts; a
 * usage id needs no JSON escaping (base64url and base-36 digits), so `["<id>",` + this is the whole message.
 */
export function signedFactsTail(facts: UsageFacts): string {
  return JSON.stringify([facts.customerId, facts.subscriptionId, facts.planId, facts.periodStart, facts.endpointId, facts.weight]).slice(1);
}

/** A SHA-256 HMAC cut to 128 bits: forging one is as hard as guessing a 128-bit key. */
const signatureBytes = 16;
const signatureLength = Math.ceil((signatureBytes * 4) / 3);

export type UsageVerdict = { valid: true; usageId: string; facts: UsageFacts } | { valid: false; reason: 'unsigned' | 'bad_signature' };

export class UsageIdentity {
  private readonly signingKey: KeyObject;
  private readonly verifyingKeys: KeyObject[];
  /** Random per instance (96 bits): ids never repeat across replicas and restarts; the counter makes them unique within. */
  private readonly prefix = randomBytes(12).toString('base64url');
  private issued = 0;

  /** `keys[0]` signs; every key verifies, so a key can be rotated in (second, then first) and out (removed later). */
  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new Error('a usage signing key is required');
    for (const key of keys) {
      if (key.length < minSigningKeyLength) throw new Error(`usage signing keys must be at least ${minSigningKeyLength} characters`);
    }
    this.verifyingKeys = keys.map((key) => createSecretKey(Buffer.from(key, 'utf8')));
    this.signingKey = this.verifyingKeys[0]!;
  }

  /** Gives an allowed call a fresh usage id and signs it with its facts (`signedFactsTail`), into its own metadata. */
  stamp(metadata: Record<string, string | number>, factsTail: string): void {
    const usageId = this.prefix + (this.issued++).toString(36);
    metadata[usageIdKey] = usageId;
    metadata[usageSignatureKey] = createHmac('sha256', this.signingKey)
      .update(`["${usageId}",${factsTail}`)
      .digest()
      .toString('base64url', 0, signatureBytes);
  }

  /** Whether an access-log entry's ext_authz metadata carries a usage id and facts this deployment signed. */
  verify(metadata: Readonly<Record<string, string | number | boolean>>): UsageVerdict {
    const usageId = metadata[usageIdKey];
    const signature = metadata[usageSignatureKey];
    if (usageId === undefined && signature === undefined) return { valid: false, reason: 'unsigned' };
    const facts = usageFactsOf(metadata);
    if (typeof usageId !== 'string' || typeof signature !== 'string' || signature.length !== signatureLength || !facts) {
      return { valid: false, reason: 'bad_signature' };
    }
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== signatureBytes) return { valid: false, reason: 'bad_signature' };
    const message = JSON.stringify([usageId, facts.customerId, facts.subscriptionId, facts.planId, facts.periodStart, facts.endpointId, facts.weight]);
    for (const key of this.verifyingKeys) {
      const expected = createHmac('sha256', key).update(message).digest().subarray(0, signatureBytes);
      if (timingSafeEqual(expected, given)) return { valid: true, usageId, facts };
    }
    return { valid: false, reason: 'bad_signature' };
  }
}

function usageFactsOf(metadata: Readonly<Record<string, string | number | boolean>>): UsageFacts | undefined {
  const { customer_id, subscription_id, plan_id, period_start, endpoint_id, weight } = metadata;
  if (typeof customer_id !== 'string' || typeof subscription_id !== 'string' || typeof plan_id !== 'string' || typeof endpoint_id !== 'string') {
    return undefined;
  }
  if (!Number.isSafeInteger(period_start) || !Number.isSafeInteger(weight)) return undefined;
  return { customerId: customer_id, subscriptionId: subscription_id, planId: plan_id, periodStart: period_start as number, endpointId: endpoint_id, weight: weight as number };
}
