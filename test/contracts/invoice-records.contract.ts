import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { InvoiceRecords } from '../../src/billing/index.js';
import type { AccountRecords } from '../../src/identity/index.js';
import { at, customerWithSubscription, december, feeLine, november, rated, shareLine } from './billing-fixtures.js';

/** A fresh, empty store per test; `accounts` writes the customers and subscriptions invoices belong to. */
export interface InvoiceRecordsSubject {
  records: InvoiceRecords;
  accounts: AccountRecords;
  close(): Promise<void>;
}

/** One contract for every InvoiceRecords: drafts, finalization, reads and the revenue figures. */
export function invoiceRecordsContract(name: string, open: () => Promise<InvoiceRecordsSubject>): void {
  describe(`InvoiceRecords: ${name}`, () => {
    let subject: InvoiceRecordsSubject;
    let records: InvoiceRecords;
    beforeEach(async () => {
      subject = await open();
      records = subject.records;
    });
    afterEach(() => subject.close());

    it('saves a draft and reads it back by id, by period and in the customer list', async () => {
      const subscription = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
      const lines = [feeLine('pro', 1_000n), { ...feeLine('pro', 250n), kind: 'usage' as const, billed: 'in_arrears' as const, endpoint_id: 'get-pet' }];
      expect(await records.saveRatedPeriods([rated(subscription, november, { lines, revenueShare: [shareLine('pro', 'acme', 125n)] })], at('2026-11-10T00:00:00Z'))).toEqual([]);
      const [listed] = await records.invoices('cus_a', { limit: 10 });
      expect(listed).toMatchObject({
        customerId: 'cus_a',
        subscriptionId: 'sub_a',
        productId: 'petstore',
        planId: 'pro',
        periodStart: november.start,
        periodEnd: november.end,
        currency: 'USD',
        mode: 'postpaid',
        status: 'draft',
        total: 1_250n,
        revenueShare: 125n,
        calls: 10n,
        units: 20n,
        ratedAt: at('2026-11-10T00:00:00Z'),
        finalizedAt: null,
      });
      const detail = await records.invoice(listed!.id);
      expect(detail).toEqual({ ...listed, lines: [...lines, shareLine('pro', 'acme', 125n)], usage: [{ endpointId: 'get-pet', calls: 10n, units: 20n }] });
      expect(await records.periodInvoice('sub_a', november.start)).toEqual(detail);
      expect(await records.periodInvoice('sub_a', december.start)).toBeUndefined();
      expect(await records.invoice('inv_missing')).toBeUndefined();
      expect(await records.invoices('cus_missing', { limit: 10 })).toEqual([]);
    });

    it('rewrites a draft only when its content changed', async () => {
      const subscription = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
      await records.saveRatedPeriods([rated(subscription, november)], at('2026-11-10T00:00:00Z'));
      await records.saveRatedPeriods([rated(subscription, november)], at('2026-11-11T00:00:00Z'));
      expect(await records.periodInvoice('sub_a', november.start)).toMatchObject({ ratedAt: at('2026-11-10T00:00:00Z'), total: 1_000n });
      await records.saveRatedPeriods([rated(subscription, november, { lines: [feeLine('pro', 1_500n)], calls: 12n })], at('2026-11-12T00:00:00Z'));
      const changed = await records.periodInvoice('sub_a', november.start);
      expect(changed).toMatchObject({ ratedAt: at('2026-11-12T00:00:00Z'), total: 1_500n, calls: 12n });
      expect(changed!.lines).toEqual([feeLine('pro', 1_500n)]);
    });

    it('finalizes ended periods once and never touches a finalized invoice again', async () => {
      const first = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
      const second = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_b', { productId: 'weather' });
      const finalized = await records.saveRatedPeriods(
        [rated(first, november, { finalize: true }), rated(second, november), rated(first, december)],
        at('2026-12-01T00:10:00Z'),
      );
      expect(finalized).toEqual([
        expect.objectContaining({ customerId: 'cus_a', subscriptionId: 'sub_a', periodStart: november.start, currency: 'USD', mode: 'postpaid', total: 1_000n }),
      ]);
      expect(await records.saveRatedPeriods([rated(first, november, { lines: [feeLine('pro', 9_999n)], finalize: true })], at('2026-12-02T00:00:00Z'))).toEqual([]);
      expect(await records.periodInvoice('sub_a', november.start)).toMatchObject({ status: 'finalized', total: 1_000n, finalizedAt: at('2026-12-01T00:10:00Z') });
      expect((await records.invoices('cus_a', { limit: 10, status: 'draft' })).map((i) => [i.subscriptionId, i.periodStart])).toEqual([
        ['sub_a', december.start],
        ['sub_b', november.start],
      ]);
      expect((await records.invoices('cus_a', { limit: 10, status: 'finalized' })).map((i) => i.subscriptionId)).toEqual(['sub_a']);
      expect(await records.invoices('cus_a', { limit: 1 })).toHaveLength(1);
    });

    it('saves in a transaction as a whole, or nothing of it', async () => {
      const subscription = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
      await expect(
        records.transaction(async (tx) => {
          await tx.saveRatedPeriods([rated(subscription, november)], at('2026-11-10T00:00:00Z'));
          expect(await tx.periodInvoice('sub_a', november.start)).toBeDefined();
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await records.periodInvoice('sub_a', november.start)).toBeUndefined();
    });

    it('sums the revenue of the periods starting in a range by product, plan, customer and partner', async () => {
      const a = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
      const b = await customerWithSubscription(subject.accounts, 'cus_b', 'sub_b', { productId: 'weather', planId: 'basic' });
      await records.saveRatedPeriods(
        [
          rated(a, november, { lines: [feeLine('free', 300n), feeLine('pro', 700n)], revenueShare: [shareLine('pro', 'acme', 70n)], finalize: true }),
          rated(b, november, { lines: [feeLine('basic', 500n)], calls: 4n }),
          rated(a, december, { lines: [feeLine('pro', 1_000n)] }),
        ],
        at('2026-12-01T00:10:00Z'),
      );
      const figures = await records.revenueFigures(november.start, november.end);
      expect(figures).toMatchObject({ invoices: 2, drafts: 1 });
      expect(figures.totals).toEqual([{ id: 'all', currency: 'USD', revenue: 1_500n, revenueShare: 70n, calls: 14n, units: 28n }]);
      expect(figures.byProduct.map((g) => [g.id, g.revenue])).toEqual([['petstore', 1_000n], ['weather', 500n]]);
      expect(figures.byCustomer.map((g) => [g.id, g.revenue, g.calls])).toEqual([['cus_a', 1_000n, 10n], ['cus_b', 500n, 4n]]);
      expect(figures.byInvoicePlan.map((g) => [g.id, g.revenue, g.calls])).toEqual([['basic', 500n, 4n], ['pro', 1_000n, 10n]]);
      expect(figures.revenueByLinePlan).toEqual([
        { id: 'basic', currency: 'USD', revenue: 500n, revenueShare: 0n },
        { id: 'free', currency: 'USD', revenue: 300n, revenueShare: 0n },
        { id: 'pro', currency: 'USD', revenue: 700n, revenueShare: 70n },
      ]);
      expect(figures.revenueShareByPartner).toEqual([{ id: 'acme', currency: 'USD', owed: 70n }]);
      expect(await records.revenueFigures(at('2026-10-01T00:00:00Z'), november.start)).toEqual({
        invoices: 0,
        drafts: 0,
        totals: [],
        byProduct: [],
        revenueByLinePlan: [],
        byInvoicePlan: [],
        byCustomer: [],
        revenueShareByPartner: [],
      });
    });
  });
}
