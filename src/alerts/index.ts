/**
 * Usage alerts: evaluation against the catalog's thresholds, signed webhook deliveries, their records and the passes
 * of their loops. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { createUsageAlerts } from './alerts.js';
export type { UsageAlerts } from './alerts.js';
export { deliveryStatuses } from './records.js';
export type { DeliveryPassSummary } from './delivery-worker.js';
export type { AlertRecords, UsageAlert } from './records.js';
export { SqlAlertRecords } from './sql-records.js';
