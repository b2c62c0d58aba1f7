/**
 * The rating loop: on one replica at a time (a PostgreSQL advisory lock; PGlite always leads), it settles and
 * re-bases the prepaid wallets, then refreshes every running period's draft invoice, finalizes the periods that
 * ended (all of them, however long it was down) and posts prepaid advance charges and true-ups.
 */
import type { Catalog } from '../catalog/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { type BillingPeriod, periodContaining } from '../rating/index.js';
import type { Db } from '../store/index.js';
import { noTracing, spanNames, type SpanScope, type Tracing } from '../tracing/index.js';
import { loadBillableSubscriptions, loadSubscriptionHistory, type BillableSubscription } from './histories.js';
import { findInvoice, saveRatedPeriods, type RatedPeriod, type StoredInvoiceDetail } from './invoices.js';
import { catalogPricing, periodsToRate, ratePeriodInvoice } from './period-invoice.js';
import { usageKey, type UsageSource } from './usage-source.js';
import type { WalletService } from './wallet.js';

export interface RatingLoopOptions {
  /** Time between passes; 0 runs passes only when asked (tests, the CLI's `billing run`). */
  intervalMs: number;
  /** Usage of a period may still arrive this long after its end (access logs are batched): finalize after it. */
  finalizeAfterMs: number;
}

export interface RatingRun {
  /** Subscription periods rated. */
  rated: number;
  finalized: number;
  wallets: number;
}

/** "billing" in ASCII: the advisory lock the leader holds during a pass. */
const ratingLockId = 0x62696c6c;
/** Subscription periods per batch: one usage query and one write per table. */
const batchSize = 2_000;

export class RatingLoop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<RatingRun | undefined> | undefined;

  constructor(
    private readonly deps: {
      db: Db;
      catalog: () => Catalog;
      clock: Clock;
      usage: UsageSource;
      wallets: WalletService;
      metrics: Metrics;
      logger: Logger;
      /** A span per pass, and one per batch of periods it rates. */
      tracing?: Pick<Tracing, 'span'>;
    },
    private readonly options: RatingLoopOptions,
  ) {}

  /** Runs a pass at once (catching up on the periods that ended while the service was down), then every interval. */
  start(): void {
    if (this.options.intervalMs <= 0) return;
    const pass = () => void this.runOnce().catch(() => {});
    pass();
    this.timer = setInterval(pass, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => {});
  }

  /** One pass if this replica leads (undefined if another does); concurrent calls share it. */
  runOnce(): Promise<RatingRun | undefined> {
    this.running ??= this.lead().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Rates a subscription's running period now and returns its draft (the customer's running amount). */
  async refreshCurrent(subscriptionId: string): Promise<StoredInvoiceDetail | undefined> {
    const subscription = await loadSubscriptionHistory(this.deps.db, subscriptionId);
    if (!subscription) return undefined;
    const period = periodContaining(subscription.periodAnchor, this.deps.clock.now());
    await this.rate([{ subscription, period, finalize: false }]);
    return findInvoice(this.deps.db, subscriptionId, period.start);
  }

  private async lead(): Promise<RatingRun | undefined> {
    const { db, metrics, logger, tracing = noTracing } = this.deps;
    const stopTimer = metrics.billingRunDuration.startTimer();
    try {
      const run = await tracing.span(spanNames.ratingPass, {}, async (scope) => {
        const led = await db.withAdvisoryLock(ratingLockId, () => this.pass(scope));
        scope.set(led ? { 'tollgate.leader': true, 'tollgate.rating.rated': led.rated, 'tollgate.rating.finalized': led.finalized, 'tollgate.rating.wallets': led.wallets } : { 'tollgate.leader': false });
        return led;
      });
      metrics.billingRuns.inc({ result: run ? 'led' : 'follower' });
      if (run) stopTimer();
      return run;
    } catch (error) {
      metrics.billingRuns.inc({ result: 'failed' });
      logger.error({ err: error instanceof Error ? error.stack : String(error) }, 'rating pass failed');
      throw error;
    }
  }

  private async pass(scope: SpanScope): Promise<RatingRun> {
    // Settle first, so a period's calls are in its ledger as usage before a true-up closes it.
    const wallets = await this.deps.wallets.syncAll();
    this.deps.metrics.prepaidWallets.reset();
    for (const wallet of wallets) {
      const state = wallet.exhausted ? 'exhausted' : wallet.lowBalance ? 'low' : 'ok';
      this.deps.metrics.prepaidWallets.inc({ currency: wallet.currency, state });
    }
    const now = this.deps.clock.now();
    const due = (await loadBillableSubscriptions(this.deps.db, now)).flatMap((subscription) =>
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
    const { db, catalog, clock, usage, wallets, metrics, logger } = this.deps;
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
    const withLedger = await periodsWithLedgerEntries(db, rated);
    const walletKeys = new Set(
      rated
        .filter((item) => item.invoice.mode === 'prepaid' || withLedger.has(usageKey(item.subscription.id, item.period.start)))
        .map((item) => usageKey(item.subscription.id, item.period.start)),
    );
    const finalized = await db.transaction(async (tx) => {
      const touchingWallets = rated
        .filter((item) => walletKeys.has(usageKey(item.subscription.id, item.period.start)))
        .sort((a, b) => (a.subscription.customerId < b.subscription.customerId ? -1 : a.subscription.customerId > b.subscription.customerId ? 1 : 0));
      for (const item of touchingWallets) {
        await wallets.postAdvanceCharges(tx, item.subscription, item.period, item.invoice, { requireFunds: false });
      }
      const invoices = await saveRatedPeriods(tx, rated, clock.now());
      for (const invoice of invoices) {
        if (walletKeys.has(usageKey(invoice.subscriptionId, invoice.periodStart))) await wallets.trueUp(tx, invoice);
      }
      return invoices;
    });
    for (const invoice of finalized) metrics.invoicesFinalized.inc({ mode: invoice.mode });
    return finalized.length;
  }
}

/** The subscription periods among `rated` that already have wallet entries (a true-up may be due even if postpaid). */
async function periodsWithLedgerEntries(db: Db, rated: readonly RatedPeriod[]): Promise<Set<string>> {
  if (rated.length === 0) return new Set();
  const rows = await db.query<{ subscription_id: string; period_start: Date }>(
    `SELECT DISTINCT subscription_id, period_start FROM wallet_entries WHERE subscription_id = ANY($1::text[])`,
    [[...new Set(rated.map((item) => item.subscription.id))]],
  );
  return new Set(rows.map((row) => usageKey(row.subscription_id, row.period_start.getTime())));
}
