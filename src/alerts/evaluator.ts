/**
 * Alert evaluation: for each active subscription whose plan has alerts, reads its running billing period's facts
 * (metered units from the usage rollups, the draft invoice's running total, the wallet's ledger balance) and records
 * the thresholds crossed, each once per period, queueing their deliveries in the same transaction.
 */
import { type AlertThreshold, alertTypes, type Catalog, planThresholds, thresholdJson } from '../catalog/index.js';
import { type Clock, formatMajor, type Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { type BillingPeriod, periodContaining } from '../rating/index.js';
import type { Db } from '../store/index.js';
import { queueDeliveries } from './deliveries.js';
import { recordCrossings, type Crossing, type UsageAlert } from './records.js';

export interface AlertEvaluatorDeps {
  db: Db;
  catalog: () => Catalog;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
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
    const { db, clock, metrics, logger } = this.deps;
    const catalog = this.deps.catalog();
    const thresholdsByPlan = new Map(
      [...catalog.plans.values()].filter((plan) => plan.alerts).map((plan) => [plan.id, planThresholds(plan)]),
    );
    if (thresholdsByPlan.size === 0) return [];
    const now = clock.now();
    const subscriptions = await db.query<{ id: string; customer_id: string; plan_id: string; period_anchor: Date }>(
      `SELECT id, customer_id, plan_id, period_anchor FROM subscriptions WHERE status = 'active' AND plan_id = ANY($1::text[]) ORDER BY id`,
      [[...thresholdsByPlan.keys()]],
    );
    const fired: UsageAlert[] = [];
    for (let i = 0; i < subscriptions.length; i += batchSize) {
      const watched = subscriptions.slice(i, i + batchSize).map((row) => ({
        id: row.id,
        customerId: row.customer_id,
        planId: row.plan_id,
        period: periodContaining(row.period_anchor.getTime(), now),
        thresholds: thresholdsByPlan.get(row.plan_id)!,
      }));
      const facts = await this.facts(watched);
      const crossings = watched.flatMap((subscription) => crossingsOf(subscription, facts));
      if (crossings.length === 0) continue;
      fired.push(
        ...(await db.transaction(async (tx) => {
          const alerts = await recordCrossings(tx, crossings, now);
          await queueDeliveries(tx, alerts.map((alert) => alert.id));
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
    if (watched.length === 0) return new Map();
    const rows = await this.deps.db.query<{ subscription_id: string; units: string }>(
      `SELECT subscription_id, sum(units) AS units FROM usage_rollups
       WHERE (customer_id, subscription_id, period_start) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]))
       GROUP BY subscription_id`,
      [watched.map((s) => s.customerId), watched.map((s) => s.id), watched.map((s) => new Date(s.period.start))],
    );
    return new Map(rows.map((row) => [row.subscription_id, BigInt(row.units)]));
  }

  private async draftInvoices(watched: WatchedSubscription[]): Promise<PeriodFacts['draftBySubscription']> {
    if (watched.length === 0) return new Map();
    const rows = await this.deps.db.query<{ id: string; subscription_id: string; total: string; currency: string }>(
      `SELECT id, subscription_id, total, currency FROM invoices
       WHERE (subscription_id, period_start) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[]))`,
      [watched.map((s) => s.id), watched.map((s) => new Date(s.period.start))],
    );
    return new Map(rows.map((row) => [row.subscription_id, { id: row.id, total: BigInt(row.total), currency: row.currency }]));
  }

  private async walletBalances(watched: WatchedSubscription[]): Promise<PeriodFacts['balanceByWallet']> {
    if (watched.length === 0) return new Map();
    const rows = await this.deps.db.query<{ customer_id: string; currency: string; balance: string }>(
      `SELECT w.customer_id, w.currency, coalesce(sum(e.amount), 0) AS balance
       FROM wallets w LEFT JOIN wallet_entries e ON e.customer_id = w.customer_id AND e.currency = w.currency
       WHERE w.customer_id = ANY($1::text[]) GROUP BY w.customer_id, w.currency`,
      [[...new Set(watched.map((s) => s.customerId))]],
    );
    return new Map(rows.map((row) => [walletKey(row.customer_id, row.currency), BigInt(row.balance)]));
  }
}

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
