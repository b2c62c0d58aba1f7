/**
 * The rating loop's pass: it settles and re-bases the prepaid wallets, then refreshes the running periods' draft
 * invoices, finalizes the periods that ended (all of them, however long it was down) and posts prepaid advance charges
 * and true-ups. A process's first pass rates every subscription; later passes only those marked as changed (new
 * usage, a plan change, a cancellation) or due by time (a period starts, one's finalization falls due): see RatingWork.
 * The scheduler (src/app.ts) runs it on one replica at a time, under `ledBy(leadership)`, on the leader only.
 */
import type { Catalog } from '../catalog/index.js';
import type { Clock, Leadership, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { type BillingPeriod, periodContaining } from '../rating/index.js';
import type { Queryable } from '../store/index.js';
import { eventsOff, type EventOutbox } from '../events/index.js';
import { noTracing, spanNames, type SpanScope, type Tracing } from '../tracing/index.js';
import { invoiceFinalizedEvent } from './invoice-events.js';
import { catalogPricing, nextRatingAt, periodsToRate, ratePeriodInvoice } from './period-invoice.js';
import type { BillableSubscription, InvoiceRecords, RatedPeriod, RatingWork, StoredInvoice, StoredInvoiceDetail, SubscriptionHistories } from './records.js';
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

/**
 * Subscriptions per batch: one transaction, one usage query and one write per table. Rating a batch is synchronous
 * work on the main thread between those queries (about 0.1–0.2 ms per subscription on a slow 2-core machine), so a
 * batch is kept small enough that, in a process that also answers Checks (role all), no stall reaches 100 ms.
 */
const batchSize = 500;
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
      /** The subscriptions marked as changed and those due by time: what a pass rates after its first. */
      work: RatingWork;
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

  /** Whether this process has rated every billable subscription once (its first pass does). */
  private ratedEveryone = false;

  /** Rates a subscription's running period now and returns its draft (the customer's running amount). */
  async refreshCurrent(subscriptionId: string): Promise<StoredInvoiceDetail | undefined> {
    const subscription = await this.deps.histories.history(subscriptionId);
    if (!subscription) return undefined;
    const period = periodContaining(subscription.periodAnchor, this.deps.clock.now());
    await this.deps.invoices.transaction((records, tx) => this.ratePeriods(records, tx, [{ subscription, period, finalize: false }]));
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
    const pending = await this.deps.work.pending(now);
    // This process's first pass rates every subscription: the catalog (prices) may have changed while it was down.
    const everyone = this.ratedEveryone ? [] : await this.deps.histories.billableIds(now - canceledLookbackMs);
    const subscriptionIds = [...new Set([...everyone, ...pending.keys()])].sort();
    let rated = 0;
    let finalized = 0;
    for (let i = 0; i < subscriptionIds.length; i += batchSize) {
      const batch = subscriptionIds.slice(i, i + batchSize);
      const run = await scope.child(spanNames.ratingBatch, { 'tollgate.rating.subscriptions': batch.length }, (span) =>
        this.rateSubscriptions(batch, pending, now).then((run) => {
          span.set({ 'tollgate.rating.periods': run.rated });
          return run;
        }),
      );
      rated += run.rated;
      finalized += run.finalized;
    }
    this.ratedEveryone = true;
    return { rated, finalized, wallets: wallets.length };
  }

  /**
   * Rates every period due of these subscriptions in one transaction, read in it: their histories and usage, then
   * the drafts, finalizations and ledger entries, then their marks (the versions in `pending`) are taken and their
   * next due times set. A crash before the commit leaves the marks, so the subscriptions are rated again.
   */
  private async rateSubscriptions(subscriptionIds: readonly string[], pending: ReadonlyMap<string, number | undefined>, now: number): Promise<{ rated: number; finalized: number }> {
    const { finalizeAfterMs } = this.options;
    const run = await this.deps.invoices.transaction(async (records, tx) => {
      const subscriptions = await this.deps.histories.within(tx).histories(subscriptionIds);
      const due = subscriptions.flatMap((subscription) =>
        periodsToRate(subscription, now, subscription.billedThrough).map((period) => ({ subscription, period, finalize: now >= period.end + finalizeAfterMs })),
      );
      const finalized = await this.ratePeriods(records, tx, due);
      const marks = new Map<string, number>();
      for (const id of subscriptionIds) {
        const version = pending.get(id);
        if (version !== undefined) marks.set(id, version);
      }
      const found = new Map(subscriptions.map((subscription) => [subscription.id, subscription]));
      await this.deps.work.within(tx).rated(
        marks,
        subscriptionIds.map((id) => {
          const subscription = found.get(id);
          return { subscriptionId: id, dueAt: subscription && nextRatingAt(subscription, now, finalizeAfterMs, subscription.billedThrough) };
        }),
      );
      return { rated: due.length, finalized };
    });
    // Counted once committed.
    for (const invoice of run.finalized) this.deps.metrics.invoicesFinalized.inc({ mode: invoice.mode });
    return { rated: run.rated, finalized: run.finalized.length };
  }

  /**
   * Rates subscription periods and saves them in the transaction. Periods that touch a wallet (prepaid, or with ledger
   * entries to true up) post their advance charges and true-ups in it too, taking the wallets' locks in customer order
   * so concurrent writers cannot deadlock with it. Returns the invoices it finalized.
   */
  private async ratePeriods(
    records: InvoiceRecords,
    tx: Queryable,
    due: readonly { subscription: BillableSubscription; period: BillingPeriod; finalize: boolean }[],
  ): Promise<StoredInvoice[]> {
    const { catalog, clock, usage, wallets, logger } = this.deps;
    const usages = await usage.within(tx).usage(
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
    if (rated.length === 0) return [];
    // Periods that already have ledger entries: a true-up may be due even if postpaid.
    const ledgerPeriods = await wallets.periodsWithEntries(tx, [...new Set(rated.map((item) => item.subscription.id))]);
    const withLedger = new Set(ledgerPeriods.map((period) => usageKey(period.subscriptionId, period.periodStart)));
    const walletKeys = new Set(
      rated
        .filter((item) => item.invoice.mode === 'prepaid' || withLedger.has(usageKey(item.subscription.id, item.period.start)))
        .map((item) => usageKey(item.subscription.id, item.period.start)),
    );
    const touchingWallets = rated
      .filter((item) => walletKeys.has(usageKey(item.subscription.id, item.period.start)))
      .sort((a, b) => (a.subscription.customerId < b.subscription.customerId ? -1 : a.subscription.customerId > b.subscription.customerId ? 1 : 0));
    for (const item of touchingWallets) {
      await wallets.postAdvanceCharges(tx, item.subscription, item.period, item.invoice, { requireFunds: false });
    }
    const finalized = await records.saveRatedPeriods(rated, clock.now());
    for (const invoice of finalized) {
      if (walletKeys.has(usageKey(invoice.subscriptionId, invoice.periodStart))) await wallets.trueUp(tx, invoice);
    }
    await (this.deps.events ?? eventsOff).record(tx, finalized.map(invoiceFinalizedEvent));
    return finalized;
  }
}
