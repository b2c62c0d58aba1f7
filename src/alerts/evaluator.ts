/**
 * Alert evaluation: for each active subscription whose plan has alerts, reads its running billing period's facts
 * (metered units from the usage rollups, the draft invoice's running total, the wallet's ledger balance) and records
 * the thresholds crossed, each once per period, queueing their deliveries (and their events) in the same transaction.
 */
import { type AlertThreshold, alertTypes, type Catalog, planThresholds, thresholdJson } from '../catalog/index.js';
import { type Clock, formatMajor, type Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { type BillingPeriod, periodContaining } from '../rating/index.js';
import { eventsOff, type EventOutbox } from '../events/index.js';
import { newId } from '../identity/index.js';
import { type AlertRecords, alertRaisedEvent, type Crossing, type SubscriptionPeriod, type UsageAlert } from './records.js';

export interface AlertEvaluatorDeps {
  records: AlertRecords;
  catalog: () => Catalog;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** Where fired alerts are queued for the event stream; off unless given. */
  events?: EventOutbox;
}

interface WatchedSubscription {
  id: string;
  customerId: string;
  planId: string;
  period: BillingPeriod;
  thresholds: AlertThreshold[];
}

/** What the thresholds are checked against, for one batch of subscriptions in their running periods. */
interface PeriodFacts {
  unitsBySubscription: Map<string, bigint>;
  draftBySubscription: Map<string, { id: string; total: bigint; currency: string }>;
  /** Ledger balance by `customer currency`; a customer without a wallet in the currency has 0. */
  balanceByWallet: Map<string, bigint>;
}

/** Subscriptions per batch: three reads and one write. */
const batchSize = 1_000;

export class AlertEvaluator {
  constructor(private readonly deps: AlertEvaluatorDeps) {}

  /** Records the thresholds crossed and not fired yet this period; returns the alerts fired now. */
  async evaluate(): Promise<UsageAlert[]> {
    const { records, clock, metrics, logger } = this.deps;
    const catalog = this.deps.catalog();
    const thresholdsByPlan = new Map(
      [...catalog.plans.values()].filter((plan) => plan.alerts).map((plan) => [plan.id, planThresholds(plan)]),
    );
    if (thresholdsByPlan.size === 0) return [];
    const now = clock.now();
    const subscriptions = await records.watchedSubscriptions([...thresholdsByPlan.keys()]);
    const fired: UsageAlert[] = [];
    for (let i = 0; i < subscriptions.length; i += batchSize) {
      const watched = subscriptions.slice(i, i + batchSize).map((subscription) => ({
        id: subscription.id,
        customerId: subscription.customerId,
        planId: subscription.planId,
        period: periodContaining(subscription.periodAnchor.getTime(), now),
        thresholds: thresholdsByPlan.get(subscription.planId)!,
      }));
      const facts = await this.facts(watched);
      const crossings = watched.flatMap((subscription) => crossingsOf(subscription, facts));
      if (crossings.length === 0) continue;
      fired.push(
        ...(await records.transaction(async (inTransaction, tx) => {
          const alerts = await inTransaction.insertAlerts(crossings.map((crossing) => ({ ...crossing, id: newId('alrt', 12), firedAt: now })));
          await inTransaction.queueDeliveries(alerts.map((alert) => alert.id));
          await (this.deps.events ?? eventsOff).record(tx, alerts.map(alertRaisedEvent));
          return alerts;
        })),
      );
    }
    for (const alert of fired) {
      metrics.alertsFired.inc({ type: alert.type });
      logger.info({ alertId: alert.id, customerId: alert.customerId, subscriptionId: alert.subscriptionId, type: alert.type }, 'usage alert fired');
    }
    return fired;
  }

  /** Reads only the facts some threshold of the batch needs. */
  private async facts(watched: WatchedSubscription[]): Promise<PeriodFacts> {
    const needing = (kind: AlertThreshold['kind']) => watched.filter((subscription) => subscription.thresholds.some((threshold) => threshold.kind === kind));
    const [unitsBySubscription, draftBySubscription, balanceByWallet] = await Promise.all([
      this.periodUnits(needing('quota_percent')),
      this.draftInvoices(needing('spend_above')),
      this.walletBalances(needing('wallet_below')),
    ]);
    return { unitsBySubscription, draftBySubscription, balanceByWallet };
  }

  private async periodUnits(watched: WatchedSubscription[]): Promise<PeriodFacts['unitsBySubscription']> {
    const rows = await this.deps.records.periodUnits(watched.map(periodOf));
    return new Map(rows.map((row) => [row.subscriptionId, row.units]));
  }

  private async draftInvoices(watched: WatchedSubscription[]): Promise<PeriodFacts['draftBySubscription']> {
    const rows = await this.deps.records.periodInvoices(watched.map(periodOf));
    return new Map(rows.map((row) => [row.subscriptionId, { id: row.id, total: row.total, currency: row.currency }]));
  }

  private async walletBalances(watched: WatchedSubscription[]): Promise<PeriodFacts['balanceByWallet']> {
    const rows = await this.deps.records.walletBalances([...new Set(watched.map((s) => s.customerId))]);
    return new Map(rows.map((row) => [walletKey(row.customerId, row.currency), row.balance]));
  }
}

const periodOf = (subscription: WatchedSubscription): SubscriptionPeriod => ({
  customerId: subscription.customerId,
  subscriptionId: subscription.id,
  periodStart: new Date(subscription.period.start),
});

const walletKey = (customerId: string, currency: string) => `${customerId} ${currency}`;

function crossingsOf(subscription: WatchedSubscription, facts: PeriodFacts): Crossing[] {
  return subscription.thresholds.flatMap((threshold) => {
    const observed = observedCrossing(subscription, threshold, facts);
    if (!observed) return [];
    return [
      {
        customerId: subscription.customerId,
        subscriptionId: subscription.id,
        planId: subscription.planId,
        period: subscription.period,
        type: alertTypes[threshold.kind],
        threshold: thresholdJson(threshold),
        observed,
      },
    ];
  });
}

/** The value that crosses the threshold, as the event reports it; undefined while it is not crossed. */
function observedCrossing(subscription: WatchedSubscription, threshold: AlertThreshold, facts: PeriodFacts): Record<string, string | number> | undefined {
  switch (threshold.kind) {
    case 'quota_percent': {
      const used = facts.unitsBySubscription.get(subscription.id) ?? 0n;
      if (used * 100n < BigInt(threshold.percent) * BigInt(threshold.quotaUnits)) return undefined;
      // Two decimals, rounded down: 79.996 % is not reported as 80.
      const percent = Number((used * 10_000n) / BigInt(threshold.quotaUnits)) / 100;
      return { used_units: Number(used), quota_units: threshold.quotaUnits, percent };
    }
    case 'wallet_below': {
      const balance = facts.balanceByWallet.get(walletKey(subscription.customerId, threshold.currency)) ?? 0n;
      if (balance >= threshold.amount) return undefined;
      return { balance: formatMajor(balance, threshold.currency), currency: threshold.currency };
    }
    case 'spend_above': {
      const draft = facts.draftBySubscription.get(subscription.id);
      // A draft in another currency (after a plan change across currencies) is not comparable.
      if (!draft || draft.currency !== threshold.currency || draft.total <= threshold.amount) return undefined;
      return { spend: formatMajor(draft.total, threshold.currency), currency: threshold.currency, invoice: draft.id };
    }
  }
}
