import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type { SubscriptionPeriodUsage } from './period-invoice.js';
import { usageKey, type UsageQuery, type UsageSource } from './usage-source.js';

/**
 * The metering rollups (usage_rollups): billable calls and weighted units per endpoint. Calls outside the catalog
 * (endpoint '') have no price. Captured amounts (usage_captured_rollups: numeric facts of billable calls, summed per
 * name) are added up over every endpoint, exactly, as decimal strings; which of them are billed is the plan's to say
 * (see ratePeriodInvoice).
 */
export class RollupUsageSource implements UsageSource {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  within(tx: Queryable): UsageSource {
    return new RollupUsageSource(joinedTransaction(this.db, tx));
  }

  async usage(queries: readonly UsageQuery[]): Promise<Map<string, SubscriptionPeriodUsage>> {
    const usage = new Map<string, { endpoints: { endpointId: string; calls: bigint; units: bigint }[]; capturedAmounts?: Record<string, string> }>();
    if (queries.length === 0) return usage;
    const parameters = [
      queries.map((query) => query.customerId),
      queries.map((query) => query.subscriptionId),
      queries.map((query) => String(query.periodStart)),
    ];
    // Joined on the rollups' whole key prefix, with period starts converted the way metering stores them.
    const rows = await this.db.query<{ subscription_id: string; period_ms: string; endpoint_id: string; calls: string; units: string }>(
      `SELECT q.subscription_id, q.period_ms, r.endpoint_id, r.billable_calls AS calls, r.billable_units AS units
       FROM unnest($1::text[], $2::text[], $3::bigint[]) AS q (customer_id, subscription_id, period_ms)
       JOIN usage_rollups r ON r.customer_id = q.customer_id AND r.subscription_id = q.subscription_id
         AND r.period_start = to_timestamp(q.period_ms / 1000.0)
       WHERE r.endpoint_id <> '' AND r.billable_calls > 0
       ORDER BY q.subscription_id, q.period_ms, r.endpoint_id`,
      parameters,
    );
    for (const row of rows) {
      const key = usageKey(row.subscription_id, Number(row.period_ms));
      let period = usage.get(key);
      if (!period) usage.set(key, (period = { endpoints: [] }));
      period.endpoints.push({ endpointId: row.endpoint_id, calls: BigInt(row.calls), units: BigInt(row.units) });
    }
    const captured = await this.db.query<{ subscription_id: string; period_ms: string; name: string; amount: string }>(
      `SELECT q.subscription_id, q.period_ms, c.name, sum(c.amount)::text AS amount
       FROM unnest($1::text[], $2::text[], $3::bigint[]) AS q (customer_id, subscription_id, period_ms)
       JOIN usage_captured_rollups c ON c.customer_id = q.customer_id AND c.subscription_id = q.subscription_id
         AND c.period_start = to_timestamp(q.period_ms / 1000.0)
       GROUP BY 1, 2, 3
       ORDER BY 1, 2, 3`,
      parameters,
    );
    for (const row of captured) {
      const key = usageKey(row.subscription_id, Number(row.period_ms));
      let period = usage.get(key);
      if (!period) usage.set(key, (period = { endpoints: [] }));
      (period.capturedAmounts ??= {})[row.name] = row.amount;
    }
    return usage;
  }
}
