import type Stripe from 'stripe';
import type { AccountsService } from '../identity/index.js';
import type { Catalog } from '../catalog/index.js';
import { type Clock, TollgateError } from '../kernel/index.js';
import type { Queryable } from '../store/index.js';
import { fromStripeAmount, toStripeAmount } from './amounts.js';
import { customerIdMetadataKey, type StripeCustomers } from './customers.js';
import type { Dunning } from './dunning.js';
import { collectedByStripe, collectedThroughStripe, invoiceIdMetadataKey, invoiceToCollectColumns, meterModePlanIds, recordStripeInvoice, type InvoiceToCollect } from './invoices.js';
import { enqueueStripeWork, type StripeOutbox } from './outbox.js';
import { describeFailure, isRetryable } from './retry.js';

interface FoundInvoice {
  invoice: InvoiceToCollect;
  stripeInvoice: Stripe.Invoice;
}

export interface DriftReport {
  checkedAt: string;
  customers: {
    /** Ours with no Stripe customer carrying our id. */
    missing: string[];
    /** A Stripe customer carries our id but the mapping does not name it (a create whose answer was lost). */
    unrecorded: { customerId: string; stripeCustomerId: string }[];
    /** Several Stripe customers carry the same id of ours. */
    duplicated: { customerId: string; stripeCustomerIds: string[] }[];
  };
  invoices: {
    /** Finalized invoices Stripe should collect that it does not have, or has only as a draft. */
    missing: string[];
    unrecorded: { invoiceId: string; stripeInvoiceId: string }[];
    duplicated: { invoiceId: string; stripeInvoiceIds: string[] }[];
    /** Stripe's total differs from ours. */
    amountMismatch: { invoiceId: string; stripeInvoiceId: string; ours: string; stripe: string }[];
    /** Paid or voided in Stripe, still unsettled here (a webhook never arrived). */
    unsettled: { invoiceId: string; stripeInvoiceId: string; stripeStatus: string }[];
  };
  /** Meter mode: what Stripe's meters count against what we reported. */
  meters: {
    /** Meter event names of our plans that match no active Stripe meter. */
    missing: string[];
    /** Per customer and meter, when the totals differ: our units reported, and Stripe's sum over the same time. */
    totalMismatch: { customerId: string; eventName: string; ours: string; stripe: string }[];
    /** Usage reports whose meter events Stripe refused after accepting them (meter error reports). */
    failed: { subscriptionId: string; periodStart: string; failure: string }[];
  };
  deadLetters: number;
  /** With --repair: what was done about it. */
  repaired?: { requeued: number; recorded: number; settled: number };
}

/**
 * Compares Stripe's customers and invoices (found by our metadata ids) with ours and reports the drift; repair
 * re-queues what is missing, records what Stripe has that we lost track of, and settles what Stripe saw paid.
 * Duplicates and amount mismatches are for a person to look at.
 */
export class StripeReconciler {
  constructor(
    private readonly db: Queryable,
    private readonly stripe: Stripe,
    private readonly accounts: AccountsService,
    private readonly customers: StripeCustomers,
    private readonly dunning: Dunning,
    private readonly outbox: StripeOutbox,
    private readonly catalog: () => Catalog,
    private readonly clock: Clock,
  ) {}

  async reconcile(options: { repair: boolean }): Promise<DriftReport> {
    const stripeCustomers = await readFromStripe('customers', () => this.byMetadata(this.stripe.customers.list({ limit: 100 }), customerIdMetadataKey));
    const stripeInvoices = await readFromStripe('invoices', () => this.byMetadata(this.stripe.invoices.list({ limit: 100 }), invoiceIdMetadataKey));
    const report: DriftReport = {
      checkedAt: new Date(this.clock.now()).toISOString(),
      customers: { missing: [], unrecorded: [], duplicated: [] },
      invoices: { missing: [], unrecorded: [], duplicated: [], amountMismatch: [], unsettled: [] },
      meters: await this.meterDrift(),
      deadLetters: (await this.outbox.backlog()).dead,
    };

    const ourCustomers = await this.db.query<{ id: string; stripe_customer_id: string | null }>(
      'SELECT c.id, s.stripe_customer_id FROM customers c LEFT JOIN stripe_customers s ON s.customer_id = c.id ORDER BY c.id',
    );
    for (const customer of ourCustomers) {
      const found = stripeCustomers.get(customer.id) ?? [];
      if (found.length > 1) report.customers.duplicated.push({ customerId: customer.id, stripeCustomerIds: found.map((c) => c.id) });
      if (found.length === 0) report.customers.missing.push(customer.id);
      else if (!customer.stripe_customer_id) report.customers.unrecorded.push({ customerId: customer.id, stripeCustomerId: found[0]!.id });
    }

    const ourInvoices = await this.db.query<InvoiceToCollect & { stripe_invoice_id: string | null; settled_at: Date | null }>(
      `SELECT ${invoiceToCollectColumns('i', '$1')}, s.stripe_invoice_id, s.settled_at
       FROM invoices i LEFT JOIN stripe_invoices s ON s.invoice_id = i.id
       WHERE i.status = 'finalized' ORDER BY i.id`,
      [meterModePlanIds(this.catalog())],
    );
    const unrecorded: FoundInvoice[] = [];
    const unsettled: FoundInvoice[] = [];
    for (const invoice of ourInvoices.filter(collectedThroughStripe)) {
      const found = stripeInvoices.get(invoice.id) ?? [];
      if (found.length > 1) report.invoices.duplicated.push({ invoiceId: invoice.id, stripeInvoiceIds: found.map((i) => i.id) });
      const stripeInvoice = found[0];
      if (!stripeInvoice || stripeInvoice.status === 'draft') {
        report.invoices.missing.push(invoice.id);
        continue;
      }
      if (!invoice.stripe_invoice_id) {
        report.invoices.unrecorded.push({ invoiceId: invoice.id, stripeInvoiceId: stripeInvoice.id });
        unrecorded.push({ invoice, stripeInvoice });
      }
      // Compared in Stripe's units, which are not always ours (ISK), with our amount rounded as Stripe collects it
      // (three-decimal currencies); reported in our units.
      const collected = collectedByStripe(invoice);
      if (stripeInvoice.total !== toStripeAmount(collected, invoice.currency)) {
        report.invoices.amountMismatch.push({
          invoiceId: invoice.id,
          stripeInvoiceId: stripeInvoice.id,
          ours: String(collected),
          stripe: String(fromStripeAmount(stripeInvoice.total, invoice.currency)),
        });
      }
      if ((stripeInvoice.status === 'paid' || stripeInvoice.status === 'void') && !invoice.settled_at) {
        report.invoices.unsettled.push({ invoiceId: invoice.id, stripeInvoiceId: stripeInvoice.id, stripeStatus: stripeInvoice.status });
        unsettled.push({ invoice, stripeInvoice });
      }
    }

    if (options.repair) report.repaired = await this.repair(report, unrecorded, unsettled);
    return report;
  }

  private async repair(report: DriftReport, unrecorded: FoundInvoice[], unsettled: FoundInvoice[]): Promise<NonNullable<DriftReport['repaired']>> {
    const repaired = { requeued: 0, recorded: 0, settled: 0 };
    for (const { customerId, stripeCustomerId } of report.customers.unrecorded) {
      await this.customers.remember(customerId, stripeCustomerId);
      repaired.recorded += 1;
    }
    for (const { invoice, stripeInvoice } of unrecorded) {
      await recordStripeInvoice(this.db, invoice, stripeInvoice);
      repaired.recorded += 1;
    }
    for (const customerId of report.customers.missing) {
      await enqueueStripeWork(this.db, 'customer.sync', customerId);
      repaired.requeued += 1;
    }
    for (const invoiceId of report.invoices.missing) {
      await enqueueStripeWork(this.db, 'invoice.finalized', invoiceId);
      repaired.requeued += 1;
    }
    for (const { invoice, stripeInvoice } of unsettled) {
      const facts = { stripeInvoiceId: stripeInvoice.id, customerId: invoice.customer_id, invoiceId: invoice.id, status: stripeInvoice.status ?? 'paid' };
      const settledAt = new Date((stripeInvoice.status_transitions.paid_at ?? stripeInvoice.status_transitions.voided_at ?? stripeInvoice.created) * 1000);
      await this.accounts.inTransaction((accounts, tx) => this.dunning.recordSettled(accounts, tx, facts, settledAt));
      repaired.settled += 1;
    }
    return repaired;
  }

  /**
   * Compares, per customer and meter, the units we reported with what the Stripe meter counts, over all the time
   * since the customer's first reported period (Stripe sums the events in [start, end), minute-aligned). Customers
   * with a report in flight are left out: Stripe may have it or not yet.
   */
  private async meterDrift(): Promise<DriftReport['meters']> {
    const drift: DriftReport['meters'] = { missing: [], totalMismatch: [], failed: [] };
    const plansByEvent = new Map<string, string[]>();
    for (const plan of this.catalog().plans.values()) {
      const eventName = plan.stripe?.meter_event_name;
      if (eventName) plansByEvent.set(eventName, [...(plansByEvent.get(eventName) ?? []), plan.id]);
    }
    if (plansByEvent.size === 0) return drift;
    const meters = await readFromStripe('billing meters', async () => {
      const all: Stripe.Billing.Meter[] = [];
      for await (const meter of this.stripe.billing.meters.list({ status: 'active', limit: 100 })) all.push(meter);
      return all;
    });
    const minute = 60;
    const end = (Math.ceil(this.clock.now() / 1000 / minute) + 10) * minute; // Stripe takes events up to 5 min ahead
    for (const [eventName, planIds] of plansByEvent) {
      const meter = meters.find((candidate) => candidate.event_name === eventName);
      if (!meter) {
        drift.missing.push(eventName);
        continue;
      }
      const customers = await this.db.query<{ customer_id: string; stripe_customer_id: string; reported: string; first: Date }>(
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
      for (const customer of customers) {
        const start = Math.floor(customer.first.getTime() / 1000 / minute) * minute;
        const counted = await readFromStripe(`the ${eventName} meter's total`, async () => {
          let sum = 0;
          for await (const summary of this.stripe.billing.meters.listEventSummaries(meter.id, { customer: customer.stripe_customer_id, start_time: start, end_time: end, limit: 100 })) {
            sum += summary.aggregated_value;
          }
          return sum;
        });
        if (String(counted) !== customer.reported) {
          drift.totalMismatch.push({ customerId: customer.customer_id, eventName, ours: customer.reported, stripe: String(counted) });
        }
      }
    }
    const failed = await this.db.query<{ subscription_id: string; period_start: Date; failure: string }>(
      'SELECT subscription_id, period_start, failure FROM stripe_usage_reports WHERE failed_at IS NOT NULL ORDER BY subscription_id, period_start',
    );
    drift.failed = failed.map((row) => ({ subscriptionId: row.subscription_id, periodStart: row.period_start.toISOString(), failure: row.failure }));
    return drift;
  }

  /** Every object of a Stripe list that carries one of our ids in `key`, grouped by that id. */
  private async byMetadata<T extends { id: string; metadata: Stripe.Metadata | null }>(list: AsyncIterable<T>, key: string): Promise<Map<string, T[]>> {
    const grouped = new Map<string, T[]>();
    for await (const object of list) {
      const ourId = object.metadata?.[key];
      if (ourId) grouped.set(ourId, [...(grouped.get(ourId) ?? []), object]);
    }
    return grouped;
  }
}

/** Attempts of one reconcile read, and the pause before each retry: the operator waits, so the bound is short. */
const readRetryDelaysMs = [200, 800];

/**
 * A read of Stripe for reconciliation, retried a few times if the failure is transient; a read that still fails is a
 * 502 naming Stripe (the operator's request did nothing wrong, and nothing was repaired).
 */
export async function readFromStripe<T>(what: string, read: () => Promise<T>, delaysMs: readonly number[] = readRetryDelaysMs): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      const delay = delaysMs[attempt];
      if (delay === undefined || !isRetryable(error)) {
        throw new TollgateError('bad_gateway', `reading ${what} from Stripe failed (after ${attempt + 1} attempts): ${describeFailure(error)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
