import { randomBytes } from 'node:crypto';
import { minSigningKeyLength } from '../config/index.js';
import { HmacSha256, writeInteger } from '../kernel/index.js';

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

/** Where a usage id and its facts lie in an access-log entry's bytes, in signing order (see verifiesBytes). */
export interface SignedFactSpans {
  /** Start and end offsets of the usage id, customer, subscription, plan and endpoint. */
  spans: Int32Array;
  periodStart: number;
  weight: number;
  /** Offset of the signature's 22 characters. */
  signatureAt: number;
}

/**
 * Usage ids: the millisecond (9 base-36 digits), the instance's random part (8 characters), then a sequence number
 * within the millisecond (4 base-36 digits); 21 characters, none needing JSON escaping. Fixed width and time first, so
 * ids sort in the order they were issued (bytewise, as usage_events' key compares them): PostgreSQL appends each new
 * event's key at the right edge of that index, which stays compact and hot in memory, instead of inserting among older
 * keys. An instance's ids always increase: while its clock stands still or goes back it carries on from the last
 * millisecond, moving to the next one after 36^4 ids. Metering takes any id (earlier ones were a random prefix and a
 * counter): only the signature matters.
 */
export class UsageIds {
  /** Random per instance (48 bits): ids of replicas and restarts issued in the same millisecond differ by it. */
  private readonly instance = randomBytes(6).toString('base64url');
  /** The millisecond of the last id (never going back), the ids' part up to the sequence number, and that number. */
  private millisecond = 0;
  private head = '';
  private sequence = 0;

  constructor(private readonly now: () => number = Date.now) {}

  next(): string {
    const now = this.now();
    if (now > this.millisecond) {
      this.millisecond = now;
      this.sequence = 0;
      this.head = now.toString(36).padStart(timeDigits, '0') + this.instance;
    } else if (++this.sequence === sequenceLimit) {
      this.millisecond += 1;
      this.sequence = 0;
      this.head = this.millisecond.toString(36).padStart(timeDigits, '0') + this.instance;
    }
    return this.head + this.sequence.toString(36).padStart(sequenceDigits, '0');
  }
}

/** Base-36 digits of the millisecond: enough until the year 5138. */
const timeDigits = 9;
const sequenceDigits = 4;
const sequenceLimit = 36 ** sequenceDigits;

export class UsageIdentity {
  private readonly signingKey: HmacSha256;
  private readonly verifyingKeys: HmacSha256[];
  /** The message being signed or verified, as UTF-8; a longer one gets a buffer of its own. */
  private scratch = Buffer.allocUnsafe(1024);
  private readonly words = new Int32Array(8);
  private readonly usageIds: UsageIds;

  /**
   * `keys[0]` signs; every key verifies, so a key can be rotated in (second, then first) and out (removed later).
   * `now` is the clock usage ids are issued on (epoch ms).
   */
  constructor(keys: readonly string[], now: () => number = Date.now) {
    this.usageIds = new UsageIds(now);
    if (keys.length === 0) throw new Error('a usage signing key is required');
    for (const key of keys) {
      if (key.length < minSigningKeyLength) throw new Error(`usage signing keys must be at least ${minSigningKeyLength} characters`);
    }
    this.verifyingKeys = keys.map((key) => new HmacSha256(Buffer.from(key, 'utf8')));
    this.signingKey = this.verifyingKeys[0]!;
  }

  /** Gives an allowed call a fresh usage id and signs it with its facts (`signedFactsTail`), into its own metadata. */
  stamp(metadata: Record<string, string | number>, factsTail: string): void {
    const usageId = this.usageIds.next();
    metadata[usageIdKey] = usageId;
    const length = this.encode(`["${usageId}",${factsTail}`);
    this.signingKey.digestWords(this.scratch, 0, length, this.words);
    const signature = Buffer.allocUnsafe(signatureBytes);
    for (let i = 0; i < signatureBytes / 4; i++) signature.writeInt32BE(this.words[i]!, i * 4);
    metadata[usageSignatureKey] = signature.toString('base64url');
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
    const length = this.encode(JSON.stringify([usageId, facts.customerId, facts.subscriptionId, facts.planId, facts.periodStart, facts.endpointId, facts.weight]));
    for (const key of this.verifyingKeys) {
      key.digestWords(this.scratch, 0, length, this.words);
      let difference = 0;
      for (let i = 0; i < signatureBytes; i++) difference |= given[i]! ^ ((this.words[i >> 2]! >>> (24 - 8 * (i & 3))) & 0xff);
      if (difference === 0) return { valid: true, usageId, facts };
    }
    return { valid: false, reason: 'bad_signature' };
  }

  /**
   * verify() for an entry read straight from its bytes (metering's fast path), without strings: true when the
   * signature is one of the verifying keys' over the facts, written canonically (unpadded base64url, as stamp()
   * writes it), and every id is printable ASCII without '"' or '\\' (so its bytes are its JSON). False otherwise: the
   * caller then decodes the entry and asks verify(), which gives the verdict (it also takes other base64 spellings).
   */
  verifiesBytes(bytes: Uint8Array, facts: SignedFactSpans): boolean {
    const { spans } = facts;
    let length = 0;
    for (let i = 0; i < spans.length; i += 2) length += spans[i + 1]! - spans[i]!;
    // Ids, the two numbers (at most 17 characters each) and the punctuation.
    if (length + 64 > this.scratch.length) return false;
    const out = this.scratch;
    out[0] = 0x5b; // [
    let at = 1;
    for (let i = 0; i < spans.length; i += 2) {
      if (i > 0) out[at++] = 0x2c; // ,
      if (i === 8) {
        at = writeInteger(out, at, facts.periodStart);
        out[at++] = 0x2c;
      }
      out[at++] = 0x22; // "
      for (let p = spans[i]!, end = spans[i + 1]!; p < end; p++) {
        const byte = bytes[p]!;
        if (byte < 0x20 || byte > 0x7e || byte === 0x22 || byte === 0x5c) return false;
        out[at++] = byte;
      }
      out[at++] = 0x22;
    }
    out[at++] = 0x2c;
    at = writeInteger(out, at, facts.weight);
    out[at++] = 0x5d; // ]
    for (const key of this.verifyingKeys) {
      key.digestWords(out, 0, at, this.words);
      if (sameBase64url(this.words, bytes, facts.signatureAt)) return true;
    }
    return false;
  }

  /** Writes `message` into the scratch buffer (grown when too small) as UTF-8; returns its length. */
  private encode(message: string): number {
    if (message.length * 3 > this.scratch.length) this.scratch = Buffer.allocUnsafe(message.length * 3);
    return this.scratch.write(message, 0, 'utf8');
  }
}

const base64urlDigits = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', 'latin1');

/** Whether bytes[at, at + 22) spell the first 16 bytes of the big-endian `words` in unpadded base64url; every character is compared. */
function sameBase64url(words: Int32Array, bytes: Uint8Array, at: number): boolean {
  let difference = 0;
  let bits = 0;
  let pending = 0;
  for (let i = 0; i < signatureBytes; i++) {
    bits = (bits << 8) | ((words[i >> 2]! >>> (24 - 8 * (i & 3))) & 0xff);
    pending += 8;
    while (pending >= 6) {
      pending -= 6;
      difference |= bytes[at++]! ^ base64urlDigits[(bits >>> pending) & 0x3f]!;
    }
    bits &= (1 << pending) - 1;
  }
  difference |= bytes[at]! ^ base64urlDigits[(bits << (6 - pending)) & 0x3f]!;
  return difference === 0;
}

function usageFactsOf(metadata: Readonly<Record<string, string | number | boolean>>): UsageFacts | undefined {
  const { customer_id, subscription_id, plan_id, period_start, endpoint_id, weight } = metadata;
  if (typeof customer_id !== 'string' || typeof subscription_id !== 'string' || typeof plan_id !== 'string' || typeof endpoint_id !== 'string') {
    return undefined;
  }
  if (!Number.isSafeInteger(period_start) || !Number.isSafeInteger(weight)) return undefined;
  return { customerId: customer_id, subscriptionId: subscription_id, planId: plan_id, periodStart: period_start as number, endpointId: endpoint_id, weight: weight as number };
}
