/**
 * Usage events from access logs: the receiver, the spool, the PostgreSQL sink, usage queries. Other modules import
 * only this file (.dependency-cruiser.cjs).
 */
export { usageFlushBackoff } from './meter.js';
export { createMetering } from './metering.js';
export type { Metering } from './metering.js';
export { UsageService } from './usage.js';
export type { EndpointRollup, UsageRecords } from './usage-records.js';
export { SqlUsageRecords } from './sql-usage-records.js';
