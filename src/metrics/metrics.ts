import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric Tollgate exports. Labels stay bounded: plan, reason and result come from the catalog and fixed
 * enums; customer ids and keys never become labels.
 */
export function createMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry, prefix: 'tollgate_process_' });
  return {
    registry,
    checkDecisions: new Counter({
      name: 'tollgate_check_decisions_total',
      help: 'Check decisions by result (allow, deny), denial reason and plan.',
      labelNames: ['result', 'reason', 'plan'] as const,
      registers: [registry],
    }),
    checkDuration: new Histogram({
      name: 'tollgate_check_duration_seconds',
      help: 'Time to decide one Check, from request to response.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    }),
    counterStoreDuration: new Histogram({
      name: 'tollgate_counter_store_duration_seconds',
      help: 'Latency of one counter-store consume call.',
      labelNames: ['store'] as const,
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
    counterStoreFailures: new Counter({
      name: 'tollgate_counter_store_failures_total',
      help: 'Counter-store calls that failed, by the failure mode then applied (closed, open, local).',
      labelNames: ['mode'] as const,
      registers: [registry],
    }),
  };
}

/** Gauges read from a live object at scrape time. */
export function registerIdentityCacheGauges(metrics: Metrics, cache: { size: number; synced: boolean }): void {
  new Gauge({
    name: 'tollgate_identity_cache_keys',
    help: 'API keys held in the Check identity cache.',
    registers: [metrics.registry],
    collect() {
      this.set(cache.size);
    },
  });
  new Gauge({
    name: 'tollgate_identity_cache_synced',
    help: '1 while the identity cache polls the database successfully, 0 while it serves stale data.',
    registers: [metrics.registry],
    collect() {
      this.set(cache.synced ? 1 : 0);
    },
  });
}

export type Metrics = ReturnType<typeof createMetrics>;
