/**
 * Pure rating: billing periods, prices, quotes. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { nextPeriod, periodContaining, periodContains, periodStart } from './period.js';
export type { BillingPeriod } from './period.js';
export { quote } from './quote.js';
export { ratePeriod, ratePlanChange } from './rate.js';
export type { LineItem, PeriodUsage, Rating } from './rate.js';
export { OTHER_ENDPOINTS, ratePlanSchema } from './schema.js';
export type { RatePlan, UsagePricing } from './schema.js';
