/**
 * Invoices, wallets, per-call prices, subscription charges, the rating loop and revenue reports. Other modules import
 * only this file (.dependency-cruiser.cjs).
 */
export { formatMicros, maxWalletMinorUnits } from './call-price.js';
export { BillingQueries } from './queries.js';
export { planAt } from './period-invoice.js';
export type { InvoiceLine, SubscriptionHistory } from './period-invoice.js';
export { RatingLoop } from './rating-loop.js';
export type { RatingRun } from './rating-loop.js';
export type {
  BillableSubscription,
  InvoiceRecords,
  NewWalletEntry,
  PeriodAmount,
  RatedPeriod,
  RatingWork,
  RevenueFigures,
  RevenueGroup,
  StoredInvoice,
  StoredInvoiceDetail,
  SubscriptionHistories,
  WalletEntry,
  WalletRecords,
} from './records.js';
export { monthlyRecurringFee, mrrReport, revenueReport } from './reports.js';
export { SqlInvoiceRecords, type InvoiceRow } from './sql-invoice-records.js';
export { SqlRatingWork } from './sql-rating-work.js';
export { SqlSubscriptionHistories } from './sql-subscription-histories.js';
export { RollupUsageSource } from './sql-usage-source.js';
export { SqlWalletRecords } from './sql-wallet-records.js';
export { SubscriptionCharges } from './subscription-charges.js';
export type { UsageQuery, UsageSource } from './usage-source.js';
export { prepaidWalletLimit } from './wallet-counters.js';
export { WalletService } from './wallet.js';
export type { WalletSummary } from './wallet.js';
export { catalogPricing, previewPlanChange } from './period-invoice.js';
export type { PlanChangePreview } from './period-invoice.js';
