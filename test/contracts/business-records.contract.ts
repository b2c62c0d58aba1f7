import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AccountRecords } from '../../src/identity/index.js';
import type { BusinessRecords } from '../../src/reports/index.js';

/** A fresh, empty store per test; `accounts` writes customers and subscriptions, `firstCall` a customer's first call. */
export interface BusinessRecordsSubject {
  records: BusinessRecords;
  accounts: AccountRecords;
  firstCall(customerId: string, at: number): Promise<void>;
  close(): Promise<void>;
}

const at = (iso: string) => Date.parse(iso);

/** One contract for every BusinessRecords: the histories and new customers the business metrics replay. */
export function businessRecordsContract(name: string, open: () => Promise<BusinessRecordsSubject>): void {
  describe(`BusinessRecords: ${name}`, () => {
    let subject: BusinessRecordsSubject;
    beforeEach(async () => {
      subject = await open();
    });
    afterEach(() => subject.close());

    const customer = (id: string, createdAt: string) => subject.accounts.insertCustomer({ id, name: id, email: null, metadata: {}, createdAt: new Date(createdAt) });

    it('lists the customers created in a window with their first call', async () => {
      await customer('cus_before', '2026-10-31T23:59:59Z');
      await customer('cus_first', '2026-11-01T00:00:00Z');
      await customer('cus_quiet', '2026-11-15T00:00:00Z');
      await customer('cus_after', '2026-12-01T00:00:00Z');
      await subject.firstCall('cus_first', at('2026-11-02T00:00:00Z'));
      const created = await subject.records.customersCreated(at('2026-11-01T00:00:00Z'), at('2026-12-01T00:00:00Z'));
      expect(created.sort((a, b) => a.createdAt - b.createdAt)).toEqual([
        { id: 'cus_first', createdAt: at('2026-11-01T00:00:00Z'), firstCallAt: at('2026-11-02T00:00:00Z') },
        { id: 'cus_quiet', createdAt: at('2026-11-15T00:00:00Z'), firstCallAt: undefined },
      ]);
    });

    it('lists the subscriptions started before an instant with their plan history', async () => {
      await customer('cus_a', '2026-10-01T00:00:00Z');
      const subscription = (id: string, productId: string, startedAt: string) =>
        subject.accounts.insertSubscription({ id, customerId: 'cus_a', productId, planId: 'free', startedAt: new Date(startedAt), periodAnchor: new Date(startedAt) });
      await subscription('sub_1', 'petstore', '2026-11-01T00:00:00Z');
      await subscription('sub_2', 'weather', '2026-11-10T00:00:00Z');
      await subject.accounts.insertSubscriptionChange({ subscriptionId: 'sub_1', kind: 'plan_change', fromPlanId: 'free', toPlanId: 'pro', effectiveAt: new Date('2026-11-05T00:00:00Z') });
      const started = await subject.records.subscriptionsStartedBefore(at('2026-11-10T00:00:00Z'));
      expect(started).toEqual([
        {
          id: 'sub_1',
          customerId: 'cus_a',
          productId: 'petstore',
          planId: 'free',
          startedAt: at('2026-11-01T00:00:00Z'),
          periodAnchor: at('2026-11-01T00:00:00Z'),
          changes: [{ id: expect.any(String), subscriptionId: 'sub_1', kind: 'plan_change', fromPlanId: 'free', toPlanId: 'pro', effectiveAt: at('2026-11-05T00:00:00Z') }],
          billedThrough: undefined,
        },
      ]);
    });
  });
}
