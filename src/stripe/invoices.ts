import type Stripe from 'stripe';
import type { Catalog } from '../catalog/index.js';
import { notFound } from '../kernel/index.js';
import type { InvoiceRow } from '../billing/index.js';
import type { Queryable } from '../store/index.js';
import { roundForStripe, roundLinesForStripe, toStripeAmount } from './amounts.js';
import type { StripeCustomers } from './customers.js';
import type { StripeWork } from './work.js';

/** Metadata keys on Stripe invoices and invoice items naming our invoice and line. */
export const invoiceIdMetadataKey = 'tollgate_invoice_id';
const lineMetadataKey = 'tollgate_line';

/** The columns of an invoice that collecting it through Stripe reads. */
const columnsToCollect = ['id', 'customer_id', 'subscription_id', 'plan_id', 'period_start', 'period_end', 'currency', 'mode', 'status', 'total'] as const;

/** An invoice as collecting it through Stripe reads it, with `stripe_total`: the part Stripe collects. */
export type InvoiceToCollect = Pick<InvoiceRow, (typeof columnsToCollect)[number]> & { stripe_total: string };

interface LineRow {
  position: number;
  kind: string;
  description: string;
  amount: string;
}

/** Plans in meter mode: Stripe prices and bills them itself (their usage goes to a Stripe meter). */
export function meterModePlanIds(catalog: Catalog): string[] {
  return [...catalog.plans.values()].filter((plan) => plan.stripe?.meter_event_name !== undefined).map((plan) => plan.id);
}

/**
 * SQL: whether invoice line `line` is one Stripe collects. Revenue-share lines are owed to partners, not billed; the
 * lines of meter-mode plans (ids in the text[] parameter `plans`) are billed by Stripe itself, also for the part of a
 * period before the customer moved to another plan.
 */
const collectedLine = (line: string, plans: string) => `${line}.kind <> 'revenue_share' AND NOT (${line}.plan_id = ANY(${plans}::text[]))`;

/** SQL: the columns of InvoiceToCollect for invoice `invoice`, with meter-mode plan ids in the parameter `plans`. */
export const invoiceToCollectColumns = (invoice: string, plans: string) =>
  `${columnsToCollect.map((column) => `${invoice}.${column}`).join(', ')},
   (SELECT COALESCE(sum(l.amount), 0)::text FROM invoice_lines l WHERE l.invoice_id = ${invoice}.id AND ${collectedLine('l', plans)}) AS stripe_total`;

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
    private readonly db: Queryable,
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
    await recordStripeInvoice(this.db, invoice, stripeInvoice);
    if (stripeInvoice.status !== 'draft') return;
    await this.addLines(invoice, stripeInvoice.id, stripeCustomerId, work, justCreated);
    const finalized = await this.stripe.invoices.finalizeInvoice(
      stripeInvoice.id,
      { auto_advance: true },
      { idempotencyKey: work.key('invoice', invoice.id, 'finalize') },
    );
    await recordStripeInvoice(this.db, invoice, finalized);
  }

  private async existing(invoice: InvoiceToCollect, stripeCustomerId: string, work: StripeWork): Promise<Stripe.Invoice | undefined> {
    const [known] = await this.db.query<{ stripe_invoice_id: string }>('SELECT stripe_invoice_id FROM stripe_invoices WHERE invoice_id = $1', [invoice.id]);
    if (known) return this.stripe.invoices.retrieve(known.stripe_invoice_id);
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
    const lines = await this.db.query<LineRow>(
      `SELECT position, kind, description, amount FROM invoice_lines l WHERE invoice_id = $1 AND ${collectedLine('l', '$2')} ORDER BY position`,
      [invoice.id, meterModePlanIds(this.catalog())],
    );
    const collected = roundLinesForStripe(lines.map((line) => BigInt(line.amount)), invoice.currency);
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
    const [row] = await this.db.query<InvoiceToCollect>(`SELECT ${invoiceToCollectColumns('i', '$2')} FROM invoices i WHERE i.id = $1`, [
      id,
      meterModePlanIds(this.catalog()),
    ]);
    if (!row) throw notFound('invoice', id);
    return row;
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
  db: Queryable,
  invoice: Pick<InvoiceToCollect, 'id' | 'customer_id' | 'stripe_total' | 'currency'>,
  stripeInvoice: Stripe.Invoice,
): Promise<void> {
  await db.query(
    `INSERT INTO stripe_invoices (stripe_invoice_id, invoice_id, customer_id, status, rounding) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (stripe_invoice_id) DO UPDATE SET
       status = CASE WHEN stripe_invoices.settled_at IS NULL THEN EXCLUDED.status ELSE stripe_invoices.status END,
       invoice_id = EXCLUDED.invoice_id,
       rounding = EXCLUDED.rounding`,
    [stripeInvoice.id, invoice.id, invoice.customer_id, stripeInvoice.status ?? 'draft', String(collectedByStripe(invoice) - BigInt(invoice.stripe_total))],
  );
}

const unixSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

