/**
 * Usage events from access logs: the receiver, the spool, the PostgreSQL sink, usage queries. Other modules import
 * only this file (.dependency-cruiser.cjs).
 */
export { startMetering } from './metering.js';
export type { Metering } from './metering.js';
export { UsageService } from './usage.js';
