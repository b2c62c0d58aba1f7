import { Gauge } from 'prom-client';
import type { Catalog } from '../catalog/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { BusinessRecords } from './records.js';
import { businessMetrics, type BusinessMetrics } from './business-metrics.js';

/** The gauges' window: the trailing 30 days, so their rates read alike whatever the day of the month. */
export const gaugeWindowMs = 30 * 86_400_000;

/**
 * Business metrics for the Prometheus gauges: computed from the database when a scrape needs them, then served for
 * `maxAgeMs` (they move slowly), so every gauge of a scrape, and every scrape meanwhile, shares one computation.
 * A failed computation keeps the last values rather than failing the scrape.
 */
export function cachedBusinessMetrics(
  deps: { records: BusinessRecords; catalog: () => Catalog; clock: Clock; logger: Logger },
  maxAgeMs: number,
): () => Promise<BusinessMetrics | undefined> {
  let last: { value: BusinessMetrics; computedAt: number } | undefined;
  let computing: Promise<BusinessMetrics | undefined> | undefined;
  return () => {
    // Cache age is a schedule, not business time: performance.now, not the clock.
    if (last && performance.now() - last.computedAt < maxAgeMs) return Promise.resolve(last.value);
    computing ??= (async () => {
      const now = deps.clock.now();
      try {
        const value = await businessMetrics(deps.records, deps.catalog(), { from: now - gaugeWindowMs, to: now }, now);
        last = { value, computedAt: performance.now() };
        return value;
      } catch (error) {
        deps.logger.warn({ err: (error as Error).message }, 'business metrics not computed; the gauges keep their last values');
        return last?.value;
      } finally {
        computing = undefined;
      }
    })();
    return computing;
  };
}

/**
 * Business metrics (docs/OPERATIONS.md, "Business metrics") over the trailing window the source computes, read at scrape time
 * from its cache. Labels: currency and plan only. A rate with nothing to divide by is NaN.
 */
export function registerBusinessGauges(metrics: Metrics, latest: () => Promise<BusinessMetrics | undefined>): void {
  const businessGauge = <L extends string>(name: string, help: string, labelNames: readonly L[], show: (gauge: Gauge<L>, current: BusinessMetrics) => void) =>
    new Gauge<L>({
      name,
      help,
      labelNames,
      registers: [metrics.businessRegistry],
      async collect() {
        const current = await latest();
        if (current) show(this, current);
      },
    });
  const rate = (value: number | null) => value ?? Number.NaN;
  businessGauge('tollgate_business_mrr_minor_units', 'Monthly recurring revenue of the active subscriptions, minor units, by currency and plan.', ['currency', 'plan'], (gauge, current) => {
    gauge.reset();
    for (const { currency, byPlan } of current.mrr) for (const plan of byPlan) gauge.set({ currency, plan: plan.planId }, Number(plan.mrr));
  });
  businessGauge('tollgate_business_paying_customers', 'Customers with an active subscription on a paid plan.', [], (gauge, current) => gauge.set(current.payingCustomers));
  businessGauge('tollgate_business_churn_ratio', 'Customers paying at the window start who no longer pay at its end, over those paying at its start.', [], (gauge, current) =>
    gauge.set(rate(current.churn.rate)),
  );
  businessGauge('tollgate_business_free_to_paid_ratio', 'Customers who started on a free plan and have since been on a paid one, over those who started free.', [], (gauge, current) =>
    gauge.set(rate(current.freeToPaid.rate)),
  );
  businessGauge('tollgate_business_activation_ratio', 'Customers created in the window who made a first allowed call, over those created.', [], (gauge, current) =>
    gauge.set(rate(current.activation.rate)),
  );
  businessGauge('tollgate_business_time_to_first_call_median_seconds', 'Median time from creation to first allowed call of the customers activated in the window.', [], (gauge, current) =>
    gauge.set(rate(current.activation.timeToFirstCall.medianSeconds)),
  );
  businessGauge('tollgate_business_time_to_first_call_p90_seconds', '90th percentile time from creation to first allowed call of the customers activated in the window.', [], (gauge, current) =>
    gauge.set(rate(current.activation.timeToFirstCall.p90Seconds)),
  );
  businessGauge('tollgate_business_net_revenue_retention_ratio', 'MRR now of the customers paying a recurring fee at the window start, over their MRR then, by currency.', ['currency'], (gauge, current) => {
    gauge.reset();
    for (const { currency, rate: retention } of current.netRevenueRetention) gauge.set({ currency }, rate(retention));
  });
  businessGauge('tollgate_business_metrics_computed_timestamp_seconds', 'When the business metrics were last computed; stops advancing while the computation fails.', [], (gauge, current) =>
    gauge.set(current.end / 1000),
  );
}
