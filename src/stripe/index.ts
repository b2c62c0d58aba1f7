/**
 * Stripe: customers, invoices, meter events, top-ups, webhooks, dunning, reconciliation, the outbox. Other modules
 * import only this file (.dependency-cruiser.cjs).
 */
export { startStripeIntegration } from './integration.js';
export type { StripeIntegration } from './integration.js';
export { stripeWorkKinds } from './outbox.js';
export { decideAfterFailure, parseRetryAfter } from './retry.js';
export type { RetryPolicy } from './retry.js';
export type { StripeTopUps } from './topups.js';
