import { type AccountsService, paymentSuspensionPrefix } from '../identity/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Db, Queryable } from '../store/index.js';

export interface StripeInvoiceFacts {
  stripeInvoiceId: string;
  customerId: string;
  /** Our invoice, when Tollgate pushed it. */
  invoiceId: string | undefined;
  status: string;
}

/**
 * Dunning: a failed invoice payment is recorded at once (log and metric), the customer is suspended once the grace
 * period has run out with the invoice still unpaid (the Check then answers 402), and access comes back when the
 * overdue invoices are paid or voided. Payment is final: a failure reported after it changes nothing.
 */
export class Dunning {
  constructor(
    private readonly db: Db,
    private readonly accounts: AccountsService,
    private readonly clock: Clock,
    private readonly graceMs: number,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /** In the webhook's transaction. The grace period runs from the first failure Stripe reported (`failedAt`). */
  async recordFailure(tx: Queryable, invoice: StripeInvoiceFacts, failedAt: Date): Promise<void> {
    const [row] = await tx.query<{ suspend_at: Date; settled_at: Date | null }>(
      `INSERT INTO stripe_invoices (stripe_invoice_id, invoice_id, customer_id, status, payment_failed_at, suspend_at)
       VALUES ($1, $2, $3, $4, $5, $5::timestamptz + $6 * interval '1 millisecond')
       ON CONFLICT (stripe_invoice_id) DO UPDATE SET
         payment_failed_at = COALESCE(stripe_invoices.payment_failed_at, EXCLUDED.payment_failed_at),
         suspend_at = COALESCE(stripe_invoices.suspend_at, EXCLUDED.suspend_at),
         status = CASE WHEN stripe_invoices.settled_at IS NULL THEN EXCLUDED.status ELSE stripe_invoices.status END
       RETURNING suspend_at, settled_at`,
      [invoice.stripeInvoiceId, invoice.invoiceId ?? null, invoice.customerId, invoice.status, failedAt, this.graceMs],
    );
    if (row!.settled_at) return;
    this.metrics.stripePaymentFailures.inc();
    this.logger.warn(
      { customerId: invoice.customerId, stripeInvoiceId: invoice.stripeInvoiceId, suspendAt: row!.suspend_at.toISOString() },
      'invoice payment failed; the customer is suspended if it is still unpaid when the grace period ends',
    );
  }

  /**
   * In the webhook's transaction: the invoice was paid (or voided). Lifts a non-payment suspension once no other
   * overdue invoice of the customer remains.
   */
  async recordSettled(accounts: AccountsService, tx: Queryable, invoice: StripeInvoiceFacts, settledAt: Date): Promise<void> {
    await lockCustomer(tx, invoice.customerId);
    await tx.query(
      `INSERT INTO stripe_invoices (stripe_invoice_id, invoice_id, customer_id, status, settled_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (stripe_invoice_id) DO UPDATE SET
         status = EXCLUDED.status,
         settled_at = COALESCE(stripe_invoices.settled_at, EXCLUDED.settled_at),
         invoice_id = COALESCE(stripe_invoices.invoice_id, EXCLUDED.invoice_id)`,
      [invoice.stripeInvoiceId, invoice.invoiceId ?? null, invoice.customerId, invoice.status, settledAt],
    );
    await this.liftIfNothingOverdue(accounts, tx, invoice.customerId, invoice.stripeInvoiceId);
  }

  /**
   * In the webhook's transaction: a Stripe subscription of the customer is current (active or trialing), so its
   * latest invoice is paid: settles it if it is under dunning, then lifts a non-payment suspension once nothing
   * else is overdue (the `invoice.paid` event may come late, or not at all).
   */
  async recordSubscriptionCurrent(accounts: AccountsService, tx: Queryable, customerId: string, latestInvoiceId: string | undefined, at: Date): Promise<void> {
    await lockCustomer(tx, customerId);
    if (latestInvoiceId) {
      await tx.query(
        `UPDATE stripe_invoices SET status = 'paid', settled_at = $2 WHERE stripe_invoice_id = $1 AND customer_id = $3 AND settled_at IS NULL`,
        [latestInvoiceId, at, customerId],
      );
    }
    await this.liftIfNothingOverdue(accounts, tx, customerId, latestInvoiceId);
  }

  /**
   * In the webhook's transaction: Stripe gave up collecting a subscription's invoice (status `unpaid`). The customer
   * is suspended now, as for an invoice past its grace period, until the invoices are paid.
   */
  async suspendNow(accounts: AccountsService, tx: Queryable, invoice: StripeInvoiceFacts, at: Date): Promise<void> {
    await lockCustomer(tx, invoice.customerId);
    await this.recordFailure(tx, invoice, at);
    const [overdue] = await tx.query(
      `UPDATE stripe_invoices SET suspended_at = COALESCE(suspended_at, $2) WHERE stripe_invoice_id = $1 AND settled_at IS NULL RETURNING 1`,
      [invoice.stripeInvoiceId, new Date(this.clock.now())],
    );
    if (!overdue) return;
    const customer = await accounts.getCustomer(invoice.customerId);
    if (customer.status !== 'active') return;
    await accounts.updateCustomer(customer.id, {
      status: 'suspended',
      statusReason: `${paymentSuspensionPrefix} Stripe invoice ${invoice.stripeInvoiceId} unpaid; Stripe stopped retrying (subscription unpaid)`,
    });
    this.metrics.stripePaymentSuspensions.inc({ action: 'suspended' });
    this.logger.warn({ customerId: customer.id, stripeInvoiceId: invoice.stripeInvoiceId }, 'Stripe subscription unpaid; customer suspended');
  }

  /** Lifts a non-payment suspension once no invoice of the customer is overdue any more. */
  private async liftIfNothingOverdue(accounts: AccountsService, tx: Queryable, customerId: string, stripeInvoiceId: string | undefined): Promise<void> {
    // Overdue: unpaid past its grace period, whether or not it was the one that suspended the customer (a customer
    // already suspended is not suspended again for a second invoice).
    const [stillOverdue] = await tx.query(
      `SELECT 1 FROM stripe_invoices
       WHERE customer_id = $1 AND settled_at IS NULL AND (suspended_at IS NOT NULL OR suspend_at <= $2) LIMIT 1`,
      [customerId, new Date(this.clock.now())],
    );
    if (stillOverdue) return;
    const customer = await accounts.getCustomer(customerId);
    if (customer.status !== 'suspended' || !customer.statusReason?.startsWith(paymentSuspensionPrefix)) return;
    await accounts.updateCustomer(customer.id, { status: 'active', statusReason: null });
    this.metrics.stripePaymentSuspensions.inc({ action: 'lifted' });
    this.logger.info({ customerId: customer.id, stripeInvoiceId }, 'overdue invoices paid; customer reactivated');
  }

  /** The background check: suspends customers whose failed invoices are still unpaid after the grace period. */
  async suspendOverdue(): Promise<number> {
    const now = new Date(this.clock.now());
    const due = await this.db.query<{ stripe_invoice_id: string }>(
      `SELECT stripe_invoice_id FROM stripe_invoices
       WHERE settled_at IS NULL AND suspended_at IS NULL AND suspend_at <= $1 ORDER BY suspend_at LIMIT 500`,
      [now],
    );
    let suspended = 0;
    for (const { stripe_invoice_id: stripeInvoiceId } of due) {
      if (await this.suspendFor(stripeInvoiceId, now)) suspended += 1;
    }
    return suspended;
  }

  private suspendFor(stripeInvoiceId: string, now: Date): Promise<boolean> {
    return this.accounts.inTransaction(async (accounts, tx) => {
      const [invoice] = await tx.query<{ customer_id: string }>('SELECT customer_id FROM stripe_invoices WHERE stripe_invoice_id = $1', [stripeInvoiceId]);
      if (!invoice) return false;
      await lockCustomer(tx, invoice.customer_id);
      // Suspended by an operator: leave the invoice due, so it still suspends once they reactivate the customer.
      if ((await accounts.getCustomer(invoice.customer_id)).status === 'suspended') return false;
      // Re-checked under the lock: a payment may have arrived since the scan.
      const [overdue] = await tx.query<{ customer_id: string; payment_failed_at: Date }>(
        `UPDATE stripe_invoices SET suspended_at = $2
         WHERE stripe_invoice_id = $1 AND settled_at IS NULL AND suspended_at IS NULL AND suspend_at <= $2
         RETURNING customer_id, payment_failed_at`,
        [stripeInvoiceId, now],
      );
      if (!overdue) return false;
      const customer = await accounts.getCustomer(overdue.customer_id);
      if (customer.status !== 'active') return false; // erased: its row refuses changes, and it never comes back
      await accounts.updateCustomer(customer.id, {
        status: 'suspended',
        statusReason: `${paymentSuspensionPrefix} Stripe invoice ${stripeInvoiceId} unpaid since ${overdue.payment_failed_at.toISOString()}`,
      });
      this.metrics.stripePaymentSuspensions.inc({ action: 'suspended' });
      this.logger.warn({ customerId: customer.id, stripeInvoiceId }, 'grace period over with the invoice unpaid; customer suspended');
      return true;
    });
  }
}

/** Suspending and reactivating a customer both lock the customer first, so they take turns. */
async function lockCustomer(tx: Queryable, customerId: string): Promise<void> {
  await tx.query('SELECT 1 FROM customers WHERE id = $1 FOR UPDATE', [customerId]);
}
