/**
 * Operational Prometheus metrics. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { createMetrics, registerAccessLogStreamGauges, registerIdentityCacheGauges, registerSpoolGauges, registerStripeOutboxGauge, registerSubscriptionGauge } from './metrics.js';
export type { Metrics } from './metrics.js';
export type { TallyIncrement } from './tallies.js';
