/**
 * The Check hot path: request decoding, the pure decision, the handler, response encoding, and the signed usage ids
 * the metering path verifies. Other modules import only this file (.dependency-cruiser.cjs).
 */
export { checkMethod } from './check-method.js';
export { createCheckHandler } from './check-service.js';
export { quotaCounterName } from './check-plan.js';
export { extractKey, memoizePeriods } from './decide.js';
export { UsageIdentity } from './usage-identity.js';
