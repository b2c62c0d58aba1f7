import { type AccountsService, paymentSuspensionPrefix } from '../identity/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Queryable } from '../store/index.js';
import type { StripeInvoiceFacts, StripeRecords } from './records.js';


/**
 * Dunning: a failed invoice payment is recorded at once (log and metric), the customer is suspended once the grace
 * period has run out with the invoice still unpaid (the Check then answers 402), and access comes back when the
 * overdue invoices are paid or voided. Payment is final: a failure reported after it changes nothing.
 */
export class Dunning {
  constructor(
    private readonly records: StripeRecords,
    private readonly accounts: AccountsService,
    private readonly clock: Clock,
    private readonly graceMs: number,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  /** In the webhook's transaction. The grace period runs from the first failure Stripe reported (`failedAt`). */
  async recordFailure(tx: Queryable, invoice: StripeInvoiceFacts, failedAt: Date): Promise<void> {
    const recorded = await this.records.within(tx).recordPaymentFailure(invoice, failedAt, this.graceMs);
    if (recorded.settledAt) return;
    this.metrics.stripePaymentFailures.inc();
    this.logger.warn(
      { customerId: invoice.customerId, stripeInvoiceId: invoice.stripeInvoiceId, suspendAt: recorded.suspendAt.toISOString() },
      'invoice payment failed; the customer is suspended if it is still unpaid when the grace period ends',
    );
  }

  /**
   * In the webhook's transaction: the invoice was paid (or voided). Lifts a non-payment suspension once no other
   * overdue invoice of the customer remains.
   */
  async recordSettled(accounts: AccountsService, tx: Queryable, invoice: StripeInvoiceFacts, settledAt: Date): Promise<void> {
    const records = this.records.within(tx);
    // Suspending and reactivating a customer both lock the customer first, so they take turns.
    await records.lockCustomer(invoice.customerId);
    await records.recordSettlement(invoice, settledAt);
    await this.liftIfNothingOverdue(accounts, records, invoice.customerId, invoice.stripeInvoiceId);
  }

  /**
   * In the webhook's transaction: a Stripe subscription of the customer is current (active or trialing), so its
   * latest invoice is paid: settles it if it is under dunning, then lifts a non-payment suspension once nothing
   * else is overdue (the `invoice.paid` event may come late, or not at all).
   */
  async recordSubscriptionCurrent(accounts: AccountsService, tx: Queryable, customerId: string, latestInvoiceId: string | undefined, at: Date): Promise<void> {
    const records = this.records.within(tx);
    await records.lockCustomer(customerId);
    if (latestInvoiceId) await records.settleAsPaid(latestInvoiceId, customerId, at);
    await this.liftIfNothingOverdue(accounts, records, customerId, latestInvoiceId);
  }

  /**
   * In the webhook's transaction: Stripe gave up collecting a subscription's invoice (status `unpaid`). The customer
   * is suspended now, as for an invoice past its grace period, until the invoices are paid.
   */
  async suspendNow(accounts: AccountsService, tx: Queryable, invoice: StripeInvoiceFacts, at: Date): Promise<void> {
    const records = this.records.within(tx);
    await records.lockCustomer(invoice.customerId);
    await this.recordFailure(tx, invoice, at);
    if (!(await records.markSuspendedBy(invoice.stripeInvoiceId, new Date(this.clock.now())))) return;
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
  private async liftIfNothingOverdue(accounts: AccountsService, records: StripeRecords, customerId: string, stripeInvoiceId: string | undefined): Promise<void> {
    // Overdue: unpaid past its grace period, whether or not it was the one that suspended the customer (a customer
    // already suspended is not suspended again for a second invoice).
    if (await records.hasOverdueInvoice(customerId, new Date(this.clock.now()))) return;
    const customer = await accounts.getCustomer(customerId);
    if (customer.status !== 'suspended' || !customer.statusReason?.startsWith(paymentSuspensionPrefix)) return;
    await accounts.updateCustomer(customer.id, { status: 'active', statusReason: null });
    this.metrics.stripePaymentSuspensions.inc({ action: 'lifted' });
    this.logger.info({ customerId: customer.id, stripeInvoiceId }, 'overdue invoices paid; customer reactivated');
  }

  /** The background check: suspends customers whose failed invoices are still unpaid after the grace period. */
  async suspendOverdue(): Promise<number> {
    const now = new Date(this.clock.now());
    const due = await this.records.overdueInvoices(now, 500);
    let suspended = 0;
    for (const stripeInvoiceId of due) {
      if (await this.suspendFor(stripeInvoiceId, now)) suspended += 1;
    }
    return suspended;
  }

  private suspendFor(stripeInvoiceId: string, now: Date): Promise<boolean> {
    return this.accounts.inTransaction(async (accounts, tx) => {
      const records = this.records.within(tx);
      const customerId = await records.customerOfStripeInvoice(stripeInvoiceId);
      if (!customerId) return false;
      await records.lockCustomer(customerId);
      // Suspended by an operator: leave the invoice due, so it still suspends once they reactivate the customer.
      if ((await accounts.getCustomer(customerId)).status === 'suspended') return false;
      // Re-checked under the lock: a payment may have arrived since the scan.
      const overdue = await records.suspendIfOverdue(stripeInvoiceId, now);
      if (!overdue) return false;
      const customer = await accounts.getCustomer(overdue.customerId);
      if (customer.status !== 'active') return false; // erased: its row refuses changes, and it never comes back
      await accounts.updateCustomer(customer.id, {
        status: 'suspended',
        statusReason: `${paymentSuspensionPrefix} Stripe invoice ${stripeInvoiceId} unpaid since ${overdue.paymentFailedAt.toISOString()}`,
      });
      this.metrics.stripePaymentSuspensions.inc({ action: 'suspended' });
      this.logger.warn({ customerId: customer.id, stripeInvoiceId }, 'grace period over with the invoice unpaid; customer suspended');
      return true;
    });
  }
}
