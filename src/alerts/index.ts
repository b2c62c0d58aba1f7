/**
 * Usage alerts: evaluation against the catalog's thresholds, signed webhook deliveries, their records and the passes
 * of their loops. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { alertDeliveryLockId, alertEvaluationLockId, createUsageAlerts } from './alerts.js';
export type { UsageAlerts } from './alerts.js';
export { deliveryStatuses } from './deliveries.js';
export type { DeliveryPassSummary } from './delivery-worker.js';
export type { UsageAlert } from './records.js';
