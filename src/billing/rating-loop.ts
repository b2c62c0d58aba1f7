/**
 * The rating loop's pass: it settles and re-bases the prepaid wallets, then refreshes every running period's draft
 * invoice, finalizes the periods that ended (all of them, however long it was down) and posts prepaid advance charges
 * and true-ups. The scheduler (src/app.ts) runs it on the leader only, under `ledBy(leadership)`.
 */
import type { Catalog } from '../catalog/index.js';
import type { Clock, Leadership, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { type BillingPeriod, periodContaining } from '../rating/index.js';
import { eventsOff, type EventOutbox } from '../events/index.js';
import { noTracing, spanNames, type SpanScope, type Tracing } from '../tracing/index.js';
import { invoiceFinalizedEvent } from './invoice-events.js';
import { catalogPricing, periodsToRate, ratePeriodInvoice } from './period-invoice.js';
import type { BillableSubscription, InvoiceRecords, RatedPeriod, StoredInvoiceDetail, SubscriptionHistories } from './records.js';
import { usageKey, type UsageSource } from './usage-source.js';
import type { WalletService } from './wallet.js';

export interface RatingLoopOptions {
  /** Usage of a period may still arrive this long after its end (access logs are batched): finalize after it. */
  finalizeAfterMs: number;
}

export interface RatingRun {
  /** Subscription periods rated. */
  rated: number;
  finalized: number;
  wallets: number;
}

/** Subscription periods per batch: one usage query and one write per table. */
const batchSize = 2_000;
/** Canceled subscriptions are looked at this long after their cancellation for a period still to finalize. */
const canceledLookbackMs = 62 * 86_400_000;

export class RatingLoop {
  constructor(
    private readonly deps: {
      invoices: InvoiceRecords;
      histories: SubscriptionHistories;
      catalog: () => Catalog;
      clock: Clock;
      usage: UsageSource;
      wallets: WalletService;
      metrics: Metrics;
      logger: Logger;
      /** Where finalized invoices are queued for the event stream; off unless given. */
      events?: EventOutbox;
      /** A span per pass, and one per batch of periods it rates. */
      tracing?: Pick<Tracing, 'span'>;
    },
    private readonly options: RatingLoopOptions,
  ) {}

  /** Rates a subscription's running period now and returns its draft (the customer's running amount). */
  async refreshCurrent(subscriptionId: string): Promise<StoredInvoiceDetail | undefined> {
    const subscription = await this.deps.histories.history(subscriptionId);
    if (!subscription) return undefined;
    const period = periodContaining(subscription.periodAnchor, this.deps.clock.now());
    await this.rate([{ subscription, period, finalize: false }]);
    return this.deps.invoices.periodInvoice(subscriptionId, period.start);
  }

  /** The replica's leadership for the rating job, counting the passes skipped because another replica leads. */
  ledBy(leadership: Leadership): Leadership {
    return {
      run: async (pass) => {
        const run = await leadership.run(pass);
        if (run === undefined) this.deps.metrics.billingRuns.inc({ result: 'follower' });
        return run;
      },
      onGained: (gained) => leadership.onGained(gained),
    };
  }

  /** One pass, timed, counted and traced; a failure is counted and thrown (the scheduler logs it). Run it under `ledBy(leadership)`. */
  async pass(): Promise<RatingRun> {
    const { metrics, tracing = noTracing } = this.deps;
    const stopTimer = metrics.billingRunDuration.startTimer();
    try {
      const run = await tracing.span(spanNames.ratingPass, {}, async (scope) => {
        const rated = await this.rateAll(scope);
        scope.set({ 'tollgate.leader': true, 'tollgate.rating.rated': rated.rated, 'tollgate.rating.finalized': rated.finalized, 'tollgate.rating.wallets': rated.wallets });
        return rated;
      });
      metrics.billingRuns.inc({ result: 'led' });
      stopTimer();
      return run;
    } catch (error) {
      metrics.billingRuns.inc({ result: 'failed' });
      throw error;
    }
  }

  private async rateAll(scope: SpanScope): Promise<RatingRun> {
    // Settle first, so a period's calls are in its ledger as usage before a true-up closes it.
    const wallets = await this.deps.wallets.syncAll();
    this.deps.metrics.prepaidWallets.reset();
    for (const wallet of wallets) {
      const state = wallet.exhausted ? 'exhausted' : wallet.lowBalance ? 'low' : 'ok';
      this.deps.metrics.prepaidWallets.inc({ currency: wallet.currency, state });
    }
    const now = this.deps.clock.now();
    const due = (await this.deps.histories.billable(now - canceledLookbackMs)).flatMap((subscription) =>
      periodsToRate(subscription, now, subscription.billedThrough).map((period) => ({
        subscription,
        period,
        finalize: now >= period.end + this.options.finalizeAfterMs,
      })),
    );
    let finalized = 0;
    for (let i = 0; i < due.length; i += batchSize) {
      const batch = due.slice(i, i + batchSize);
      finalized += await scope.child(spanNames.ratingBatch, { 'tollgate.rating.periods': batch.length }, () => this.rate(batch));
    }
    return { rated: due.length, finalized, wallets: wallets.length };
  }

  /**
   * Rates subscription periods and saves them in one transaction per batch. Periods that touch a wallet (prepaid, or
   * with ledger entries to true up) post their advance charges and true-ups in it too, taking the wallets' locks in
   * customer order so concurrent writers cannot deadlock with it.
   */
  private async rate(due: readonly { subscription: BillableSubscription; period: BillingPeriod; finalize: boolean }[]): Promise<number> {
    const { invoices, catalog, clock, usage, wallets, metrics, logger } = this.deps;
    const usages = await usage.usage(
      due.map(({ subscription, period }) => ({ customerId: subscription.customerId, subscriptionId: subscription.id, periodStart: period.start })),
    );
    const rated: RatedPeriod[] = due.flatMap(({ subscription, period, finalize }) => {
      const periodUsage = usages.get(usageKey(subscription.id, period.start)) ?? { endpoints: [] };
      try {
        const invoice = ratePeriodInvoice(subscription, period, catalogPricing(catalog(), subscription.productId), periodUsage);
        return invoice ? [{ subscription, period, invoice, usage: periodUsage, finalize }] : [];
      } catch (error) {
        // One subscription the catalog cannot rate (say, a plan change across currencies) must not stop the others.
        logger.error({ subscriptionId: subscription.id, period, err: (error as Error).message }, 'subscription period not rated');
        return [];
      }
    });
    if (rated.length === 0) return 0;
    // Periods that already have ledger entries: a true-up may be due even if postpaid.
    const ledgerPeriods = await wallets.periodsWithEntries([...new Set(rated.map((item) => item.subscription.id))]);
    const withLedger = new Set(ledgerPeriods.map((period) => usageKey(period.subscriptionId, period.periodStart)));
    const walletKeys = new Set(
      rated
        .filter((item) => item.invoice.mode === 'prepaid' || withLedger.has(usageKey(item.subscription.id, item.period.start)))
        .map((item) => usageKey(item.subscription.id, item.period.start)),
    );
    const finalized = await invoices.transaction(async (records, tx) => {
      const touchingWallets = rated
        .filter((item) => walletKeys.has(usageKey(item.subscription.id, item.period.start)))
        .sort((a, b) => (a.subscription.customerId < b.subscription.customerId ? -1 : a.subscription.customerId > b.subscription.customerId ? 1 : 0));
      for (const item of touchingWallets) {
        await wallets.postAdvanceCharges(tx, item.subscription, item.period, item.invoice, { requireFunds: false });
      }
      const saved = await records.saveRatedPeriods(rated, clock.now());
      for (const invoice of saved) {
        if (walletKeys.has(usageKey(invoice.subscriptionId, invoice.periodStart))) await wallets.trueUp(tx, invoice);
      }
      await (this.deps.events ?? eventsOff).record(tx, saved.map(invoiceFinalizedEvent));
      return saved;
    });
    for (const invoice of finalized) metrics.invoicesFinalized.inc({ mode: invoice.mode });
    return finalized.length;
  }
}
