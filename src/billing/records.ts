/**
 * Billing's repository ports: invoices, subscription histories and the wallet ledger, as the billing rules use them.
 * Reads answer undefined for a missing record; failures are domain errors (`TollgateError`), never database codes.
 * The contracts are `test/contracts/{invoice-records,subscription-histories,wallet-records}.contract.ts`.
 */
import type { CurrencyCode } from '../kernel/index.js';
import type { BillingPeriod } from '../rating/index.js';
import type { Queryable } from '../store/index.js';
import type { AdvanceCharge, InvoiceLine, PeriodInvoice, SubscriptionHistory, SubscriptionPeriodUsage } from './period-invoice.js';

export interface BillableSubscription extends SubscriptionHistory {
  customerId: string;
  productId: string;
  /** End of the last finalized period: rating resumes there. */
  billedThrough: number | undefined;
}

export interface RatedPeriod {
  subscription: BillableSubscription;
  period: BillingPeriod;
  invoice: PeriodInvoice;
  usage: SubscriptionPeriodUsage;
  /** The period is over: finalize its invoice. */
  finalize: boolean;
}

export interface StoredInvoice {
  id: string;
  customerId: string;
  subscriptionId: string;
  productId: string;
  planId: string;
  periodStart: number;
  periodEnd: number;
  currency: CurrencyCode;
  mode: 'postpaid' | 'prepaid';
  status: 'draft' | 'finalized';
  total: bigint;
  revenueShare: bigint;
  calls: bigint;
  units: bigint;
  ratedAt: number;
  finalizedAt: number | null;
}

export interface StoredInvoiceDetail extends StoredInvoice {
  /** Billed lines, then the revenue-share lines (kind revenue_share, not in the total). */
  lines: InvoiceLine[];
  usage: { endpointId: string; calls: bigint; units: bigint }[];
}

export type WalletEntryKind = 'top_up' | AdvanceCharge['kind'] | 'usage' | 'true_up';

export interface WalletEntry {
  id: string;
  customerId: string;
  currency: CurrencyCode;
  kind: WalletEntryKind;
  /** Minor units: credits positive, debits negative. */
  amount: bigint;
  reference: string;
  description: string;
  subscriptionId: string | null;
  periodStart: number | null;
  occurredAt: number;
  /** The ledger balance after this entry. */
  balanceAfter: bigint;
}

/** Revenue and usage of one group (a product, a plan or a customer) in one currency. */
export interface RevenueGroup {
  id: string;
  currency: CurrencyCode;
  /** Billed, minor units. */
  revenue: bigint;
  /** Owed to partners out of the revenue. */
  revenueShare: bigint;
  calls: bigint;
  units: bigint;
}

/** The invoices of the billing periods starting in [from, to), summed. */
export interface RevenueFigures {
  invoices: number;
  drafts: number;
  totals: RevenueGroup[];
  byProduct: RevenueGroup[];
  /** By the plan of each line (a period with a plan change pays both plans). */
  revenueByLinePlan: Omit<RevenueGroup, 'calls' | 'units'>[];
  /** By the plan that rated the invoice: its usage. */
  byInvoicePlan: RevenueGroup[];
  byCustomer: RevenueGroup[];
  revenueShareByPartner: { id: string; currency: CurrencyCode; owed: bigint }[];
}

export interface InvoiceRecords {
  /** Runs `work` in one transaction; `tx` is the same transaction for the wallet ledger's writes. */
  transaction<T>(work: (records: InvoiceRecords, tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Writes rated periods, one statement per table. A draft whose content did not change is not written (so refreshing
   * is idempotent); a finalized invoice is never touched; ended periods are finalized after their lines are written.
   * Returns the invoices this call finalized.
   */
  saveRatedPeriods(rated: readonly RatedPeriod[], now: number): Promise<StoredInvoice[]>;
  /** The customer's invoices, newest period first. */
  invoices(customerId: string, options: { limit: number; status?: 'draft' | 'finalized' | undefined }): Promise<StoredInvoice[]>;
  invoice(id: string): Promise<StoredInvoiceDetail | undefined>;
  /** The invoice of one subscription period. */
  periodInvoice(subscriptionId: string, periodStart: number): Promise<StoredInvoiceDetail | undefined>;
  revenueFigures(from: number, to: number): Promise<RevenueFigures>;
}

export interface SubscriptionHistories {
  /** The same histories read in the caller's open transaction (a subscription change being charged). */
  within(tx: Queryable): SubscriptionHistories;
  /** Active subscriptions, and those canceled after both their last finalized period's end and `canceledAfter`. */
  billable(canceledAfter: number): Promise<BillableSubscription[]>;
  /** The ids of the subscriptions `billable` answers, ordered. */
  billableIds(canceledAfter: number): Promise<string[]>;
  history(subscriptionId: string): Promise<BillableSubscription | undefined>;
  /** These subscriptions' histories, by id; ids of no subscription are left out. */
  histories(subscriptionIds: readonly string[]): Promise<BillableSubscription[]>;
  /** Every subscription started before `before`, ordered by id. */
  startedBefore(before: number): Promise<BillableSubscription[]>;
  /** Active subscriptions per plan, ordered by plan; plans without one are absent. */
  activeByPlan(): Promise<{ planId: string; subscriptions: number }[]>;
}

/**
 * What the rating pass has to do: subscriptions marked as changed (new usage, a plan change, a cancellation: put by
 * metering and by triggers on the subscriptions) and subscriptions due by time (a period starts, a finalization).
 */
export interface RatingWork {
  within(tx: Queryable): RatingWork;
  /** The marked subscriptions with their marks' versions, and the subscriptions due by `now` (no version). */
  pending(now: number): Promise<Map<string, number | undefined>>;
  /**
   * After rating, in its transaction: deletes the marks still at the versions read (a newer mark stays for the next
   * pass) and sets when each subscription is next due (undefined: never again).
   */
  rated(marks: ReadonlyMap<string, number>, due: readonly { subscriptionId: string; dueAt: number | undefined }[]): Promise<void>;
}

/** An entry to append: the ledger assigns its id and the balance after it. */
export interface NewWalletEntry {
  customerId: string;
  currency: CurrencyCode;
  kind: WalletEntryKind;
  /** Minor units: credits positive, debits negative. */
  amount: bigint;
  /** Unique per customer: an entry with a reference already posted is not posted again. */
  reference: string;
  description: string;
  subscriptionId?: string | undefined;
  periodStart?: number | undefined;
  occurredAt: number;
}

/** A subscription period of a customer, with an amount (what it charged or settled). */
export interface PeriodAmount {
  subscriptionId: string;
  periodStart: number;
  amount: bigint;
}

/** The wallets (one per customer and currency) and their append-only ledger. */
export interface WalletRecords {
  /** Runs `work` in one transaction; nested transactions join it. */
  transaction<T>(work: (records: WalletRecords) => Promise<T>): Promise<T>;
  /** The same records in the caller's open transaction (a rating batch, a subscription change). */
  within(tx: Queryable): WalletRecords;

  customerExists(customerId: string): Promise<boolean>;
  /** Every wallet, by customer and currency. */
  wallets(): Promise<{ customerId: string; currency: CurrencyCode }[]>;
  /** Holds the wallet's row until the transaction ends; its low-balance threshold, undefined when there is no wallet. */
  lockWallet(customerId: string, currency: CurrencyCode): Promise<bigint | undefined>;
  /** Creates the wallet unless it exists. */
  createWallet(customerId: string, currency: CurrencyCode): Promise<void>;
  setLowBalanceThreshold(customerId: string, currency: CurrencyCode, threshold: bigint): Promise<void>;
  /** The customer's wallets by currency, with their ledger balances. */
  balances(customerId: string): Promise<{ currency: CurrencyCode; balance: bigint; lowBalanceThreshold: bigint }[]>;
  balance(customerId: string, currency: CurrencyCode): Promise<bigint>;

  /** Appends the entry unless its reference was posted already. */
  post(entry: NewWalletEntry): Promise<void>;
  entryByReference(customerId: string, reference: string): Promise<WalletEntry | undefined>;
  /** Oldest first, after the cursor (an entry id). */
  entries(customerId: string, page: { currency?: CurrencyCode | undefined; after?: string | undefined; limit: number }): Promise<WalletEntry[]>;
  /** Which of the references the customer's ledger holds. */
  postedReferences(customerId: string, references: readonly string[]): Promise<Set<string>>;
  /** The sum of a subscription period's entries in the currency. */
  periodTotal(subscriptionId: string, periodStart: number, currency: CurrencyCode): Promise<bigint>;
  /** Subscription periods (starting at or after `since`) and the usage already settled in them, positive. */
  settledUsage(customerId: string, currency: CurrencyCode, since: number): Promise<PeriodAmount[]>;
  /** The subscription periods of these subscriptions that have entries. */
  periodsWithEntries(subscriptionIds: readonly string[]): Promise<{ subscriptionId: string; periodStart: number }[]>;

  /** The customer's subscriptions that are active or were canceled after `canceledAfter`, by id. */
  settlingSubscriptions(customerId: string, canceledAfter: number): Promise<{ id: string; planId: string; periodAnchor: number }[]>;
  /** The customer's finalized invoice periods starting at or after `since`. */
  finalizedPeriods(customerId: string, since: number): Promise<{ subscriptionId: string; periodStart: number }[]>;
}
