/**
 * Business figures (MRR, churn, activation) and their gauges behind a token. Other modules import only this file
 * (.dependency-cruiser.cjs).
 */
export { cachedBusinessMetrics, registerBusinessGauges } from './business-gauges.js';
export { businessMetrics } from './business-metrics.js';
export type { BusinessMetrics, MetricsWindow } from './business-metrics.js';
