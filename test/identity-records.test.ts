import { describe, expect, it } from 'vitest';
import { decodeIdentity, encodeIdentity } from '../src/identity/identity-records.js';
import type { Identity } from '../src/identity/index.js';

const identity: Identity = {
  key: { id: 'key_1', customerId: 'cus_1', subscriptionId: 'sub_1', status: 'active' },
  subscription: { id: 'sub_1', customerId: 'cus_1', productId: 'shop', planId: 'growth', status: 'active', periodAnchor: Date.UTC(2026, 10, 3) },
  customer: { id: 'cus_1', status: 'active', overdue: false },
};

describe('identity records', () => {
  it('decode what they encode', () => {
    expect(decodeIdentity(encodeIdentity(identity))).toEqual(identity);
  });

  // The decoder shares one copy of ids that are equal; ids that differ (a record written mid-move) stay apart.
  it('keep ids that differ apart', () => {
    const moved: Identity = {
      key: { ...identity.key, status: 'revoked' },
      subscription: { ...identity.subscription!, id: 'sub_2', customerId: 'cus_2', planId: 'free', status: 'canceled' },
      customer: { id: 'cus_3', status: 'suspended', overdue: true },
    };
    expect(decodeIdentity(encodeIdentity(moved))).toEqual(moved);
  });

  it('decode a key without subscription or customer', () => {
    const bare: Identity = { key: identity.key, subscription: undefined, customer: undefined };
    expect(decodeIdentity(encodeIdentity(bare))).toEqual(bare);
  });
});
