import type { AccountsService, Subscription } from '../identity/index.js';
import { quotaCounterName } from '../check/index.js';
import { loadSubscriptionHistory, planAt } from '../billing/index.js';
import type { Catalog } from '../catalog/index.js';
import { type Clock, invalid, TollgateError } from '../kernel/index.js';
import { type CounterStore, CounterStoreUnavailable } from '../counters/index.js';
import { type BillingPeriod, periodContaining, periodStart } from '../rating/index.js';
import type { Db } from '../store/index.js';

export interface UsageTotals {
  /** Allowed calls (what the quota counts); the byte and unit measures cover these too. */
  calls: number;
  units: number;
  billableCalls: number;
  billableUnits: number;
  deniedCalls: number;
  requestBytes: number;
  responseBytes: number;
}

export interface SubscriptionUsage {
  subscriptionId: string;
  planId: string;
  productId: string;
  status: Subscription['status'];
  period: { start: string; end: string };
  totals: UsageTotals;
  /** endpointId null: calls that matched no catalog endpoint. */
  endpoints: ({ endpointId: string | null } & UsageTotals)[];
  /** The plan's quota against metered units; null for plans without one. */
  quota: { limit: number; used: number; remaining: number } | null;
}

export interface DailyUsage {
  /** UTC, YYYY-MM-DD. */
  day: string;
  /** null: calls that matched no catalog endpoint. */
  endpointId: string | null;
  calls: number;
  units: number;
  deniedCalls: number;
}

export interface CustomerUsage {
  customerId: string;
  subscriptions: SubscriptionUsage[];
}

export interface QuotaReconciliation {
  subscriptionId: string;
  planId: string;
  period: { start: string; end: string };
  /** What the Check counted (the quota counter); null when the plan has no quota, so nothing is counted. */
  counterUnits: number | null;
  meteredUnits: number;
  /** counterUnits − meteredUnits: positive while events are still in flight or were lost before metering. */
  difference: number | null;
}

export interface Reconciliation {
  customerId: string;
  checkedAt: string;
  /** Events received but not yet in the database; they explain a positive difference. */
  pendingEvents: number;
  subscriptions: QuotaReconciliation[];
}

export interface UsageServiceDependencies {
  db: Db;
  accounts: Pick<AccountsService, 'listSubscriptions'>;
  catalog: () => Catalog;
  clock: Clock;
  counters: Pick<CounterStore, 'periodUsage'>;
  pendingEvents: () => number;
}

interface RollupRow {
  subscription_id: string;
  endpoint_id: string;
  calls: string;
  units: string;
  billable_calls: string;
  billable_units: string;
  denied_calls: string;
  request_bytes: string;
  response_bytes: string;
}

/** Usage reports from the rollups, and their reconciliation with the Check's quota counters. */
export class UsageService {
  constructor(private readonly deps: UsageServiceDependencies) {}

  /**
   * Usage per subscription over one of its billing periods: the one that starts in `month` (YYYY-MM, UTC), as an
   * invoice is labelled, or the current one. Lists the subscriptions alive at some point in that period.
   */
  async customerUsage(customerId: string, month?: string): Promise<CustomerUsage> {
    const now = this.deps.clock.now();
    const periodOf = (anchor: number) => (month === undefined ? periodContaining(anchor, now) : periodStartingIn(anchor, month));
    const subscriptions = (await this.deps.accounts.listSubscriptions(customerId))
      .map((subscription) => ({ subscription, period: periodOf(Date.parse(subscription.periodAnchor)) }))
      .filter(({ subscription, period }) => alive(subscription, period));
    const rows = await this.rollups(customerId, subscriptions);
    const planIds = await Promise.all(subscriptions.map(({ subscription, period }) => this.planInForce(subscription, period, now)));
    return {
      customerId,
      subscriptions: subscriptions.map(({ subscription, period }, i) => {
        const endpoints = rows
          .filter((row) => row.subscription_id === subscription.id)
          .map((row) => ({ endpointId: row.endpoint_id || null, ...totalsOf(row) }));
        const totals = sumTotals(endpoints);
        const planId = planIds[i]!;
        const plan = this.deps.catalog().plan(planId);
        return {
          subscriptionId: subscription.id,
          planId,
          productId: subscription.productId,
          status: subscription.status,
          period: isoPeriod(period),
          totals,
          endpoints,
          quota: plan?.quota
            ? { limit: plan.quota.units, used: totals.units, remaining: Math.max(0, plan.quota.units - totals.units) }
            : null,
        };
      }),
    };
  }

  /** Usage per UTC day and endpoint, days `from` through `to` (YYYY-MM-DD); days without calls are left out. */
  async dailyUsage(customerId: string, from: string, to: string): Promise<DailyUsage[]> {
    const rows = await this.deps.db.query<{ day: string; endpoint_id: string; calls: string; units: string; denied_calls: string }>(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, endpoint_id, calls, units, denied_calls FROM usage_daily_rollups
       WHERE customer_id = $1 AND day BETWEEN $2::date AND $3::date ORDER BY day, endpoint_id`,
      [customerId, from, to],
    );
    return rows.map((row) => ({ day: row.day, endpointId: row.endpoint_id || null, calls: Number(row.calls), units: Number(row.units), deniedCalls: Number(row.denied_calls) }));
  }

  /** The plan a period's usage was counted and rated under: the one in force at its end (now, for the current one). */
  private async planInForce(subscription: Subscription, period: { end: number }, now: number): Promise<string> {
    if (period.end > now) return subscription.planId;
    const history = await loadSubscriptionHistory(this.deps.db, subscription.id);
    return history ? planAt(history, period.end - 1) : subscription.planId;
  }

  /** For each active subscription, the Check's quota counter for the current period against the metered units. */
  async reconcile(customerId: string): Promise<Reconciliation> {
    const now = this.deps.clock.now();
    const subscriptions = (await this.deps.accounts.listSubscriptions(customerId))
      .filter((subscription) => subscription.status === 'active')
      .map((subscription) => ({ subscription, period: periodContaining(Date.parse(subscription.periodAnchor), now) }));
    const rows = await this.rollups(customerId, subscriptions);
    const lines: QuotaReconciliation[] = [];
    for (const { subscription, period } of subscriptions) {
      const meteredUnits = sumTotals(rows.filter((row) => row.subscription_id === subscription.id).map(totalsOf)).units;
      const counterUnits = this.deps.catalog().plan(subscription.planId)?.quota
        ? await this.counterUnits(customerId, subscription.id, period.start)
        : null;
      lines.push({
        subscriptionId: subscription.id,
        planId: subscription.planId,
        period: isoPeriod(period),
        counterUnits,
        meteredUnits,
        difference: counterUnits === null ? null : counterUnits - meteredUnits,
      });
    }
    return { customerId, checkedAt: new Date(now).toISOString(), pendingEvents: this.deps.pendingEvents(), subscriptions: lines };
  }

  private async counterUnits(customerId: string, subscriptionId: string, periodStart: number): Promise<number> {
    try {
      return await this.deps.counters.periodUsage(customerId, quotaCounterName(subscriptionId), periodStart);
    } catch (error) {
      if (error instanceof CounterStoreUnavailable) throw new TollgateError('unavailable', 'the quota counters are unreachable; retry shortly');
      throw error;
    }
  }

  private async rollups(customerId: string, windows: { subscription: Subscription; period: BillingPeriod }[]): Promise<RollupRow[]> {
    if (windows.length === 0) return [];
    return this.deps.db.query<RollupRow>(
      `SELECT subscription_id, endpoint_id, calls, units, billable_calls, billable_units, denied_calls, request_bytes, response_bytes
       FROM usage_rollups
       WHERE customer_id = $1
         AND (subscription_id, period_start) IN (SELECT * FROM unnest($2::text[], $3::timestamptz[]))
       ORDER BY subscription_id, endpoint_id`,
      [customerId, windows.map((w) => w.subscription.id), windows.map((w) => new Date(w.period.start).toISOString())],
    );
  }
}

const monthPattern = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** The anchored monthly period starting in a YYYY-MM month: every month holds exactly one period start. */
export function periodStartingIn(anchor: number, month: string): BillingPeriod {
  const match = monthPattern.exec(month);
  if (!match) throw invalid('period', 'period must be a month, YYYY-MM');
  const anchorDate = new Date(anchor);
  const index = (Number(match[1]) - anchorDate.getUTCFullYear()) * 12 + (Number(match[2]) - 1 - anchorDate.getUTCMonth());
  return { start: periodStart(anchor, index), end: periodStart(anchor, index + 1) };
}

const alive = (subscription: Subscription, period: BillingPeriod) =>
  Date.parse(subscription.startedAt) < period.end && (subscription.canceledAt === null || Date.parse(subscription.canceledAt) > period.start);

const isoPeriod = (period: BillingPeriod) => ({ start: new Date(period.start).toISOString(), end: new Date(period.end).toISOString() });

/** int8 arrives as a string; usage sums stay far below 2^53. */
const totalsOf = (row: RollupRow): UsageTotals => ({
  calls: Number(row.calls),
  units: Number(row.units),
  billableCalls: Number(row.billable_calls),
  billableUnits: Number(row.billable_units),
  deniedCalls: Number(row.denied_calls),
  requestBytes: Number(row.request_bytes),
  responseBytes: Number(row.response_bytes),
});

function sumTotals(parts: UsageTotals[]): UsageTotals {
  const sum: UsageTotals = { calls: 0, units: 0, billableCalls: 0, billableUnits: 0, deniedCalls: 0, requestBytes: 0, responseBytes: 0 };
  for (const part of parts) for (const key of Object.keys(sum) as (keyof UsageTotals)[]) sum[key] += part[key];
  return sum;
}
