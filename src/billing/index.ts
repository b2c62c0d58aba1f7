/**
 * Invoices, wallets, per-call prices, subscription charges, the rating loop and revenue reports. Other modules import
 * only this file (.dependency-cruiser.cjs).
 */
export { formatMicros } from './call-price.js';
export { loadSubscriptionHistoriesStartedBefore, loadSubscriptionHistory } from './histories.js';
export { getInvoice, listInvoices } from './invoices.js';
export { BillingQueries } from './queries.js';
export type { InvoiceRow, StoredInvoice, StoredInvoiceDetail } from './invoices.js';
export { planAt } from './period-invoice.js';
export type { InvoiceLine, SubscriptionHistory } from './period-invoice.js';
export { RatingLoop } from './rating-loop.js';
export { monthlyRecurringFee, mrrReport, revenueReport } from './reports.js';
export type { RevenueGroup } from './reports.js';
export { SubscriptionCharges } from './subscription-charges.js';
export { RollupUsageSource } from './usage-source.js';
export { prepaidWalletLimit } from './wallet-counters.js';
export { WalletService } from './wallet.js';
export type { WalletEntry, WalletSummary } from './wallet.js';
export { catalogPricing, previewPlanChange } from './period-invoice.js';
export type { PlanChangePreview } from './period-invoice.js';
