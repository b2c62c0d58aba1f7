/** Where rating reads usage from: aggregates per subscription period and endpoint, never single events. */
import type { Queryable } from '../store/db.js';
import type { SubscriptionPeriodUsage } from './period-invoice.js';

export interface UsageQuery {
  customerId: string;
  subscriptionId: string;
  periodStart: number;
}

export interface UsageSource {
  /** Billable usage of each queried subscription period, by usageKey; periods without usage are left out. */
  usage(queries: readonly UsageQuery[]): Promise<Map<string, SubscriptionPeriodUsage>>;
}

export const usageKey = (subscriptionId: string, periodStart: number) => `${subscriptionId}@${periodStart}`;

/**
 * The metering rollups (usage_rollups): billable calls and weighted units per endpoint. Calls outside the catalog
 * (endpoint '') have no price. The rollups carry no captured amounts, so none are billed from here.
 */
export class RollupUsageSource implements UsageSource {
  constructor(private readonly db: Queryable) {}

  async usage(queries: readonly UsageQuery[]): Promise<Map<string, SubscriptionPeriodUsage>> {
    const usage = new Map<string, { endpoints: { endpointId: string; calls: bigint; units: bigint }[] }>();
    if (queries.length === 0) return usage;
    // Joined on the rollups' whole key prefix, with period starts converted the way metering stores them.
    const rows = await this.db.query<{ subscription_id: string; period_ms: string; endpoint_id: string; calls: string; units: string }>(
      `SELECT q.subscription_id, q.period_ms, r.endpoint_id, r.billable_calls AS calls, r.billable_units AS units
       FROM unnest($1::text[], $2::text[], $3::bigint[]) AS q (customer_id, subscription_id, period_ms)
       JOIN usage_rollups r ON r.customer_id = q.customer_id AND r.subscription_id = q.subscription_id
         AND r.period_start = to_timestamp(q.period_ms / 1000.0)
       WHERE r.endpoint_id <> '' AND r.billable_calls > 0
       ORDER BY q.subscription_id, q.period_ms, r.endpoint_id`,
      [
        queries.map((query) => query.customerId),
        queries.map((query) => query.subscriptionId),
        queries.map((query) => String(query.periodStart)),
      ],
    );
    for (const row of rows) {
      const key = usageKey(row.subscription_id, Number(row.period_ms));
      let period = usage.get(key);
      if (!period) usage.set(key, (period = { endpoints: [] }));
      period.endpoints.push({ endpointId: row.endpoint_id, calls: BigInt(row.calls), units: BigInt(row.units) });
    }
    return usage;
  }
}
