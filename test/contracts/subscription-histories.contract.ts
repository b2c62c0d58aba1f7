import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { InvoiceRecords, SubscriptionHistories } from '../../src/billing/index.js';
import type { AccountRecords } from '../../src/identity/index.js';
import { at, customerWithSubscription, november, rated } from './billing-fixtures.js';

/** A fresh, empty store per test; `accounts` and `invoices` write what the histories read. */
export interface SubscriptionHistoriesSubject {
  histories: SubscriptionHistories;
  accounts: AccountRecords;
  invoices: InvoiceRecords;
  close(): Promise<void>;
}

/** One contract for every SubscriptionHistories: plan histories, how far they are billed, who is still billable. */
export function subscriptionHistoriesContract(name: string, open: () => Promise<SubscriptionHistoriesSubject>): void {
  describe(`SubscriptionHistories: ${name}`, () => {
    let subject: SubscriptionHistoriesSubject;
    let histories: SubscriptionHistories;
    beforeEach(async () => {
      subject = await open();
      histories = subject.histories;
    });
    afterEach(() => subject.close());

    it('reads a subscription with its changes in effect order and where billing resumes', async () => {
      const subscription = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a', { planId: 'free' });
      expect(await histories.history('sub_a')).toEqual(subscription);
      await subject.accounts.insertSubscriptionChange({ subscriptionId: 'sub_a', kind: 'plan_change', fromPlanId: 'pro', toPlanId: 'enterprise', effectiveAt: new Date('2026-11-20T00:00:00Z') });
      await subject.accounts.insertSubscriptionChange({ subscriptionId: 'sub_a', kind: 'plan_change', fromPlanId: 'free', toPlanId: 'pro', effectiveAt: new Date('2026-11-10T00:00:00Z') });
      await subject.invoices.saveRatedPeriods([rated(subscription, november, { finalize: true })], at('2026-12-01T00:10:00Z'));
      const history = await histories.history('sub_a');
      expect(history).toMatchObject({ id: 'sub_a', customerId: 'cus_a', productId: 'petstore', planId: 'free', billedThrough: november.end });
      expect(history!.changes).toEqual([
        { id: expect.any(String), subscriptionId: 'sub_a', kind: 'plan_change', fromPlanId: 'free', toPlanId: 'pro', effectiveAt: at('2026-11-10T00:00:00Z') },
        { id: expect.any(String), subscriptionId: 'sub_a', kind: 'plan_change', fromPlanId: 'pro', toPlanId: 'enterprise', effectiveAt: at('2026-11-20T00:00:00Z') },
      ]);
      expect(await histories.history('sub_missing')).toBeUndefined();
    });

    it('lists the billable subscriptions: active, and canceled after their last finalized period and the cutoff', async () => {
      const active = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_active');
      const billed = await customerWithSubscription(subject.accounts, 'cus_b', 'sub_billed');
      await customerWithSubscription(subject.accounts, 'cus_c', 'sub_unbilled');
      await customerWithSubscription(subject.accounts, 'cus_d', 'sub_old');
      await subject.invoices.saveRatedPeriods([rated(billed, november, { finalize: true })], at('2026-12-01T00:10:00Z'));
      await subject.accounts.cancelActiveSubscription('sub_billed', new Date('2026-11-20T00:00:00Z')); // before its billed end
      await subject.accounts.cancelActiveSubscription('sub_unbilled', new Date('2026-11-20T00:00:00Z'));
      await subject.accounts.cancelActiveSubscription('sub_old', new Date('2026-11-02T00:00:00Z'));
      expect((await histories.billable(at('2026-11-05T00:00:00Z'))).map((s) => s.id)).toEqual(['sub_active', 'sub_unbilled']);
      expect((await histories.billable(at('2026-11-01T00:00:00Z'))).map((s) => s.id)).toEqual(['sub_active', 'sub_old', 'sub_unbilled']);
      expect((await histories.billable(0)).find((s) => s.id === 'sub_active')).toEqual(active);
      expect(await histories.billableIds(at('2026-11-05T00:00:00Z'))).toEqual(['sub_active', 'sub_unbilled']);
      expect(await histories.billableIds(at('2026-11-01T00:00:00Z'))).toEqual(['sub_active', 'sub_old', 'sub_unbilled']);
      expect(await histories.histories(['sub_unbilled', 'sub_active', 'sub_gone'])).toEqual(
        (await histories.billable(at('2026-11-05T00:00:00Z'))).filter((s) => s.id !== 'sub_gone'),
      );
    });

    it('lists the subscriptions started before an instant, and counts the active ones per plan', async () => {
      await customerWithSubscription(subject.accounts, 'cus_a', 'sub_1', { planId: 'pro', startedAt: '2026-11-01T00:00:00Z' });
      await customerWithSubscription(subject.accounts, 'cus_b', 'sub_2', { planId: 'pro', startedAt: '2026-11-15T00:00:00Z' });
      await customerWithSubscription(subject.accounts, 'cus_c', 'sub_3', { planId: 'free', startedAt: '2026-11-20T00:00:00Z' });
      await customerWithSubscription(subject.accounts, 'cus_c', 'sub_4', { planId: 'basic', productId: 'weather' });
      await subject.accounts.cancelActiveSubscription('sub_4', new Date('2026-11-25T00:00:00Z'));
      expect((await histories.startedBefore(at('2026-11-15T00:00:00Z'))).map((s) => s.id)).toEqual(['sub_1', 'sub_4']);
      expect(await histories.activeByPlan()).toEqual([
        { planId: 'free', subscriptions: 1 },
        { planId: 'pro', subscriptions: 2 },
      ]);
    });

    it('reads inside the caller\'s transaction', async () => {
      await subject.accounts.transaction(async (accounts, tx) => {
        await customerWithSubscription(accounts, 'cus_a', 'sub_a');
        expect(await histories.within(tx).history('sub_a')).toMatchObject({ id: 'sub_a' });
      });
    });
  });
}
