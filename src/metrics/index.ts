/**
 * Operational Prometheus metrics. Other modules import only this file (.dependency-cruiser.cjs).
 */
export {
  createMetrics,
  keepMetricsOfRunningParts,
  registerAccessLogStreamGauges,
  registerBuildInfo,
  registerEventOutboxGauges,
  registerIdentityCacheGauges,
  registerLeadershipGauges,
  registerSpoolGauges,
  registerStripeOutboxGauge,
  registerSubscriptionGauge,
  startSeries,
} from './metrics.js';
export type { Metrics } from './metrics.js';
export type { TallyIncrement } from './tallies.js';
