import type { CurrencyCode } from '../kernel/index.js';
import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type { StripeWorkKind } from './outbox.js';
import {
  type CollectedLine,
  columnsToCollect,
  type CustomerToSync,
  type InvoiceToCollect,
  type NewTopUp,
  type PinnedUsageReport,
  type StripeInvoiceFacts,
  type StripeInvoiceRecord,
  type StripeRecords,
  type TopUpRecord,
} from './records.js';
import { enqueueStripeWork } from './sql-outbox.js';

/** The Stripe side's records in PostgreSQL or PGlite (the same SQL on both). */
export class SqlStripeRecords implements StripeRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  transaction<T>(work: (records: StripeRecords) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => work(this.within(tx)));
  }

  within(tx: Queryable): StripeRecords {
    return new SqlStripeRecords(joinedTransaction(this.db, tx));
  }

  enqueue(kind: StripeWorkKind, subjectId: string): Promise<void> {
    return enqueueStripeWork(this.db, kind, subjectId);
  }

  async customerExists(customerId: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM customers WHERE id = $1', [customerId])).length > 0;
  }

  async customerToSync(customerId: string): Promise<CustomerToSync | undefined> {
    const [row] = await this.db.query<{ id: string; name: string; email: string | null; created_at: Date }>(
      'SELECT id, name, email, created_at FROM customers WHERE id = $1',
      [customerId],
    );
    return row && { id: row.id, name: row.name, email: row.email, createdAt: row.created_at };
  }

  async stripeCustomerId(customerId: string): Promise<string | undefined> {
    const [row] = await this.db.query<{ stripe_customer_id: string }>('SELECT stripe_customer_id FROM stripe_customers WHERE customer_id = $1', [customerId]);
    return row?.stripe_customer_id;
  }

  async customerIdOfStripe(stripeCustomerId: string): Promise<string | undefined> {
    const [row] = await this.db.query<{ customer_id: string }>('SELECT customer_id FROM stripe_customers WHERE stripe_customer_id = $1', [stripeCustomerId]);
    return row?.customer_id;
  }

  async rememberStripeCustomer(customerId: string, stripeCustomerId: string): Promise<void> {
    await this.db.query('INSERT INTO stripe_customers (customer_id, stripe_customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING', [customerId, stripeCustomerId]);
  }

  async insertTopUp(topUp: NewTopUp): Promise<TopUpRecord> {
    const [row] = await this.db.query<TopUpRow>(
      `INSERT INTO stripe_topups (id, customer_id, amount, currency, success_url, cancel_url) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [topUp.id, topUp.customerId, topUp.amount.toString(), topUp.currency, topUp.successUrl, topUp.cancelUrl],
    );
    return toTopUp(row!);
  }

  async topUp(id: string): Promise<TopUpRecord | undefined> {
    const [row] = await this.db.query<TopUpRow>('SELECT * FROM stripe_topups WHERE id = $1', [id]);
    return row && toTopUp(row);
  }

  async openTopUp(id: string, stripeSessionId: string, checkoutUrl: string | null): Promise<void> {
    await this.db.query(`UPDATE stripe_topups SET status = 'open', stripe_session_id = $2, checkout_url = $3 WHERE id = $1 AND status = 'pending'`, [
      id,
      stripeSessionId,
      checkoutUrl,
    ]);
  }

  async markTopUpPaid(id: string, stripeSessionId: string): Promise<void> {
    await this.db.query(`UPDATE stripe_topups SET status = 'paid', paid_at = clock_timestamp(), stripe_session_id = $2 WHERE id = $1 AND status <> 'paid'`, [
      id,
      stripeSessionId,
    ]);
  }

  async expireTopUp(id: string): Promise<void> {
    await this.db.query(`UPDATE stripe_topups SET status = 'expired' WHERE id = $1 AND status IN ('pending', 'open')`, [id]);
  }

  async invoiceToCollect(invoiceId: string, meterModePlanIds: readonly string[]): Promise<InvoiceToCollect | undefined> {
    const [row] = await this.db.query<InvoiceToCollect>(`SELECT ${invoiceToCollectColumns('i', '$2')} FROM invoices i WHERE i.id = $1`, [invoiceId, meterModePlanIds]);
    return row;
  }

  finalizedInvoicesToCollect(meterModePlanIds: readonly string[]): Promise<(InvoiceToCollect & { stripe_invoice_id: string | null; settled_at: Date | null })[]> {
    return this.db.query(
      `SELECT ${invoiceToCollectColumns('i', '$1')}, s.stripe_invoice_id, s.settled_at
       FROM invoices i LEFT JOIN stripe_invoices s ON s.invoice_id = i.id
       WHERE i.status = 'finalized' ORDER BY i.id`,
      [meterModePlanIds],
    );
  }

  async collectedLines(invoiceId: string, meterModePlanIds: readonly string[]): Promise<CollectedLine[]> {
    const rows = await this.db.query<{ position: number; kind: string; description: string; amount: string }>(
      `SELECT position, kind, description, amount FROM invoice_lines l WHERE invoice_id = $1 AND ${collectedLine('l', '$2')} ORDER BY position`,
      [invoiceId, meterModePlanIds],
    );
    return rows.map((row) => ({ position: row.position, kind: row.kind, description: row.description, amount: BigInt(row.amount) }));
  }

  async stripeInvoiceIdOf(invoiceId: string): Promise<string | undefined> {
    const [row] = await this.db.query<{ stripe_invoice_id: string }>('SELECT stripe_invoice_id FROM stripe_invoices WHERE invoice_id = $1', [invoiceId]);
    return row?.stripe_invoice_id;
  }

  async recordStripeInvoice(record: StripeInvoiceRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO stripe_invoices (stripe_invoice_id, invoice_id, customer_id, status, rounding) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (stripe_invoice_id) DO UPDATE SET
         status = CASE WHEN stripe_invoices.settled_at IS NULL THEN EXCLUDED.status ELSE stripe_invoices.status END,
         invoice_id = EXCLUDED.invoice_id,
         rounding = EXCLUDED.rounding`,
      [record.stripeInvoiceId, record.invoiceId, record.customerId, record.status, record.rounding.toString()],
    );
  }

  async customersWithStripeIds(): Promise<{ customerId: string; stripeCustomerId: string | null }[]> {
    const rows = await this.db.query<{ id: string; stripe_customer_id: string | null }>(
      'SELECT c.id, s.stripe_customer_id FROM customers c LEFT JOIN stripe_customers s ON s.customer_id = c.id ORDER BY c.id',
    );
    return rows.map((row) => ({ customerId: row.id, stripeCustomerId: row.stripe_customer_id }));
  }

  async recordPaymentFailure(invoice: StripeInvoiceFacts, failedAt: Date, graceMs: number): Promise<{ suspendAt: Date; settledAt: Date | null }> {
    const [row] = await this.db.query<{ suspend_at: Date; settled_at: Date | null }>(
      `INSERT INTO stripe_invoices (stripe_invoice_id, invoice_id, customer_id, status, payment_failed_at, suspend_at)
       VALUES ($1, $2, $3, $4, $5, $5::timestamptz + $6 * interval '1 millisecond')
       ON CONFLICT (stripe_invoice_id) DO UPDATE SET
         payment_failed_at = COALESCE(stripe_invoices.payment_failed_at, EXCLUDED.payment_failed_at),
         suspend_at = COALESCE(stripe_invoices.suspend_at, EXCLUDED.suspend_at),
         status = CASE WHEN stripe_invoices.settled_at IS NULL THEN EXCLUDED.status ELSE stripe_invoices.status END
       RETURNING suspend_at, settled_at`,
      [invoice.stripeInvoiceId, invoice.invoiceId ?? null, invoice.customerId, invoice.status, failedAt, graceMs],
    );
    return { suspendAt: row!.suspend_at, settledAt: row!.settled_at };
  }

  async recordSettlement(invoice: StripeInvoiceFacts, settledAt: Date): Promise<void> {
    await this.db.query(
      `INSERT INTO stripe_invoices (stripe_invoice_id, invoice_id, customer_id, status, settled_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (stripe_invoice_id) DO UPDATE SET
         status = EXCLUDED.status,
         settled_at = COALESCE(stripe_invoices.settled_at, EXCLUDED.settled_at),
         invoice_id = COALESCE(stripe_invoices.invoice_id, EXCLUDED.invoice_id)`,
      [invoice.stripeInvoiceId, invoice.invoiceId ?? null, invoice.customerId, invoice.status, settledAt],
    );
  }

  async settleAsPaid(stripeInvoiceId: string, customerId: string, at: Date): Promise<void> {
    await this.db.query(
      `UPDATE stripe_invoices SET status = 'paid', settled_at = $2 WHERE stripe_invoice_id = $1 AND customer_id = $3 AND settled_at IS NULL`,
      [stripeInvoiceId, at, customerId],
    );
  }

  async markSuspendedBy(stripeInvoiceId: string, at: Date): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE stripe_invoices SET suspended_at = COALESCE(suspended_at, $2) WHERE stripe_invoice_id = $1 AND settled_at IS NULL RETURNING 1`,
      [stripeInvoiceId, at],
    );
    return rows.length > 0;
  }

  async suspendIfOverdue(stripeInvoiceId: string, now: Date): Promise<{ customerId: string; paymentFailedAt: Date } | undefined> {
    const [row] = await this.db.query<{ customer_id: string; payment_failed_at: Date }>(
      `UPDATE stripe_invoices SET suspended_at = $2
       WHERE stripe_invoice_id = $1 AND settled_at IS NULL AND suspended_at IS NULL AND suspend_at <= $2
       RETURNING customer_id, payment_failed_at`,
      [stripeInvoiceId, now],
    );
    return row && { customerId: row.customer_id, paymentFailedAt: row.payment_failed_at };
  }

  async hasOverdueInvoice(customerId: string, now: Date): Promise<boolean> {
    const rows = await this.db.query(
      `SELECT 1 FROM stripe_invoices
       WHERE customer_id = $1 AND settled_at IS NULL AND (suspended_at IS NOT NULL OR suspend_at <= $2) LIMIT 1`,
      [customerId, now],
    );
    return rows.length > 0;
  }

  async overdueInvoices(now: Date, limit: number): Promise<string[]> {
    const rows = await this.db.query<{ stripe_invoice_id: string }>(
      `SELECT stripe_invoice_id FROM stripe_invoices
       WHERE settled_at IS NULL AND suspended_at IS NULL AND suspend_at <= $1 ORDER BY suspend_at LIMIT $2`,
      [now, limit],
    );
    return rows.map((row) => row.stripe_invoice_id);
  }

  async customerOfStripeInvoice(stripeInvoiceId: string): Promise<string | undefined> {
    const [row] = await this.db.query<{ customer_id: string }>('SELECT customer_id FROM stripe_invoices WHERE stripe_invoice_id = $1', [stripeInvoiceId]);
    return row?.customer_id;
  }

  async lockCustomer(customerId: string): Promise<void> {
    await this.db.query('SELECT 1 FROM customers WHERE id = $1 FOR UPDATE', [customerId]);
  }

  async grownUsagePeriods(meterModePlanIds: readonly string[], since: Date): Promise<{ subscriptionId: string; periodStart: Date }[]> {
    const rows = await this.db.query<{ subscription_id: string; period_start: Date }>(
      `SELECT r.subscription_id, r.period_start
       FROM usage_rollups r
       JOIN subscriptions s ON s.id = r.subscription_id
       LEFT JOIN stripe_usage_reports u ON u.subscription_id = r.subscription_id AND u.period_start = r.period_start
       WHERE s.plan_id = ANY($1) AND r.period_start > $2
       GROUP BY r.subscription_id, r.period_start, u.reported_units, u.sending_units
       HAVING u.sending_units IS NULL AND sum(r.billable_units) > COALESCE(u.reported_units, 0)`,
      [meterModePlanIds, since],
    );
    return rows.map((row) => ({ subscriptionId: row.subscription_id, periodStart: row.period_start }));
  }

  async subscriptionToReport(subscriptionId: string): Promise<{ customerId: string; planId: string; periodAnchor: Date } | undefined> {
    const [row] = await this.db.query<{ customer_id: string; plan_id: string; period_anchor: Date }>(
      'SELECT customer_id, plan_id, period_anchor FROM subscriptions WHERE id = $1',
      [subscriptionId],
    );
    return row && { customerId: row.customer_id, planId: row.plan_id, periodAnchor: row.period_anchor };
  }

  async pinUsageReport(subscriptionId: string, periodStart: Date, timestamp: number): Promise<PinnedUsageReport | undefined> {
    const [row] = await this.db.query<{ reported_units: string; sending_units: string | null; sending_timestamp: string }>(
      `INSERT INTO stripe_usage_reports (subscription_id, period_start, sending_units, sending_timestamp)
       SELECT $1, $2, NULLIF(sum(billable_units), 0), $3 FROM usage_rollups WHERE subscription_id = $1 AND period_start = $2
       ON CONFLICT (subscription_id, period_start) DO UPDATE SET
         sending_units = COALESCE(
           stripe_usage_reports.sending_units,
           CASE WHEN EXCLUDED.sending_units > stripe_usage_reports.reported_units THEN EXCLUDED.sending_units END),
         -- A report pinned before migration 9 has no timestamp yet: it gets one now, and keeps it.
         sending_timestamp = CASE WHEN stripe_usage_reports.sending_units IS NULL THEN EXCLUDED.sending_timestamp
                                  ELSE COALESCE(stripe_usage_reports.sending_timestamp, EXCLUDED.sending_timestamp) END
       RETURNING reported_units, sending_units, sending_timestamp`,
      [subscriptionId, periodStart, timestamp],
    );
    if (row!.sending_units === null) return undefined;
    return { reported: BigInt(row!.reported_units), sending: BigInt(row!.sending_units), timestamp: Number(row!.sending_timestamp) };
  }

  async markUsageReported(subscriptionId: string, periodStart: Date, sending: bigint): Promise<void> {
    await this.db.query(
      `UPDATE stripe_usage_reports SET reported_units = sending_units, sending_units = NULL, sending_timestamp = NULL
       WHERE subscription_id = $1 AND period_start = $2 AND sending_units = $3`,
      [subscriptionId, periodStart, sending.toString()],
    );
  }

  async markUsageReportFailed(subscriptionId: string, periodStartSecond: Date, at: Date, failure: string): Promise<void> {
    // The period start itself may have milliseconds.
    await this.db.query(`UPDATE stripe_usage_reports SET failed_at = $3, failure = $4 WHERE subscription_id = $1 AND date_trunc('second', period_start) = $2`, [
      subscriptionId,
      periodStartSecond,
      at,
      failure,
    ]);
  }

  async reportedUsageByCustomer(planIds: readonly string[]): Promise<{ customerId: string; stripeCustomerId: string; reported: bigint; first: Date }[]> {
    const rows = await this.db.query<{ customer_id: string; stripe_customer_id: string; reported: string; first: Date }>(
      `SELECT s.customer_id, c.stripe_customer_id, sum(u.reported_units)::text AS reported, min(u.period_start) AS first
       FROM stripe_usage_reports u
       JOIN subscriptions s ON s.id = u.subscription_id
       JOIN stripe_customers c ON c.customer_id = s.customer_id
       WHERE s.plan_id = ANY($1)
       GROUP BY s.customer_id, c.stripe_customer_id
       HAVING bool_and(u.sending_units IS NULL)
       ORDER BY s.customer_id`,
      [planIds],
    );
    return rows.map((row) => ({ customerId: row.customer_id, stripeCustomerId: row.stripe_customer_id, reported: BigInt(row.reported), first: row.first }));
  }

  async failedUsageReports(): Promise<{ subscriptionId: string; periodStart: Date; failure: string }[]> {
    const rows = await this.db.query<{ subscription_id: string; period_start: Date; failure: string }>(
      'SELECT subscription_id, period_start, failure FROM stripe_usage_reports WHERE failed_at IS NOT NULL ORDER BY subscription_id, period_start',
    );
    return rows.map((row) => ({ subscriptionId: row.subscription_id, periodStart: row.period_start, failure: row.failure }));
  }

  async webhookEventSeen(eventId: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM stripe_webhook_events WHERE id = $1', [eventId])).length > 0;
  }

  async recordWebhookEvent(eventId: string, type: string, createdAt: Date): Promise<boolean> {
    const rows = await this.db.query('INSERT INTO stripe_webhook_events (id, type, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING id', [
      eventId,
      type,
      createdAt,
    ]);
    return rows.length > 0;
  }
}

/**
 * SQL: whether invoice line `line` is one Stripe collects. Revenue-share lines are owed to partners, not billed; the
 * lines of meter-mode plans (ids in the text[] parameter `plans`) are billed by Stripe itself, also for the part of a
 * period before the customer moved to another plan.
 */
const collectedLine = (line: string, plans: string) => `${line}.kind <> 'revenue_share' AND NOT (${line}.plan_id = ANY(${plans}::text[]))`;

/** SQL: the columns of InvoiceToCollect for invoice `invoice`, with meter-mode plan ids in the parameter `plans`. */
const invoiceToCollectColumns = (invoice: string, plans: string) =>
  `${columnsToCollect.map((column) => `${invoice}.${column}`).join(', ')},
   (SELECT COALESCE(sum(l.amount), 0)::text FROM invoice_lines l WHERE l.invoice_id = ${invoice}.id AND ${collectedLine('l', plans)}) AS stripe_total`;

interface TopUpRow {
  id: string;
  customer_id: string;
  amount: string;
  currency: CurrencyCode;
  success_url: string;
  cancel_url: string | null;
  status: TopUpRecord['status'];
  stripe_session_id: string | null;
  checkout_url: string | null;
  paid_at: Date | null;
  created_at: Date;
}

const toTopUp = (row: TopUpRow): TopUpRecord => ({
  id: row.id,
  customerId: row.customer_id,
  amount: BigInt(row.amount),
  currency: row.currency,
  successUrl: row.success_url,
  cancelUrl: row.cancel_url,
  status: row.status,
  stripeSessionId: row.stripe_session_id,
  checkoutUrl: row.checkout_url,
  paidAt: row.paid_at,
  createdAt: row.created_at,
});
