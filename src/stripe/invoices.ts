import type Stripe from 'stripe';
import type { Catalog } from '../catalog/index.js';
import { notFound } from '../kernel/index.js';
import { roundForStripe, roundLinesForStripe, toStripeAmount } from './amounts.js';
import type { StripeCustomers } from './customers.js';
import type { InvoiceToCollect, StripeRecords } from './records.js';
import type { StripeWork } from './work.js';

/** Metadata keys on Stripe invoices and invoice items naming our invoice and line. */
export const invoiceIdMetadataKey = 'tollgate_invoice_id';
const lineMetadataKey = 'tollgate_line';

/** Plans in meter mode: Stripe prices and bills them itself (their usage goes to a Stripe meter). */
export function meterModePlanIds(catalog: Catalog): string[] {
  return [...catalog.plans.values()].filter((plan) => plan.stripe?.meter_event_name !== undefined).map((plan) => plan.id);
}

/**
 * Whether Stripe collects this invoice: finalized, postpaid (a prepaid one was paid from the wallet), and something
 * to pay on the lines it collects.
 */
export function collectedThroughStripe(invoice: InvoiceToCollect): boolean {
  return invoice.status === 'finalized' && invoice.mode === 'postpaid' && BigInt(invoice.stripe_total) > 0n;
}

/**
 * `invoice.finalized`: our finalized invoice becomes a Stripe invoice with one invoice item per line, finalized with
 * automatic collection. Each step first looks at what Stripe already has (a retry after a lost answer), so the
 * invoice and each line exist once.
 */
export class StripeInvoicePush {
  constructor(
    private readonly records: StripeRecords,
    private readonly stripe: Stripe,
    private readonly customers: StripeCustomers,
    private readonly catalog: () => Catalog,
  ) {}

  async push(work: StripeWork): Promise<void> {
    const invoice = await this.invoice(work.item.subjectId);
    if (!collectedThroughStripe(invoice)) return;
    const stripeCustomerId = await this.customers.ensure(invoice.customer_id, work);
    let stripeInvoice = await this.existing(invoice, stripeCustomerId, work);
    const justCreated = !stripeInvoice;
    stripeInvoice ??= await this.stripe.invoices.create(
      {
        customer: stripeCustomerId,
        currency: invoice.currency.toLowerCase(),
        collection_method: 'charge_automatically',
        // Stripe would finalize an auto-advancing draft on its own, possibly before every line is on it.
        auto_advance: false,
        pending_invoice_items_behavior: 'exclude',
        description: `${invoice.plan_id}: ${invoice.period_start.toISOString().slice(0, 10)} to ${invoice.period_end.toISOString().slice(0, 10)}`,
        metadata: { [invoiceIdMetadataKey]: invoice.id, tollgate_subscription_id: invoice.subscription_id },
      },
      { idempotencyKey: work.key('invoice', invoice.id, 'create') },
    );
    await recordStripeInvoice(this.records, invoice, stripeInvoice);
    if (stripeInvoice.status !== 'draft') return;
    await this.addLines(invoice, stripeInvoice.id, stripeCustomerId, work, justCreated);
    const finalized = await this.stripe.invoices.finalizeInvoice(
      stripeInvoice.id,
      { auto_advance: true },
      { idempotencyKey: work.key('invoice', invoice.id, 'finalize') },
    );
    await recordStripeInvoice(this.records, invoice, finalized);
  }

  private async existing(invoice: InvoiceToCollect, stripeCustomerId: string, work: StripeWork): Promise<Stripe.Invoice | undefined> {
    const known = await this.records.stripeInvoiceIdOf(invoice.id);
    if (known) return this.stripe.invoices.retrieve(known);
    if (!work.mayHaveApplied) return undefined;
    for await (const candidate of this.stripe.invoices.list({ customer: stripeCustomerId, limit: 100 })) {
      if (candidate.metadata?.[invoiceIdMetadataKey] === invoice.id) return candidate;
    }
    return undefined;
  }

  /** Adds the lines Stripe collects that it does not have yet. */
  private async addLines(invoice: InvoiceToCollect, stripeInvoiceId: string, stripeCustomerId: string, work: StripeWork, justCreated: boolean): Promise<void> {
    const present = new Set<string>();
    if (!justCreated) {
      for await (const item of this.stripe.invoiceItems.list({ invoice: stripeInvoiceId, limit: 100 })) {
        const line = item.metadata?.[lineMetadataKey];
        if (line) present.add(line);
      }
    }
    const lines = await this.records.collectedLines(invoice.id, meterModePlanIds(this.catalog()));
    const collected = roundLinesForStripe(lines.map((line) => line.amount), invoice.currency);
    for (const [index, line] of lines.entries()) {
      const lineId = String(line.position);
      if (present.has(lineId)) continue;
      await this.stripe.invoiceItems.create(
        {
          customer: stripeCustomerId,
          invoice: stripeInvoiceId,
          amount: toStripeAmount(collected[index]!, invoice.currency),
          currency: invoice.currency.toLowerCase(),
          description: line.description,
          period: { start: unixSeconds(invoice.period_start), end: unixSeconds(invoice.period_end) },
          metadata: { [invoiceIdMetadataKey]: invoice.id, [lineMetadataKey]: lineId },
        },
        { idempotencyKey: work.key('invoice', invoice.id, 'line', lineId) },
      );
    }
  }

  private async invoice(id: string): Promise<InvoiceToCollect> {
    const invoice = await this.records.invoiceToCollect(id, meterModePlanIds(this.catalog()));
    if (!invoice) throw notFound('invoice', id);
    return invoice;
  }
}

/** What Stripe collects for the invoice (its lines rounded as Stripe requires), in our minor units. */
export function collectedByStripe(invoice: Pick<InvoiceToCollect, 'stripe_total' | 'currency'>): bigint {
  return roundForStripe(BigInt(invoice.stripe_total), invoice.currency);
}

/**
 * Records which Stripe invoice is ours, its status, and the rounding Stripe's collection adds to our amount; a
 * settled invoice keeps the status it settled with.
 */
export async function recordStripeInvoice(
  records: Pick<StripeRecords, 'recordStripeInvoice'>,
  invoice: Pick<InvoiceToCollect, 'id' | 'customer_id' | 'stripe_total' | 'currency'>,
  stripeInvoice: Stripe.Invoice,
): Promise<void> {
  await records.recordStripeInvoice({
    stripeInvoiceId: stripeInvoice.id,
    invoiceId: invoice.id,
    customerId: invoice.customer_id,
    status: stripeInvoice.status ?? 'draft',
    rounding: collectedByStripe(invoice) - BigInt(invoice.stripe_total),
  });
}

const unixSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

