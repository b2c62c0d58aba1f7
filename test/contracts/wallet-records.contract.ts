import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { InvoiceRecords, NewWalletEntry, WalletRecords } from '../../src/billing/index.js';
import type { AccountRecords } from '../../src/identity/index.js';
import { at, customerWithSubscription, december, november, rated } from './billing-fixtures.js';

/** A fresh, empty store per test; `accounts` and `invoices` write what the wallets refer to. */
export interface WalletRecordsSubject {
  records: WalletRecords;
  accounts: AccountRecords;
  invoices: InvoiceRecords;
  close(): Promise<void>;
}

const entry = (reference: string, amount: bigint, more: Partial<NewWalletEntry> = {}): NewWalletEntry => ({
  customerId: 'cus_a',
  currency: 'USD',
  kind: 'top_up',
  amount,
  reference,
  description: `entry ${reference}`,
  occurredAt: at('2026-11-05T00:00:00Z'),
  ...more,
});

/** One contract for every WalletRecords: wallets, the append-only ledger and the periods settlement looks at. */
export function walletRecordsContract(name: string, open: () => Promise<WalletRecordsSubject>): void {
  describe(`WalletRecords: ${name}`, () => {
    let subject: WalletRecordsSubject;
    let records: WalletRecords;
    beforeEach(async () => {
      subject = await open();
      records = subject.records;
      await customerWithSubscription(subject.accounts, 'cus_a', 'sub_a');
    });
    afterEach(() => subject.close());

    it('creates a wallet once, locks it and keeps its threshold', async () => {
      expect(await records.customerExists('cus_a')).toBe(true);
      expect(await records.customerExists('cus_missing')).toBe(false);
      expect(await records.lockWallet('cus_a', 'USD')).toBeUndefined();
      await records.createWallet('cus_a', 'USD');
      await records.createWallet('cus_a', 'USD');
      await records.createWallet('cus_a', 'EUR');
      expect(await records.transaction((tx) => tx.lockWallet('cus_a', 'USD'))).toBe(0n);
      await records.setLowBalanceThreshold('cus_a', 'USD', 500n);
      expect(await records.lockWallet('cus_a', 'USD')).toBe(500n);
      expect(await records.wallets()).toEqual([
        { customerId: 'cus_a', currency: 'EUR' },
        { customerId: 'cus_a', currency: 'USD' },
      ]);
      expect(await records.balances('cus_a')).toEqual([
        { currency: 'EUR', balance: 0n, lowBalanceThreshold: 0n },
        { currency: 'USD', balance: 0n, lowBalanceThreshold: 500n },
      ]);
    });

    it('posts each reference once and reads the ledger with running balances', async () => {
      await records.createWallet('cus_a', 'USD');
      await records.createWallet('cus_a', 'EUR');
      await records.post(entry('top_up:1', 2_000n));
      await records.post(entry('top_up:1', 9_999n));
      await records.post(entry('top_up:eur', 700n, { currency: 'EUR' }));
      await records.post(entry('setup_fee:sub_a', -500n, { kind: 'setup_fee', subscriptionId: 'sub_a', periodStart: november.start }));
      expect(await records.balance('cus_a', 'USD')).toBe(1_500n);
      expect((await records.balances('cus_a')).map((w) => [w.currency, w.balance])).toEqual([['EUR', 700n], ['USD', 1_500n]]);
      const first = await records.entryByReference('cus_a', 'top_up:1');
      expect(first).toEqual({
        id: expect.any(String),
        customerId: 'cus_a',
        currency: 'USD',
        kind: 'top_up',
        amount: 2_000n,
        reference: 'top_up:1',
        description: 'entry top_up:1',
        subscriptionId: null,
        periodStart: null,
        occurredAt: at('2026-11-05T00:00:00Z'),
        balanceAfter: 2_000n,
      });
      expect(await records.entryByReference('cus_a', 'missing')).toBeUndefined();
      const usd = await records.entries('cus_a', { currency: 'USD', limit: 10 });
      expect(usd.map((e) => [e.reference, e.balanceAfter, e.periodStart])).toEqual([['top_up:1', 2_000n, null], ['setup_fee:sub_a', 1_500n, november.start]]);
      expect((await records.entries('cus_a', { limit: 10 })).map((e) => e.reference)).toEqual(['top_up:1', 'top_up:eur', 'setup_fee:sub_a']);
      expect((await records.entries('cus_a', { limit: 1, after: first!.id })).map((e) => e.reference)).toEqual(['top_up:eur']);
      expect(await records.postedReferences('cus_a', ['top_up:1', 'top_up:2', 'setup_fee:sub_a'])).toEqual(new Set(['top_up:1', 'setup_fee:sub_a']));
    });

    it('sums the entries of subscription periods and the usage settled in them', async () => {
      await records.createWallet('cus_a', 'USD');
      await records.post(entry('top_up:1', 5_000n));
      const ofPeriod = (reference: string, kind: NewWalletEntry['kind'], amount: bigint, periodStart: number) =>
        records.post(entry(reference, amount, { kind, subscriptionId: 'sub_a', periodStart }));
      await ofPeriod('recurring_fee:nov', 'recurring_fee', -1_000n, november.start);
      await ofPeriod('usage:nov:1', 'usage', -120n, november.start);
      await ofPeriod('usage:nov:2', 'usage', -30n, november.start);
      await ofPeriod('usage:dec:1', 'usage', -40n, december.start);
      expect(await records.periodTotal('sub_a', november.start, 'USD')).toBe(-1_150n);
      expect(await records.periodTotal('sub_a', november.start, 'EUR')).toBe(0n);
      expect((await records.settledUsage('cus_a', 'USD', november.start)).sort((a, b) => a.periodStart - b.periodStart)).toEqual([
        { subscriptionId: 'sub_a', periodStart: november.start, amount: 150n },
        { subscriptionId: 'sub_a', periodStart: december.start, amount: 40n },
      ]);
      expect(await records.settledUsage('cus_a', 'USD', december.start)).toEqual([{ subscriptionId: 'sub_a', periodStart: december.start, amount: 40n }]);
      const periods = await records.periodsWithEntries(['sub_a', 'sub_other']);
      expect(periods.sort((a, b) => a.periodStart - b.periodStart)).toEqual([
        { subscriptionId: 'sub_a', periodStart: november.start },
        { subscriptionId: 'sub_a', periodStart: december.start },
      ]);
    });

    it('finds the subscriptions to settle and their finalized periods', async () => {
      const other = await customerWithSubscription(subject.accounts, 'cus_a', 'sub_b', { productId: 'weather' });
      await customerWithSubscription(subject.accounts, 'cus_a', 'sub_c', { productId: 'maps', planId: 'free' });
      await subject.accounts.cancelActiveSubscription('sub_b', new Date('2026-11-20T00:00:00Z'));
      await subject.accounts.cancelActiveSubscription('sub_c', new Date('2026-11-02T00:00:00Z'));
      expect(await records.settlingSubscriptions('cus_a', at('2026-11-10T00:00:00Z'))).toEqual([
        { id: 'sub_a', planId: 'pro', periodAnchor: november.start },
        { id: 'sub_b', planId: 'pro', periodAnchor: november.start },
      ]);
      await subject.invoices.saveRatedPeriods([rated(other, november, { finalize: true })], at('2026-12-01T00:10:00Z'));
      expect(await records.finalizedPeriods('cus_a', november.start)).toEqual([{ subscriptionId: 'sub_b', periodStart: november.start }]);
      expect(await records.finalizedPeriods('cus_a', december.start)).toEqual([]);
    });

    it('writes a transaction whole or not at all, and joins the caller\'s', async () => {
      await records.createWallet('cus_a', 'USD');
      await expect(
        records.transaction(async (tx) => {
          await tx.post(entry('top_up:1', 1_000n));
          expect(await tx.balance('cus_a', 'USD')).toBe(1_000n);
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await records.balance('cus_a', 'USD')).toBe(0n);
      await subject.accounts.transaction(async (_accounts, tx) => {
        await records.within(tx).post(entry('top_up:2', 300n));
      });
      expect(await records.balance('cus_a', 'USD')).toBe(300n);
    });
  });
}
