import type { Catalog } from '../catalog/catalog.js';
import type { Clock } from '../kernel/clock.js';
import type { Logger } from '../kernel/logger.js';
import type { Queryable } from '../store/db.js';
import { businessMetrics, type BusinessMetrics } from './business-metrics.js';

/** The gauges' window: the trailing 30 days, so their rates read alike whatever the day of the month. */
export const gaugeWindowMs = 30 * 86_400_000;

/**
 * Business metrics for the Prometheus gauges: computed from the database when a scrape needs them, then served for
 * `maxAgeMs` (they move slowly), so every gauge of a scrape, and every scrape meanwhile, shares one computation.
 * A failed computation keeps the last values rather than failing the scrape.
 */
export function cachedBusinessMetrics(
  deps: { db: Queryable; catalog: () => Catalog; clock: Clock; logger: Logger },
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
        const value = await businessMetrics(deps.db, deps.catalog(), { from: now - gaugeWindowMs, to: now }, now);
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
