/**
 * Stripe: customers, invoices, meter events, top-ups, webhooks, dunning, reconciliation, the outbox. Other modules
 * import only this file (.dependency-cruiser.cjs).
 */
export { createStripeIntegration } from './integration.js';
export type { StripeIntegration } from './integration.js';
export { stripeWorkKinds } from './outbox.js';
export type { PassSummary, StripeSync } from './sync.js';
export type { OutboxFilter, OutboxItem, OutboxStatus, StripeOutbox, StripeWorkKind } from './outbox.js';
export { SqlStripeOutbox } from './sql-outbox.js';
export type { CustomerToSync, NewTopUp, StripeRecords, TopUpRecord } from './records.js';
export { SqlStripeRecords } from './sql-records.js';
export { decideAfterFailure, parseRetryAfter } from './retry.js';
export type { RetryPolicy } from './retry.js';
export type { StripeTopUps } from './topups.js';
