import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { UsageSource } from '../../src/billing/index.js';
import { usageKey } from '../../src/billing/usage-source.js';
import { december, november } from './billing-fixtures.js';

export interface UsageRollup {
  customerId: string;
  subscriptionId: string;
  periodStart: number;
  endpointId: string;
  billableCalls: number;
  billableUnits: number;
  /** Captured amounts of the endpoint's billable calls, by name. */
  captured?: Record<string, string>;
}

/** A fresh, empty store per test; `add` writes usage as metering leaves it. */
export interface UsageSourceSubject {
  source: UsageSource;
  add(rollup: UsageRollup): Promise<void>;
  close(): Promise<void>;
}

/** One contract for every UsageSource: billable usage per subscription period and endpoint, captured amounts exactly. */
export function usageSourceContract(name: string, open: () => Promise<UsageSourceSubject>): void {
  describe(`UsageSource: ${name}`, () => {
    let subject: UsageSourceSubject;
    beforeEach(async () => {
      subject = await open();
    });
    afterEach(() => subject.close());

    const rollup = (subscriptionId: string, periodStart: number, endpointId: string, billableCalls: number, more: Partial<UsageRollup> = {}): UsageRollup => ({
      customerId: 'cus_a',
      subscriptionId,
      periodStart,
      endpointId,
      billableCalls,
      billableUnits: billableCalls * 3,
      ...more,
    });

    it('answers billable calls and units per queried period and endpoint, leaving out the rest', async () => {
      await subject.add(rollup('sub_a', november.start, 'list-pets', 5));
      await subject.add(rollup('sub_a', november.start, 'get-pet', 2));
      await subject.add(rollup('sub_a', november.start, '', 7)); // outside the catalog: no price
      await subject.add(rollup('sub_a', november.start, 'add-pet', 0)); // nothing billable
      await subject.add(rollup('sub_a', december.start, 'get-pet', 1));
      await subject.add(rollup('sub_b', november.start, 'get-pet', 4, { customerId: 'cus_b' }));
      const usage = await subject.source.usage([
        { customerId: 'cus_a', subscriptionId: 'sub_a', periodStart: november.start },
        { customerId: 'cus_a', subscriptionId: 'sub_b', periodStart: november.start }, // another customer's subscription
        { customerId: 'cus_a', subscriptionId: 'sub_c', periodStart: november.start },
      ]);
      expect([...usage.keys()]).toEqual([usageKey('sub_a', november.start)]);
      expect(usage.get(usageKey('sub_a', november.start))).toEqual({
        endpoints: [
          { endpointId: 'get-pet', calls: 2n, units: 6n },
          { endpointId: 'list-pets', calls: 5n, units: 15n },
        ],
      });
      expect(await subject.source.usage([])).toEqual(new Map());
    });

    it('adds up captured amounts over every endpoint, exactly', async () => {
      await subject.add(rollup('sub_a', november.start, 'get-pet', 2, { captured: { tokens: '0.1', cost: '1.25' } }));
      await subject.add(rollup('sub_a', november.start, 'list-pets', 1, { captured: { tokens: '0.2' } }));
      await subject.add(rollup('sub_a', december.start, 'get-pet', 0, { captured: { tokens: '99' } }));
      const usage = await subject.source.usage([
        { customerId: 'cus_a', subscriptionId: 'sub_a', periodStart: november.start },
        { customerId: 'cus_a', subscriptionId: 'sub_a', periodStart: december.start },
      ]);
      expect(usage.get(usageKey('sub_a', november.start))?.capturedAmounts).toEqual({ cost: '1.25', tokens: '0.3' });
      // A period with captured amounts and no billable calls still answers them.
      expect(usage.get(usageKey('sub_a', december.start))).toEqual({ endpoints: [], capturedAmounts: { tokens: '99' } });
    });
  });
}
