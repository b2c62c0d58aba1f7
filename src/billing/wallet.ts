/**
 * Prepaid wallets. The ledger (wallet_entries, append-only, minor units) is the truth; the counter store holds a
 * mirror of the spendable balance that the Check charges calls against in its one atomic consume.
 *
 * Every ledger write holds the wallet's row lock and then re-bases the mirror: ledger balance less the spend the
 * Check counted since the last settlement. Settlement moves that spend into the ledger in whole minor units, per
 * subscription period, with the cumulative amount in the reference (so repeating it posts nothing). When a period
 * is finalized, a true-up entry makes its ledger entries add up to the invoice exactly.
 */
import type { Catalog } from '../catalog/index.js';
import { type Clock, conflict, type CurrencyCode, formatMajor, formatMoney, invalid, isCurrencyCode, type Logger, notFound, TollgateError } from '../kernel/index.js';
import { type CounterStore, CounterStoreUnavailable } from '../counters/index.js';
import { type BillingPeriod, periodContaining } from '../rating/index.js';
import type { Queryable } from '../store/index.js';
import { formatMicros, maxWalletMinorUnits, microsFromMinor, wholeMinorUnits } from './call-price.js';
import type { AdvanceCharge, PeriodInvoice } from './period-invoice.js';
import type { NewWalletEntry, WalletEntry, WalletRecords } from './records.js';
import { walletCounterName, walletSpendCounterName } from './wallet-counters.js';

export type WalletMirror = Pick<CounterStore, 'rebaseWallet' | 'walletBalance' | 'periodUsage'>;

export interface WalletSummary {
  customerId: string;
  currency: CurrencyCode;
  /** Ledger balance, minor units. */
  balance: bigint;
  /** What calls can still spend (the mirror, in micro-units): the balance less unsettled spend; undefined if unknown. */
  spendableMicros: number | undefined;
  lowBalanceThreshold: bigint;
  /** At or under the threshold (exhausted included). */
  lowBalance: boolean;
  exhausted: boolean;
}

/** An entry to append: the service stamps its time. */
type NewEntry = Omit<NewWalletEntry, 'occurredAt'>;

/** A subscription period whose spend counter the mirror still subtracts: not finalized yet. */
interface OpenPeriod {
  subscriptionId: string;
  period: BillingPeriod;
  /** Spend already moved to the ledger, minor units (positive). */
  settled: bigint;
}

/** Wallets settled per transaction. */
const syncBatchSize = 500;

/** How far back the open periods of canceled subscriptions are looked for (two monthly periods). */
const canceledLookbackMs = 62 * 86_400_000;

export class WalletService {
  constructor(
    private readonly records: WalletRecords,
    private readonly mirror: WalletMirror,
    private readonly catalog: () => Catalog,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Credits the wallet once per client reference; the same reference again returns the first entry. */
  async topUp(input: { customerId: string; currency: CurrencyCode; amount: bigint; reference: string }): Promise<{ entry: WalletEntry; created: boolean }> {
    if (input.amount <= 0n) throw invalid('amount', 'a top-up must be a positive amount');
    const reference = `top_up:${input.reference}`;
    return this.records.transaction(async (tx) => {
      await this.lock(tx, input.customerId, input.currency);
      const existing = await tx.entryByReference(input.customerId, reference);
      if (existing) {
        if (existing.amount !== input.amount || existing.currency !== input.currency) {
          throw conflict(`reference ${input.reference} was used for a top-up of ${formatMoney(existing.amount, existing.currency)}`, 'reference');
        }
        return { entry: existing, created: false };
      }
      if ((await tx.balance(input.customerId, input.currency)) + input.amount > maxWalletMinorUnits) {
        throw invalid('amount', `a wallet holds at most ${formatMoney(maxWalletMinorUnits, input.currency)}`);
      }
      const description = `Top-up ${input.reference}`;
      await this.post(tx, { customerId: input.customerId, currency: input.currency, kind: 'top_up', amount: input.amount, reference, description });
      await this.rebase(tx, input.customerId, input.currency);
      const entry = await tx.entryByReference(input.customerId, reference);
      return { entry: entry!, created: true };
    });
  }

  async summaries(customerId: string): Promise<WalletSummary[]> {
    await this.requireCustomer(this.records, customerId);
    const wallets = await this.records.balances(customerId);
    return Promise.all(
      wallets.map(async ({ currency, balance, lowBalanceThreshold }) => {
        const spendableMicros = await this.mirror.walletBalance(customerId, walletCounterName(currency)).catch((error: unknown) => {
          if (error instanceof CounterStoreUnavailable) return undefined;
          throw error;
        });
        return summary(customerId, currency, balance, lowBalanceThreshold, spendableMicros);
      }),
    );
  }

  async ledger(customerId: string, options: { currency?: CurrencyCode | undefined; limit: number; after?: string | undefined }): Promise<WalletEntry[]> {
    await this.requireCustomer(this.records, customerId);
    return this.records.entries(customerId, options);
  }

  async setLowBalanceThreshold(customerId: string, currency: CurrencyCode, threshold: bigint): Promise<WalletSummary> {
    if (threshold < 0n) throw invalid('lowBalanceThreshold', 'the threshold cannot be negative');
    if (threshold > maxWalletMinorUnits) throw invalid('lowBalanceThreshold', `a wallet holds at most ${formatMoney(maxWalletMinorUnits, currency)}`);
    await this.records.transaction(async (tx) => {
      await this.lock(tx, customerId, currency);
      await tx.setLowBalanceThreshold(customerId, currency, threshold);
    });
    return (await this.summaries(customerId)).find((wallet) => wallet.currency === currency)!;
  }

  /**
   * Posts the advance charges of a subscription period that a prepaid plan makes the wallet pay, once each. With
   * `requireFunds` (a purchase or an upgrade), new debits beyond the spendable balance fail with insufficient_funds.
   */
  async postAdvanceCharges(
    transaction: Queryable,
    subscription: { id: string; customerId: string },
    period: BillingPeriod,
    invoice: PeriodInvoice,
    options: { requireFunds: boolean },
  ): Promise<void> {
    const charges = invoice.advanceCharges.filter((charge) => this.catalog().plan(charge.planId)?.pricing?.mode === 'prepaid');
    if (charges.length === 0) return;
    const { customerId } = subscription;
    const tx = this.records.within(transaction);
    await this.lock(tx, customerId, invoice.currency);
    const posted = await tx.postedReferences(customerId, charges.map((charge) => charge.reference));
    const due = charges.filter((charge) => !posted.has(charge.reference));
    if (due.length === 0) return;
    const debit = due.reduce((sum, charge) => sum + charge.amount, 0n);
    if (options.requireFunds && debit > 0n) await this.requireFunds(tx, customerId, invoice.currency, debit, due);
    for (const charge of due) {
      await this.post(tx, {
        customerId,
        currency: invoice.currency,
        kind: charge.kind,
        amount: -charge.amount,
        reference: charge.reference,
        description: `${chargeNames[charge.kind]}, plan ${charge.planId}`,
        subscriptionId: subscription.id,
        periodStart: period.start,
      });
    }
    await this.rebase(tx, customerId, invoice.currency);
  }

  /**
   * At finalization: makes the period's ledger entries add up to minus the invoice total for a prepaid invoice, or to
   * nothing for a postpaid one (e.g. after a change to a postpaid plan), so ledger and invoice agree to the cent.
   */
  async trueUp(transaction: Queryable, invoice: { id: string; customerId: string; subscriptionId: string; periodStart: number; currency: CurrencyCode; mode: 'postpaid' | 'prepaid'; total: bigint }): Promise<void> {
    const tx = this.records.within(transaction);
    const charged = () => tx.periodTotal(invoice.subscriptionId, invoice.periodStart, invoice.currency);
    const target = invoice.mode === 'prepaid' ? -invoice.total : 0n;
    if ((await charged()) === target) return;
    await this.lock(tx, invoice.customerId, invoice.currency);
    const difference = target - (await charged());
    if (difference === 0n) return;
    await this.post(tx, {
      customerId: invoice.customerId,
      currency: invoice.currency,
      kind: 'true_up',
      amount: difference,
      reference: `true_up:${invoice.subscriptionId}:${invoice.periodStart}`,
      description: `True-up to invoice ${invoice.id} (${formatMoney(invoice.total, invoice.currency)})`,
      subscriptionId: invoice.subscriptionId,
      periodStart: invoice.periodStart,
    });
    await this.rebase(tx, invoice.customerId, invoice.currency);
  }

  /** The periods of these subscriptions that have ledger entries (a true-up may be due even if postpaid), read in `transaction`. */
  periodsWithEntries(transaction: Queryable, subscriptionIds: readonly string[]): Promise<{ subscriptionId: string; periodStart: number }[]> {
    return this.records.within(transaction).periodsWithEntries(subscriptionIds);
  }

  /**
   * Settles and re-bases every wallet, a batch per transaction (locks taken in wallet order); stops, keeping the
   * ledger as it is, if the counter store is unreachable.
   */
  async syncAll(): Promise<WalletSummary[]> {
    const wallets = await this.records.wallets();
    const summaries: WalletSummary[] = [];
    for (let i = 0; i < wallets.length; i += syncBatchSize) {
      try {
        const batch = await this.records.transaction(async (tx) => {
          const synced: WalletSummary[] = [];
          for (const wallet of wallets.slice(i, i + syncBatchSize)) synced.push(await this.sync(tx, wallet.customerId, wallet.currency));
          return synced;
        });
        summaries.push(...batch);
      } catch (error) {
        if (error instanceof CounterStoreUnavailable) {
          this.logger.warn({ err: error.message }, 'wallet settlement skipped: counter store unavailable');
          break;
        }
        // One bad wallet (e.g. a balance past the counters' exact range) must not stop rating for everyone.
        this.logger.error({ err: error instanceof Error ? error.message : String(error), fromWallet: i }, 'wallet settlement batch failed; continuing');
      }
    }
    return summaries;
  }

  /** Moves the spend counted by the Check into the ledger and re-bases the mirror on it. */
  private async sync(tx: WalletRecords, customerId: string, currency: CurrencyCode): Promise<WalletSummary> {
    const threshold = await this.lock(tx, customerId, currency);
    const open = await this.openPeriods(tx, customerId, currency);
    for (const period of open) {
      const spent = await this.mirror.periodUsage(customerId, walletSpendCounterName(period.subscriptionId), period.period.start);
      const due = wholeMinorUnits(spent);
      if (due <= period.settled) continue;
      await this.post(tx, {
        customerId,
        currency,
        kind: 'usage',
        amount: -(due - period.settled),
        reference: `usage:${period.subscriptionId}:${period.period.start}:${due}`,
        description: `Calls charged in real time, ${formatMoney(due, currency)} so far this period`,
        subscriptionId: period.subscriptionId,
        periodStart: period.period.start,
      });
      period.settled = due;
    }
    const balance = await tx.balance(customerId, currency);
    const spendable = await this.mirror.rebaseWallet(customerId, rebaseOf(currency, balance, open));
    return summary(customerId, currency, balance, threshold, spendable);
  }

  /** Locks the wallet's row (creating the wallet) for a transaction that writes its ledger; returns its threshold. */
  private async lock(tx: WalletRecords, customerId: string, currency: CurrencyCode): Promise<bigint> {
    let threshold = await tx.lockWallet(customerId, currency);
    if (threshold === undefined) {
      if (!isCurrencyCode(currency)) throw invalid('currency', `unknown currency ${currency}`);
      await this.requireCustomer(tx, customerId);
      await tx.createWallet(customerId, currency);
      threshold = await tx.lockWallet(customerId, currency);
    }
    return threshold!;
  }

  private async requireCustomer(records: WalletRecords, customerId: string): Promise<void> {
    if (!(await records.customerExists(customerId))) throw notFound('customer', customerId);
  }

  private post(tx: WalletRecords, entry: NewEntry): Promise<void> {
    return tx.post({ ...entry, occurredAt: this.clock.now() });
  }

  /**
   * Sets the mirror from the ledger (in a transaction holding the wallet lock, so no other ledger write interleaves).
   * Returns the spendable micro-units; undefined if the counter store is unreachable: the next sync repairs it.
   */
  private async rebase(tx: WalletRecords, customerId: string, currency: CurrencyCode): Promise<number | undefined> {
    const open = await this.openPeriods(tx, customerId, currency);
    const balance = await tx.balance(customerId, currency);
    try {
      return await this.mirror.rebaseWallet(customerId, rebaseOf(currency, balance, open));
    } catch (error) {
      if (!(error instanceof CounterStoreUnavailable)) throw error;
      this.logger.warn({ err: error.message }, 'wallet mirror not updated: counter store unavailable');
      return undefined;
    }
  }

  private async requireFunds(tx: WalletRecords, customerId: string, currency: CurrencyCode, debit: bigint, due: AdvanceCharge[]): Promise<void> {
    const spendable = (await this.rebase(tx, customerId, currency)) ?? microsFromMinor(await tx.balance(customerId, currency));
    if (spendable >= microsFromMinor(debit)) return;
    const items = due.map((charge) => `${chargeNames[charge.kind].toLowerCase()} ${formatMajor(charge.amount, currency)}`).join(' + ');
    throw new TollgateError(
      'insufficient_funds',
      `the wallet has ${formatMicros(Math.max(0, spendable), currency)} ${currency}, short of the ${formatMoney(debit, currency)} due now (${items}); top it up first`,
      'wallet',
    );
  }

  /** The periods of the customer's subscriptions in this currency that are not finalized: current and previous. */
  private async openPeriods(tx: WalletRecords, customerId: string, currency: CurrencyCode): Promise<OpenPeriod[]> {
    const now = this.clock.now();
    const subscriptions = (await tx.settlingSubscriptions(customerId, now - canceledLookbackMs)).filter(
      (subscription) => this.catalog().plan(subscription.planId)?.pricing?.currency === currency,
    );
    if (subscriptions.length === 0) return [];
    const candidates = subscriptions.flatMap((subscription) => {
      const current = periodContaining(subscription.periodAnchor, now);
      return [periodContaining(subscription.periodAnchor, current.start - 1), current].map((period) => ({ subscriptionId: subscription.id, period }));
    });
    const since = Math.min(...candidates.map((candidate) => candidate.period.start));
    const finalized = new Set((await tx.finalizedPeriods(customerId, since)).map((row) => `${row.subscriptionId}@${row.periodStart}`));
    const settled = new Map((await tx.settledUsage(customerId, currency, since)).map((row) => [`${row.subscriptionId}@${row.periodStart}`, row.amount]));
    return candidates
      .filter((candidate) => !finalized.has(`${candidate.subscriptionId}@${candidate.period.start}`))
      .map((candidate) => ({ ...candidate, settled: settled.get(`${candidate.subscriptionId}@${candidate.period.start}`) ?? 0n }));
  }
}

const chargeNames: Record<AdvanceCharge['kind'], string> = {
  setup_fee: 'Setup fee',
  recurring_fee: 'Recurring fee',
  plan_change: 'Plan change',
  cancellation: 'Cancellation credit',
};

function rebaseOf(currency: CurrencyCode, balance: bigint, open: OpenPeriod[]) {
  return {
    name: walletCounterName(currency),
    ledgerBalance: microsFromMinor(balance),
    unsettled: open.map((period) => ({
      spentName: walletSpendCounterName(period.subscriptionId),
      periodStart: period.period.start,
      settled: microsFromMinor(period.settled),
    })),
  };
}

function summary(customerId: string, currency: CurrencyCode, balance: bigint, threshold: bigint, spendableMicros: number | undefined): WalletSummary {
  const spendable = spendableMicros ?? microsFromMinor(balance);
  return {
    customerId,
    currency,
    balance,
    spendableMicros,
    lowBalanceThreshold: threshold,
    lowBalance: spendable <= microsFromMinor(threshold),
    exhausted: spendable <= 0,
  };
}
