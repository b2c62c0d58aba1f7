/**
 * Usage alerts: evaluation against the catalog's thresholds, signed webhook deliveries, their records and leader loop.
 * Other modules import only this file (.dependency-cruiser.cjs).
 */
export { startUsageAlerts } from './alerts.js';
export type { UsageAlerts } from './alerts.js';
export { deliveryStatuses } from './deliveries.js';
