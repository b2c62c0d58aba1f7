import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/store/index.js';
import type { StripeOutbox, StripeRecords } from '../../src/stripe/index.js';

/** Rows of other modules the Stripe records read, written by the factory's own means. */
export interface StripeFixtures {
  customer(id: string, name?: string, email?: string | null): Promise<void>;
  subscription(id: string, customerId: string, planId: string, periodAnchor?: Date): Promise<void>;
  /** An invoice with its lines, finalized when asked (which queues its push). */
  invoice(
    id: string,
    subscriptionId: string,
    options: { lines: { planId: string; kind: string; amount: bigint }[]; finalized?: boolean; periodStart?: Date },
  ): Promise<void>;
  usage(subscriptionId: string, periodStart: Date, endpointId: string, billableUnits: number): Promise<void>;
}

/** A fresh, empty store per test; `close` removes whatever the factory created. */
export interface StripeRecordsSubject {
  records: StripeRecords;
  /** The outbox the records queue work in. */
  outbox: StripeOutbox;
  fixtures: StripeFixtures;
  /** Runs `work` in a transaction of the factory's own, for `within`. */
  inForeignTransaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** One contract for every StripeRecords: what the Stripe rules (customers, top-ups, dunning, webhooks) rely on. */
export function stripeRecordsContract(name: string, open: () => Promise<StripeRecordsSubject>): void {
  describe(`StripeRecords: ${name}`, () => {
    let subject: StripeRecordsSubject;
    let records: StripeRecords;
    let fixtures: StripeFixtures;
    beforeEach(async () => {
      subject = await open();
      ({ records, fixtures } = subject);
    });
    afterEach(() => subject.close());

    const topUp = (id: string, customerId = 'cus_a') => ({ id, customerId, amount: 2_500n, currency: 'USD' as const, successUrl: 'https://shop.example/ok', cancelUrl: null });

    it('reads our customer for Stripe and maps it to one Stripe customer, first mapping wins', async () => {
      await fixtures.customer('cus_a', 'Acme', 'billing@acme.example');
      await fixtures.customer('cus_b', 'Bolt', null);
      expect(await records.customerToSync('cus_a')).toEqual({ id: 'cus_a', name: 'Acme', email: 'billing@acme.example', createdAt: expect.any(Date) });
      expect(await records.customerToSync('cus_missing')).toBeUndefined();
      expect(await records.customerExists('cus_b')).toBe(true);
      expect(await records.customerExists('cus_missing')).toBe(false);

      expect(await records.stripeCustomerId('cus_a')).toBeUndefined();
      await records.rememberStripeCustomer('cus_a', 'cus_stripe_1');
      await records.rememberStripeCustomer('cus_a', 'cus_stripe_2');
      // A Stripe customer is one customer's only.
      await records.rememberStripeCustomer('cus_b', 'cus_stripe_1');
      expect(await records.stripeCustomerId('cus_a')).toBe('cus_stripe_1');
      expect(await records.stripeCustomerId('cus_b')).toBeUndefined();
      expect(await records.customerIdOfStripe('cus_stripe_1')).toBe('cus_a');
      expect(await records.customerIdOfStripe('cus_stripe_2')).toBeUndefined();
    });

    it('keeps a top-up from pending through open to paid, once', async () => {
      await fixtures.customer('cus_a');
      const created = await records.insertTopUp(topUp('top_1'));
      expect(created).toEqual({
        ...topUp('top_1'),
        status: 'pending',
        stripeSessionId: null,
        checkoutUrl: null,
        paidAt: null,
        createdAt: expect.any(Date),
      });
      expect(await records.topUp('top_1')).toEqual(created);
      expect(await records.topUp('top_missing')).toBeUndefined();
      await records.openTopUp('top_1', 'cs_1', 'https://checkout.example/cs_1');
      expect(await records.topUp('top_1')).toMatchObject({ status: 'open', stripeSessionId: 'cs_1', checkoutUrl: 'https://checkout.example/cs_1' });
      // Only a pending top-up is opened.
      await records.openTopUp('top_1', 'cs_2', 'https://checkout.example/cs_2');
      expect(await records.topUp('top_1')).toMatchObject({ stripeSessionId: 'cs_1' });
      await records.markTopUpPaid('top_1', 'cs_1');
      const paid = await records.topUp('top_1');
      expect(paid).toMatchObject({ status: 'paid', paidAt: expect.any(Date) });
      await records.markTopUpPaid('top_1', 'cs_1');
      expect(await records.topUp('top_1')).toEqual(paid);
      // A paid top-up does not expire.
      await records.expireTopUp('top_1');
      expect(await records.topUp('top_1')).toMatchObject({ status: 'paid' });
    });

    it('expires pending and open top-ups', async () => {
      await fixtures.customer('cus_a');
      await records.insertTopUp(topUp('top_1'));
      await records.insertTopUp(topUp('top_2'));
      await records.openTopUp('top_2', 'cs_2', null);
      await records.expireTopUp('top_1');
      await records.expireTopUp('top_2');
      expect((await records.topUp('top_1'))?.status).toBe('expired');
      expect((await records.topUp('top_2'))?.status).toBe('expired');
    });

    it('refuses a second use of a session as a conflict, and a value it cannot store as bad input', async () => {
      await fixtures.customer('cus_a');
      await records.insertTopUp(topUp('top_1'));
      await records.insertTopUp(topUp('top_2'));
      await records.openTopUp('top_1', 'cs_1', null);
      await expect(records.openTopUp('top_2', 'cs_1', null)).rejects.toMatchObject({ code: 'conflict' });
      await expect(records.insertTopUp({ ...topUp('top_3'), successUrl: 'https://\u0000' })).rejects.toMatchObject({ code: 'invalid_request' });
    });

    it('queues work with what it is about, in one transaction or none', async () => {
      await fixtures.customer('cus_a');
      await expect(
        records.transaction(async (tx) => {
          await tx.insertTopUp(topUp('top_1'));
          await tx.enqueue('topup.checkout', 'top_1');
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await records.topUp('top_1')).toBeUndefined();
      expect(await subject.outbox.find('topup.checkout', 'top_1')).toBeUndefined();
      await records.transaction(async (tx) => {
        await tx.insertTopUp(topUp('top_1'));
        await tx.enqueue('topup.checkout', 'top_1');
      });
      expect(await subject.outbox.find('topup.checkout', 'top_1')).toMatchObject({ status: 'pending' });
    });

    it('reads invoices as Stripe collects them: no revenue share, no meter-mode lines', async () => {
      await fixtures.customer('cus_a');
      await fixtures.subscription('sub_a', 'cus_a', 'pro');
      const lines = [
        { planId: 'pro', kind: 'recurring_fee', amount: 1_000n },
        { planId: 'pro', kind: 'revenue_share', amount: 300n },
        { planId: 'metered', kind: 'usage', amount: 70n },
        { planId: 'pro', kind: 'usage', amount: 25n },
      ];
      await fixtures.invoice('in_1', 'sub_a', { lines, finalized: true });
      await fixtures.invoice('in_2', 'sub_a', { lines: [], periodStart: new Date('2026-12-01T00:00:00Z') });
      const invoice = await records.invoiceToCollect('in_1', ['metered']);
      expect(invoice).toMatchObject({ id: 'in_1', customer_id: 'cus_a', subscription_id: 'sub_a', plan_id: 'pro', currency: 'USD', mode: 'postpaid', status: 'finalized', total: '1395', stripe_total: '1025' });
      expect(invoice!.period_start).toEqual(new Date('2026-11-01T00:00:00Z'));
      expect((await records.invoiceToCollect('in_1', []))?.stripe_total).toBe('1095');
      expect(await records.invoiceToCollect('in_missing', [])).toBeUndefined();
      expect(await records.collectedLines('in_1', ['metered'])).toEqual([
        { position: 0, kind: 'recurring_fee', description: 'line 0', amount: 1_000n },
        { position: 3, kind: 'usage', description: 'line 3', amount: 25n },
      ]);
      expect(await subject.outbox.find('invoice.finalized', 'in_1')).toBeDefined();

      expect((await records.finalizedInvoicesToCollect(['metered'])).map((i) => [i.id, i.stripe_total, i.stripe_invoice_id, i.settled_at])).toEqual([['in_1', '1025', null, null]]);
      expect(await records.stripeInvoiceIdOf('in_1')).toBeUndefined();
      await records.recordStripeInvoice({ stripeInvoiceId: 'in_stripe_1', invoiceId: 'in_1', customerId: 'cus_a', status: 'draft', rounding: 0n });
      await records.recordStripeInvoice({ stripeInvoiceId: 'in_stripe_1', invoiceId: 'in_1', customerId: 'cus_a', status: 'open', rounding: -5n });
      expect(await records.stripeInvoiceIdOf('in_1')).toBe('in_stripe_1');
      await records.recordSettlement({ stripeInvoiceId: 'in_stripe_1', customerId: 'cus_a', invoiceId: undefined, status: 'paid' }, new Date('2026-12-03T00:00:00Z'));
      // A settled invoice keeps the status it settled with.
      await records.recordStripeInvoice({ stripeInvoiceId: 'in_stripe_1', invoiceId: 'in_1', customerId: 'cus_a', status: 'open', rounding: -5n });
      expect((await records.finalizedInvoicesToCollect(['metered'])).map((i) => [i.id, i.stripe_invoice_id, i.settled_at])).toEqual([['in_1', 'in_stripe_1', new Date('2026-12-03T00:00:00Z')]]);

      await fixtures.customer('cus_b');
      await records.rememberStripeCustomer('cus_b', 'cus_stripe_b');
      expect(await records.customersWithStripeIds()).toEqual([
        { customerId: 'cus_a', stripeCustomerId: null },
        { customerId: 'cus_b', stripeCustomerId: 'cus_stripe_b' },
      ]);
    });

    it('keeps the dunning state of Stripe invoices: first failure, grace end, suspension, settlement', async () => {
      await fixtures.customer('cus_a');
      const facts = { stripeInvoiceId: 'in_stripe_1', customerId: 'cus_a', invoiceId: undefined, status: 'open' };
      const day = 86_400_000;
      const failed = new Date('2026-11-10T00:00:00Z');
      expect(await records.recordPaymentFailure(facts, failed, 3 * day)).toEqual({ suspendAt: new Date(failed.getTime() + 3 * day), settledAt: null });
      // A later failure keeps the first one's grace period.
      expect(await records.recordPaymentFailure(facts, new Date('2026-11-11T00:00:00Z'), 3 * day)).toEqual({ suspendAt: new Date(failed.getTime() + 3 * day), settledAt: null });
      expect(await records.customerOfStripeInvoice('in_stripe_1')).toBe('cus_a');
      expect(await records.customerOfStripeInvoice('in_missing')).toBeUndefined();

      const before = new Date('2026-11-12T00:00:00Z');
      const after = new Date('2026-11-14T00:00:00Z');
      expect(await records.overdueInvoices(before, 10)).toEqual([]);
      expect(await records.hasOverdueInvoice('cus_a', before)).toBe(false);
      expect(await records.suspendIfOverdue('in_stripe_1', before)).toBeUndefined();
      expect(await records.overdueInvoices(after, 10)).toEqual(['in_stripe_1']);
      expect(await records.hasOverdueInvoice('cus_a', after)).toBe(true);
      expect(await records.suspendIfOverdue('in_stripe_1', after)).toEqual({ customerId: 'cus_a', paymentFailedAt: failed });
      expect(await records.suspendIfOverdue('in_stripe_1', after)).toBeUndefined();
      expect(await records.overdueInvoices(after, 10)).toEqual([]);
      // Suspended by it: overdue whatever the time.
      expect(await records.hasOverdueInvoice('cus_a', before)).toBe(true);

      await records.recordSettlement({ ...facts, status: 'paid' }, new Date('2026-11-15T00:00:00Z'));
      expect(await records.hasOverdueInvoice('cus_a', after)).toBe(false);
      expect(await records.recordPaymentFailure(facts, new Date('2026-11-16T00:00:00Z'), day)).toEqual({ suspendAt: expect.any(Date), settledAt: new Date('2026-11-15T00:00:00Z') });
      expect(await records.markSuspendedBy('in_stripe_1', after)).toBe(false);
    });

    it('settles a current subscription’s invoice and suspends at once for an unpaid one', async () => {
      await fixtures.customer('cus_a');
      const facts = { stripeInvoiceId: 'in_stripe_2', customerId: 'cus_a', invoiceId: undefined, status: 'open' };
      await records.recordPaymentFailure(facts, new Date('2026-11-10T00:00:00Z'), 86_400_000 * 30);
      const now = new Date('2026-11-11T00:00:00Z');
      expect(await records.hasOverdueInvoice('cus_a', now)).toBe(false);
      expect(await records.markSuspendedBy('in_stripe_2', now)).toBe(true);
      expect(await records.hasOverdueInvoice('cus_a', now)).toBe(true);
      await records.settleAsPaid('in_stripe_2', 'cus_other', now);
      expect(await records.hasOverdueInvoice('cus_a', now)).toBe(true);
      await records.settleAsPaid('in_stripe_2', 'cus_a', now);
      expect(await records.hasOverdueInvoice('cus_a', now)).toBe(false);
      await records.transaction(async (tx) => {
        await tx.lockCustomer('cus_a');
        await tx.lockCustomer('cus_missing');
      });
    });

    it('pins meter-mode usage reports, marks them sent or failed, and totals them per customer', async () => {
      await fixtures.customer('cus_a');
      await fixtures.subscription('sub_a', 'cus_a', 'metered', new Date('2026-10-15T00:00:00Z'));
      await fixtures.customer('cus_b');
      await fixtures.subscription('sub_b', 'cus_b', 'pro');
      const november = new Date('2026-11-15T00:00:00Z');
      await fixtures.usage('sub_a', november, 'ep_1', 40);
      await fixtures.usage('sub_a', november, 'ep_2', 2);
      await fixtures.usage('sub_a', new Date('2026-08-15T00:00:00Z'), 'ep_1', 9);
      await fixtures.usage('sub_b', november, 'ep_1', 5);
      const since = new Date('2026-10-01T00:00:00Z');
      expect(await records.grownUsagePeriods(['metered'], since)).toEqual([{ subscriptionId: 'sub_a', periodStart: november }]);
      expect(await records.subscriptionToReport('sub_a')).toEqual({ customerId: 'cus_a', planId: 'metered', periodAnchor: new Date('2026-10-15T00:00:00Z') });
      expect(await records.subscriptionToReport('sub_missing')).toBeUndefined();

      expect(await records.pinUsageReport('sub_a', november, 1_800_000_000)).toEqual({ reported: 0n, sending: 42n, timestamp: 1_800_000_000 });
      // In flight: the same report, its timestamp kept; nothing grows while it is.
      await fixtures.usage('sub_a', november, 'ep_3', 8);
      expect(await records.pinUsageReport('sub_a', november, 1_800_000_999)).toEqual({ reported: 0n, sending: 42n, timestamp: 1_800_000_000 });
      expect(await records.grownUsagePeriods(['metered'], since)).toEqual([]);
      await records.markUsageReported('sub_a', november, 41n);
      expect(await records.pinUsageReport('sub_a', november, 1_800_000_999)).toMatchObject({ sending: 42n });
      await records.markUsageReported('sub_a', november, 42n);
      expect(await records.grownUsagePeriods(['metered'], since)).toEqual([{ subscriptionId: 'sub_a', periodStart: november }]);
      expect(await records.pinUsageReport('sub_a', november, 1_800_001_000)).toEqual({ reported: 42n, sending: 50n, timestamp: 1_800_001_000 });
      await records.markUsageReported('sub_a', november, 50n);
      expect(await records.pinUsageReport('sub_a', november, 1_800_002_000)).toBeUndefined();

      expect(await records.reportedUsageByCustomer(['metered'])).toEqual([]);
      await records.rememberStripeCustomer('cus_a', 'cus_stripe_a');
      expect(await records.reportedUsageByCustomer(['metered'])).toEqual([{ customerId: 'cus_a', stripeCustomerId: 'cus_stripe_a', reported: 50n, first: november }]);

      expect(await records.failedUsageReports()).toEqual([]);
      await records.markUsageReportFailed('sub_a', november, new Date('2026-11-20T00:00:00Z'), 'no_meter: gone');
      expect(await records.failedUsageReports()).toEqual([{ subscriptionId: 'sub_a', periodStart: november, failure: 'no_meter: gone' }]);
    });

    it('records a webhook event once', async () => {
      expect(await records.webhookEventSeen('evt_1')).toBe(false);
      expect(await records.recordWebhookEvent('evt_1', 'invoice.paid', new Date('2026-11-01T00:00:00Z'))).toBe(true);
      expect(await records.recordWebhookEvent('evt_1', 'invoice.paid', new Date('2026-11-01T00:00:00Z'))).toBe(false);
      expect(await records.webhookEventSeen('evt_1')).toBe(true);
    });

    it('writes in a transaction of its caller’s', async () => {
      await fixtures.customer('cus_a');
      await records.insertTopUp(topUp('top_1'));
      await expect(
        subject.inForeignTransaction(async (tx) => {
          await records.within(tx).expireTopUp('top_1');
          expect((await records.within(tx).topUp('top_1'))?.status).toBe('expired');
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect((await records.topUp('top_1'))?.status).toBe('pending');
      await subject.inForeignTransaction((tx) => records.within(tx).expireTopUp('top_1'));
      expect((await records.topUp('top_1'))?.status).toBe('expired');
    });
  });
}
