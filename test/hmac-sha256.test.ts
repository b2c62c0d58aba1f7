import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { signedFactsTail, UsageIdentity, type UsageFacts } from '../src/check/usage-identity.js';
import { HmacSha256 } from '../src/kernel/hmac-sha256.js';

/** The hand-written HMAC-SHA-256 and the signatures made with it must be node:crypto's, byte for byte. */

const words = (hmac: HmacSha256, bytes: Uint8Array, start = 0, end = bytes.length) => {
  const out = new Int32Array(8);
  hmac.digestWords(bytes, start, end, out);
  const digest = Buffer.alloc(32);
  out.forEach((word, i) => digest.writeInt32BE(word, i * 4));
  return digest;
};

describe('HmacSha256', () => {
  it("equals createHmac('sha256') for any key and message, including the block boundaries", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 150 }), fc.uint8Array({ maxLength: 300 }), fc.nat(8), fc.nat(8), (key, message, before, after) => {
        // The message inside a larger buffer, at an offset: only bytes[start, end) count.
        const bytes = Buffer.concat([Buffer.alloc(before, 0xaa), message, Buffer.alloc(after, 0xbb)]);
        expect(words(new HmacSha256(key), bytes, before, before + message.length)).toEqual(createHmac('sha256', key).update(message).digest());
      }),
      { numRuns: 2_000 },
    );
    for (let length = 0; length <= 200; length++) {
      const message = Buffer.alloc(length, length);
      expect(words(new HmacSha256(Buffer.from('k')), message)).toEqual(createHmac('sha256', 'k').update(message).digest());
    }
  });
});

const keyArbitrary = fc.string({ minLength: 32, maxLength: 80 });
const id = fc.oneof(fc.string({ maxLength: 20 }), fc.stringMatching(/^[a-z0-9_-]{1,20}$/));
const facts = fc.record({
  customerId: id,
  subscriptionId: id,
  planId: id,
  periodStart: fc.oneof(fc.maxSafeInteger(), fc.integer({ min: -1e12, max: 2e12 })),
  endpointId: id,
  weight: fc.oneof(fc.integer({ min: -5, max: 1_000 }), fc.maxSafeInteger()),
});

/** The signature as it was made before the hand-written HMAC: createHmac over the JSON array, cut to 16 bytes. */
const referenceSignature = (key: string, usageId: string, signed: UsageFacts) =>
  createHmac('sha256', key)
    .update(JSON.stringify([usageId, signed.customerId, signed.subscriptionId, signed.planId, signed.periodStart, signed.endpointId, signed.weight]))
    .digest()
    .toString('base64url', 0, 16);

const metadataOf = (signed: UsageFacts) => ({
  customer_id: signed.customerId,
  subscription_id: signed.subscriptionId,
  plan_id: signed.planId,
  period_start: signed.periodStart,
  endpoint_id: signed.endpointId,
  weight: signed.weight,
});

describe('UsageIdentity signatures', () => {
  it('signs as createHmac did, and verifies with every key of a rotation, from objects and from bytes', () => {
    fc.assert(
      fc.property(keyArbitrary, keyArbitrary, facts, fc.nat(21), (oldKey, newKey, signed, altered) => {
        const before = new UsageIdentity([oldKey]);
        const metadata: Record<string, string | number> = metadataOf(signed);
        before.stamp(metadata, signedFactsTail(signed));
        expect(metadata.usage_sig).toBe(referenceSignature(oldKey, metadata.usage_id as string, signed));

        const rotated = new UsageIdentity([newKey, oldKey]);
        expect(rotated.verify(metadata)).toEqual({ valid: true, usageId: metadata.usage_id, facts: signed });
        expect(new UsageIdentity([newKey]).verify(metadata)).toEqual(oldKey === newKey ? expect.anything() : { valid: false, reason: 'bad_signature' });

        // The same facts as bytes: accepted exactly when every id is printable ASCII without '"' or '\'.
        const parts = [metadata.usage_id as string, signed.customerId, signed.subscriptionId, signed.planId, signed.endpointId, metadata.usage_sig as string];
        const bytes = Buffer.from(`xx${parts.join('|')}`);
        const spans = new Int32Array(10);
        let at = 2;
        parts.slice(0, 5).forEach((part, i) => {
          spans[2 * i] = at;
          at += Buffer.byteLength(part);
          spans[2 * i + 1] = at++;
        });
        const plain = parts.slice(0, 5).every((part) => /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(part));
        const bytesFacts = { spans, periodStart: signed.periodStart, weight: signed.weight, signatureAt: at };
        expect(rotated.verifiesBytes(bytes, bytesFacts)).toBe(plain);
        expect(new UsageIdentity([newKey]).verifiesBytes(bytes, bytesFacts)).toBe(plain && oldKey === newKey);
        // Any other signature is refused from bytes (verify() then judges the spelling).
        bytes[at + altered]! ^= 1;
        expect(rotated.verifiesBytes(bytes, bytesFacts)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
