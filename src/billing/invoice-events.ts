import { eventTypes, type OutboxEvent } from '../events/index.js';
import type { StoredInvoice } from './records.js';

/**
 * A finalized invoice as the event stream carries it. Snake case like the other events; amounts in integer minor
 * units, as strings (exact at any size); counts as numbers, as the admin API gives them. Lines: GET /v1/invoices/{id}.
 */
export function invoiceFinalizedEvent(invoice: StoredInvoice): OutboxEvent {
  const finalizedAt = invoice.finalizedAt ?? invoice.ratedAt;
  return {
    type: eventTypes.invoiceFinalized,
    customerId: invoice.customerId,
    occurredAt: finalizedAt,
    data: {
      id: invoice.id,
      customer_id: invoice.customerId,
      subscription_id: invoice.subscriptionId,
      product_id: invoice.productId,
      plan_id: invoice.planId,
      period: { start: new Date(invoice.periodStart).toISOString(), end: new Date(invoice.periodEnd).toISOString() },
      currency: invoice.currency,
      mode: invoice.mode,
      total_minor: invoice.total.toString(),
      revenue_share_minor: invoice.revenueShare.toString(),
      calls: Number(invoice.calls),
      units: Number(invoice.units),
      finalized_at: new Date(finalizedAt).toISOString(),
    },
  };
}
