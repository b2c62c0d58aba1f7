import type { InvoiceRow } from '../billing/index.js';
import type { CurrencyCode } from '../kernel/index.js';
import type { Queryable } from '../store/index.js';
import type { StripeWorkKind } from './outbox.js';

/** Our customer as a Stripe customer is made from it. */
export interface CustomerToSync {
  id: string;
  name: string;
  email: string | null;
  createdAt: Date;
}

export interface TopUpRecord {
  id: string;
  customerId: string;
  /** Minor units. */
  amount: bigint;
  currency: CurrencyCode;
  successUrl: string;
  cancelUrl: string | null;
  status: 'pending' | 'open' | 'paid' | 'expired';
  stripeSessionId: string | null;
  checkoutUrl: string | null;
  paidAt: Date | null;
  createdAt: Date;
}

export type NewTopUp = Pick<TopUpRecord, 'id' | 'customerId' | 'amount' | 'currency' | 'successUrl' | 'cancelUrl'>;

/** The columns of an invoice that collecting it through Stripe reads. */
export const columnsToCollect = ['id', 'customer_id', 'subscription_id', 'plan_id', 'period_start', 'period_end', 'currency', 'mode', 'status', 'total'] as const;

/** An invoice as collecting it through Stripe reads it, with `stripe_total`: the part Stripe collects. */
export type InvoiceToCollect = Pick<InvoiceRow, (typeof columnsToCollect)[number]> & { stripe_total: string };

/** An invoice line Stripe collects. */
export interface CollectedLine {
  position: number;
  kind: string;
  description: string;
  amount: bigint;
}

/** Which Stripe invoice is one of ours, its status and the rounding Stripe's collection adds to our amount. */
export interface StripeInvoiceRecord {
  stripeInvoiceId: string;
  invoiceId: string;
  customerId: string;
  status: string;
  /** Minor units. */
  rounding: bigint;
}

/** A Stripe invoice of one of our customers, as a webhook tells of it. */
export interface StripeInvoiceFacts {
  stripeInvoiceId: string;
  customerId: string;
  /** Our invoice, when Tollgate pushed it. */
  invoiceId: string | undefined;
  status: string;
}

/** A usage report in flight: the cumulative units reported, those being sent, and the event's timestamp. */
export interface PinnedUsageReport {
  reported: bigint;
  sending: bigint;
  /** Unix seconds. */
  timestamp: number;
}

/**
 * The Stripe side's records: which Stripe objects are ours, top-ups, and the work they queue. Reads answer undefined
 * for a missing record; failures are domain errors. `test/contracts/stripe-records.contract.ts` is the contract.
 */
export interface StripeRecords {
  /** Runs `work` in one transaction: the records it is given read and write in it. */
  transaction<T>(work: (records: StripeRecords) => Promise<T>): Promise<T>;
  /** The same records in the caller's open transaction `tx` (e.g. an AccountRecords transaction's). */
  within(tx: Queryable): StripeRecords;
  /** Queues outbox work in these records' transaction, so it exists if and only if what it is about was committed. */
  enqueue(kind: StripeWorkKind, subjectId: string): Promise<void>;

  customerExists(customerId: string): Promise<boolean>;
  customerToSync(customerId: string): Promise<CustomerToSync | undefined>;
  stripeCustomerId(customerId: string): Promise<string | undefined>;
  customerIdOfStripe(stripeCustomerId: string): Promise<string | undefined>;
  /** Records the mapping unless the customer, or the Stripe customer, has one already (then nothing changes). */
  rememberStripeCustomer(customerId: string, stripeCustomerId: string): Promise<void>;

  insertTopUp(topUp: NewTopUp): Promise<TopUpRecord>;
  topUp(id: string): Promise<TopUpRecord | undefined>;
  /** A pending top-up's Checkout session was opened; other top-ups stay as they are. */
  openTopUp(id: string, stripeSessionId: string, checkoutUrl: string | null): Promise<void>;
  /** Marks the top-up paid (the database's clock) with the session that paid it, unless it is paid already. */
  markTopUpPaid(id: string, stripeSessionId: string): Promise<void>;
  /** A pending or open top-up's session expired unpaid. */
  expireTopUp(id: string): Promise<void>;

  /** With `stripe_total` summed over the lines Stripe collects (not those of the meter-mode plans given). */
  invoiceToCollect(invoiceId: string, meterModePlanIds: readonly string[]): Promise<InvoiceToCollect | undefined>;
  /** Finalized invoices, by id, with the Stripe invoice recorded for each and when it settled. */
  finalizedInvoicesToCollect(
    meterModePlanIds: readonly string[],
  ): Promise<(InvoiceToCollect & { stripe_invoice_id: string | null; settled_at: Date | null })[]>;
  /** The lines of the invoice Stripe collects (not those of the meter-mode plans given), by position. */
  collectedLines(invoiceId: string, meterModePlanIds: readonly string[]): Promise<CollectedLine[]>;
  /** The Stripe invoice recorded for our invoice. */
  stripeInvoiceIdOf(invoiceId: string): Promise<string | undefined>;
  /** Records (or updates) a Stripe invoice of ours; a settled one keeps the status it settled with. */
  recordStripeInvoice(record: StripeInvoiceRecord): Promise<void>;
  /** Every customer of ours, by id, with its Stripe customer if one is recorded. */
  customersWithStripeIds(): Promise<{ customerId: string; stripeCustomerId: string | null }[]>;

  /**
   * A payment of the invoice failed: records the first failure and when the grace period (`graceMs` from it) ends,
   * keeping earlier ones; returns those and whether the invoice is settled.
   */
  recordPaymentFailure(invoice: StripeInvoiceFacts, failedAt: Date, graceMs: number): Promise<{ suspendAt: Date; settledAt: Date | null }>;
  /** The invoice was paid or voided: records its status, keeping the first settlement time and invoice id. */
  recordSettlement(invoice: StripeInvoiceFacts, settledAt: Date): Promise<void>;
  /** Settles the customer's unsettled Stripe invoice as paid (a subscription that is current). */
  settleAsPaid(stripeInvoiceId: string, customerId: string, at: Date): Promise<void>;
  /** Marks an unsettled invoice as having suspended its customer (keeping an earlier time); false if it is settled. */
  markSuspendedBy(stripeInvoiceId: string, at: Date): Promise<boolean>;
  /**
   * Marks an unsettled invoice whose grace period is over and that has not suspended anyone yet as suspending its
   * customer now; undefined if it is not such an invoice.
   */
  suspendIfOverdue(stripeInvoiceId: string, now: Date): Promise<{ customerId: string; paymentFailedAt: Date } | undefined>;
  /** Whether an invoice of the customer is unpaid past its grace period or has suspended it. */
  hasOverdueInvoice(customerId: string, now: Date): Promise<boolean>;
  /** Unsettled invoices past their grace period that have not suspended anyone, the longest overdue first. */
  overdueInvoices(now: Date, limit: number): Promise<string[]>;
  /** The customer of a Stripe invoice we know of. */
  customerOfStripeInvoice(stripeInvoiceId: string): Promise<string | undefined>;
  /** Holds the customer's row until the transaction ends: suspending and reactivating take turns. */
  lockCustomer(customerId: string): Promise<void>;

  /** Meter mode: subscription periods of these plans, starting after `since`, whose billable usage grew since reported. */
  grownUsagePeriods(meterModePlanIds: readonly string[], since: Date): Promise<{ subscriptionId: string; periodStart: Date }[]>;
  subscriptionToReport(subscriptionId: string): Promise<{ customerId: string; planId: string; periodAnchor: Date } | undefined>;
  /**
   * The report in flight, or a new one for the usage since the last, pinned with `timestamp`; undefined when there
   * is nothing new. A report in flight keeps the timestamp it was pinned with.
   */
  pinUsageReport(subscriptionId: string, periodStart: Date, timestamp: number): Promise<PinnedUsageReport | undefined>;
  /** The report of `sending` units arrived: they count as reported, and nothing is in flight. */
  markUsageReported(subscriptionId: string, periodStart: Date, sending: bigint): Promise<void>;
  /** Marks the reports of the period starting in that second failed. */
  markUsageReportFailed(subscriptionId: string, periodStartSecond: Date, at: Date, failure: string): Promise<void>;
  /** Per customer on these plans with nothing in flight: the units reported and the first period reported. */
  reportedUsageByCustomer(planIds: readonly string[]): Promise<{ customerId: string; stripeCustomerId: string; reported: bigint; first: Date }[]>;
  /** Usage reports Stripe refused, by subscription and period. */
  failedUsageReports(): Promise<{ subscriptionId: string; periodStart: Date; failure: string }[]>;

  webhookEventSeen(eventId: string): Promise<boolean>;
  /** Records a webhook event as applied; false when it was recorded already. */
  recordWebhookEvent(eventId: string, type: string, createdAt: Date): Promise<boolean>;
}
