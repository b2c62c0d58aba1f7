// Invoice items (pending on the customer or on a draft invoice) and invoices: create draft, retrieve, list, list
// lines, finalize, pay, void. Totals are recomputed from the invoice's items whenever they change.
import type Stripe from 'stripe';
import { z } from 'zod';
import { exclusiveParams, invalidParam, invalidRequest, missingParam } from '../errors.js';
import { decimalString, fromFixture } from '../fixtures.js';
import { newId, randomBase62 } from '../ids.js';
import { lineAmount, requireCollectible } from '../money.js';
import {
  boolean,
  currency,
  decimal,
  endpoint,
  integer,
  listParams,
  metadata,
  noParams,
  oneOf,
  parseParams,
  positiveInteger,
  text,
} from '../params.js';
import { pathParam, route, type ApiRequest, type Route } from '../router.js';
import { listPage, newestFirst, requireObject, updatedMetadata, type StripeState } from '../state.js';
import { createInlinePrice, unitAmountDecimal } from './catalog.js';
import { requireCustomer } from './customers.js';
import { cardDeclined, chargeOutcome } from './payments.js';

const DAY = 86_400;
/** Stripe retries a failed automatic collection days later; three days is Smart Retries' first step. */
const RETRY_DELAY = 3 * DAY;
/** Stripe advances an `auto_advance` invoice (finalizes a draft, then attempts payment) about an hour later. */
const AUTO_ADVANCE_DELAY = 3_600;
/** The invoice object embeds the first page of its lines. */
const EMBEDDED_LINES = 10;

const invoiceItemParams = endpoint({
  customer: text(),
  amount: integer().optional(),
  currency: currency().optional(),
  description: text().optional(),
  discountable: boolean().optional(),
  invoice: text().optional(),
  metadata: metadata().optional(),
  period: z.strictObject({ start: integer(), end: integer() }).optional(),
  price_data: z
    .strictObject({
      currency: currency(),
      product: text(),
      tax_behavior: oneOf(['exclusive', 'inclusive', 'unspecified']).optional(),
      unit_amount: integer().optional(),
      unit_amount_decimal: decimal().optional(),
    })
    .optional(),
  pricing: z.strictObject({ price: text().optional() }).optional(),
  quantity: positiveInteger().optional(),
  unit_amount_decimal: decimal().optional(),
});

const listInvoiceItemParams = endpoint({
  ...listParams,
  customer: text().optional(),
  invoice: text().optional(),
  pending: boolean().optional(),
});

const invoiceParams = endpoint({
  customer: text(),
  auto_advance: boolean().optional(),
  collection_method: oneOf(['charge_automatically', 'send_invoice']).optional(),
  currency: currency().optional(),
  days_until_due: integer().optional(),
  description: text().optional(),
  due_date: integer().optional(),
  footer: text().optional(),
  metadata: metadata().optional(),
  pending_invoice_items_behavior: oneOf(['exclude', 'include']).optional(),
});

const listInvoiceParams = endpoint({
  ...listParams,
  collection_method: oneOf(['charge_automatically', 'send_invoice']).optional(),
  customer: text().optional(),
  status: oneOf(['draft', 'open', 'paid', 'uncollectible', 'void']).optional(),
});

const finalizeParams = endpoint({ auto_advance: boolean().optional() });
const payParams = endpoint({
  off_session: boolean().optional(),
  paid_out_of_band: boolean().optional(),
  payment_method: text().optional(),
});

export function requireInvoice(state: StripeState, id: string, param?: string): Stripe.Invoice {
  return requireObject(state.invoices, id, 'invoice', param);
}

interface ItemPricing {
  currency: string | undefined;
  unitAmountDecimal: string;
  /** An existing price (`pricing[price]`). */
  price: Stripe.Price | null;
  /** The product of the inline price that `price_data` asks for, created once the request is valid. */
  inlinePriceProduct: string | null;
}

/** Where the item's unit amount comes from: exactly one of `amount`, `unit_amount_decimal`, `pricing[price]` or
 * `price_data` (with `amount`, the amount is the item's total). */
function itemPricing(input: z.output<typeof invoiceItemParams>, state: StripeState): ItemPricing {
  const sources = (['amount', 'unit_amount_decimal', 'pricing', 'price_data'] as const).filter(
    (name) => input[name] !== undefined,
  );
  const [, secondSource] = sources;
  if (sources.length === 0) {
    throw invalidParam(
      'amount',
      'You must specify one of these parameters: amount, unit_amount_decimal, pricing[price], price_data.',
      'parameter_missing',
    );
  }
  if (secondSource !== undefined) {
    throw exclusiveParams(secondSource, sources);
  }
  if (input.amount !== undefined && (input.quantity ?? 1) !== 1) {
    throw exclusiveParams('quantity', ['amount', 'quantity']);
  }
  if (input.price_data) {
    const { price_data: data } = input;
    const unitAmount = unitAmountDecimal(data.unit_amount, data.unit_amount_decimal, 'price_data[');
    const product = requireObject(state.products, data.product, 'product', 'price_data[product]');
    return { currency: data.currency, unitAmountDecimal: unitAmount, price: null, inlinePriceProduct: product.id };
  }
  if (input.pricing) {
    const priceId = input.pricing.price;
    if (priceId === undefined) throw missingParam('pricing[price]');
    const price = requireObject(state.prices, priceId, 'price', 'pricing[price]');
    if (price.type !== 'one_time') {
      throw invalidParam(
        'pricing[price]',
        `The price specified (${price.id}) is set to \`type=recurring\` but this field only accepts prices with ` +
          '`type=one_time`.',
      );
    }
    if (price.unit_amount_decimal === null) {
      throw invalidParam('pricing[price]', `The price specified (${price.id}) has no unit amount.`);
    }
    return {
      currency: price.currency,
      unitAmountDecimal: String(price.unit_amount_decimal),
      price,
      inlinePriceProduct: null,
    };
  }
  return {
    currency: input.currency,
    unitAmountDecimal: input.unit_amount_decimal ?? String(input.amount),
    price: null,
    inlinePriceProduct: null,
  };
}

function createInvoiceItem({ params, state, now }: ApiRequest): Stripe.InvoiceItem {
  const input = parseParams(invoiceItemParams, params);
  const customer = requireCustomer(state, input.customer, 'customer');
  const invoice = input.invoice === undefined ? null : requireInvoice(state, input.invoice, 'invoice');
  if (invoice && invoice.customer !== customer.id) {
    throw invalidRequest(`The invoice ${invoice.id} belongs to a different customer.`, { param: 'invoice' });
  }
  if (invoice && invoice.status !== 'draft') {
    throw invalidRequest(`Invoice ${invoice.id} is no longer editable: you can only add items to a draft invoice.`, {
      code: 'invoice_not_editable',
      param: 'invoice',
    });
  }
  const pricing = itemPricing(input, state);
  if (input.currency !== undefined && pricing.currency !== undefined && input.currency !== pricing.currency) {
    throw invalidParam('currency', `The currency ${input.currency} does not match the price's (${pricing.currency}).`);
  }
  const itemCurrency = pricing.currency ?? invoice?.currency ?? customer.currency;
  if (!itemCurrency) throw missingParam('currency');
  if (customer.currency && customer.currency !== itemCurrency) {
    throw invalidRequest(
      'You cannot combine currencies on a single customer. This customer has had a subscription, coupon, or ' +
        `invoice item with currency ${customer.currency}`,
      { param: 'currency' },
    );
  }
  const quantity = input.quantity ?? 1;
  const amount = input.amount ?? lineAmount(quantity, pricing.unitAmountDecimal);
  requireCollectible(amount, itemCurrency, input.amount === undefined ? 'unit_amount' : 'amount');
  const price =
    pricing.price ??
    (pricing.inlinePriceProduct === null
      ? null
      : createInlinePrice(state, now, {
          currency: itemCurrency,
          product: pricing.inlinePriceProduct,
          unitAmountDecimal: pricing.unitAmountDecimal,
        }));
  const item = fromFixture('invoiceitem', {
    id: newId('ii'),
    amount,
    currency: itemCurrency,
    customer: customer.id,
    date: now,
    description: input.description ?? null,
    discountable: input.discountable ?? amount >= 0,
    discounts: [],
    invoice: invoice?.id ?? null,
    livemode: false,
    metadata: updatedMetadata({}, input.metadata),
    period: { start: input.period?.start ?? now, end: input.period?.end ?? now },
    proration: false,
    quantity,
    tax_rates: [],
    test_clock: null,
    parent: null,
    pricing: {
      type: 'price_details',
      ...(price && { price_details: { price: price.id, product: String(price.product) } }),
      unit_amount_decimal: decimalString(input.amount === undefined ? pricing.unitAmountDecimal : amount),
    },
    net_amount: amount,
    customer_account: null,
    quantity_decimal: decimalString(quantity),
  });
  customer.currency ??= itemCurrency;
  state.invoiceItems.set(item.id, item);
  if (invoice) refreshInvoice(state, invoice);
  return item;
}

function retrieveInvoiceItem(request: ApiRequest): Stripe.InvoiceItem {
  parseParams(noParams, request.params);
  return requireObject(request.state.invoiceItems, pathParam(request), 'invoiceitem');
}

function listInvoiceItems({ params, state }: ApiRequest): Stripe.ApiList<Stripe.InvoiceItem> {
  const input = parseParams(listInvoiceItemParams, params);
  const matching = newestFirst(state.invoiceItems.values()).filter(
    (item) =>
      (input.customer === undefined || item.customer === input.customer) &&
      (input.invoice === undefined || item.invoice === input.invoice) &&
      (input.pending === undefined || (item.invoice === null) === input.pending),
  );
  return listPage(matching, input, '/v1/invoiceitems', 'invoiceitem');
}

function deleteInvoiceItem(request: ApiRequest): Stripe.DeletedInvoiceItem {
  parseParams(noParams, request.params);
  const { state } = request;
  const item = requireObject(state.invoiceItems, pathParam(request), 'invoiceitem');
  const invoice = item.invoice === null ? null : requireInvoice(state, String(item.invoice));
  if (invoice && invoice.status !== 'draft') {
    throw invalidRequest('This invoice item is attached to an invoice that is no longer editable.', {
      code: 'invoice_not_editable',
    });
  }
  state.invoiceItems.delete(item.id);
  state.deletedIds.add(item.id);
  if (invoice) refreshInvoice(state, invoice);
  return { id: item.id, object: 'invoiceitem', deleted: true };
}

function lineFor(item: Stripe.InvoiceItem, invoiceId: string, lineId: string): Stripe.InvoiceLineItem {
  return fromFixture('line_item', {
    id: lineId,
    amount: item.amount,
    currency: item.currency,
    description: item.description,
    discount_amounts: [],
    discountable: item.discountable,
    discounts: [],
    invoice: invoiceId,
    livemode: false,
    metadata: item.metadata ?? {},
    period: item.period,
    quantity: item.quantity,
    subscription: null,
    pretax_credit_amounts: [],
    taxes: [],
    parent: {
      type: 'invoice_item_details',
      invoice_item_details: {
        invoice_item: item.id,
        proration: false,
        proration_details: { credited_items: null },
        subscription: null,
      },
      subscription_item_details: null,
    },
    pricing: item.pricing,
    subtotal: item.amount,
    quantity_decimal: item.quantity_decimal,
  });
}

/** Rebuilds a draft invoice's lines and totals from the invoice items attached to it, keeping line ids stable. */
function refreshInvoice(state: StripeState, invoice: Stripe.Invoice): void {
  const lineIdByItem = new Map(
    invoice.lines.data.map((line) => [line.parent?.invoice_item_details?.invoice_item, line.id] as const),
  );
  const lines = [...state.invoiceItems.values()]
    .filter((item) => item.invoice === invoice.id)
    .map((item) => lineFor(item, invoice.id, lineIdByItem.get(item.id) ?? newId('il')));
  const total = lines.reduce((sum, line) => sum + line.amount, 0);
  const amountDue = Math.max(total, 0);
  Object.assign(invoice, {
    lines: { ...invoice.lines, data: lines, has_more: false },
    subtotal: total,
    subtotal_excluding_tax: total,
    total,
    total_excluding_tax: total,
    amount_due: amountDue,
    amount_remaining: amountDue - invoice.amount_paid,
  } satisfies Partial<Stripe.Invoice>);
}

/** The invoice as the API returns it: only the first page of lines is embedded. */
export function renderInvoice(invoice: Stripe.Invoice): Stripe.Invoice {
  const { data } = invoice.lines;
  return {
    ...invoice,
    lines: { ...invoice.lines, data: data.slice(0, EMBEDDED_LINES), has_more: data.length > EMBEDDED_LINES },
  };
}

function createInvoice({ params, state, now }: ApiRequest): Stripe.Invoice {
  const input = parseParams(invoiceParams, params);
  const collectionMethod = input.collection_method ?? 'charge_automatically';
  if (collectionMethod === 'send_invoice' && input.days_until_due === undefined && input.due_date === undefined) {
    throw invalidParam(
      'days_until_due',
      'Invoices with `collection_method=send_invoice` must have either `days_until_due` or `due_date`.',
      'parameter_missing',
    );
  }
  if (collectionMethod === 'charge_automatically' && (input.days_until_due ?? input.due_date) !== undefined) {
    throw invalidParam(
      input.days_until_due === undefined ? 'due_date' : 'days_until_due',
      'Invoices with `collection_method=charge_automatically` cannot have a due date.',
    );
  }
  const customer = requireCustomer(state, input.customer, 'customer');
  const invoiceCurrency = input.currency ?? customer.currency ?? 'usd';
  const autoAdvance = input.auto_advance ?? false;
  const id = newId('in');
  const invoice = fromFixture('invoice', {
    id,
    account_country: 'US',
    account_name: 'Tollgate Test',
    account_tax_ids: null,
    amount_due: 0,
    amount_paid: 0,
    amount_remaining: 0,
    amount_shipping: 0,
    application: null,
    attempt_count: 0,
    attempted: false,
    auto_advance: autoAdvance,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null, provider: null, status: null },
    billing_reason: 'manual',
    collection_method: collectionMethod,
    created: now,
    currency: invoiceCurrency,
    custom_fields: null,
    customer: customer.id,
    customer_address: customer.address,
    customer_email: customer.email,
    customer_name: customer.name,
    customer_phone: customer.phone,
    customer_shipping: customer.shipping,
    customer_tax_exempt: customer.tax_exempt ?? null,
    customer_tax_ids: [],
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: input.description ?? null,
    discounts: [],
    due_date: input.due_date ?? (input.days_until_due === undefined ? null : now + input.days_until_due * DAY),
    effective_at: null,
    ending_balance: null,
    footer: input.footer ?? null,
    from_invoice: null,
    hosted_invoice_url: null,
    invoice_pdf: null,
    issuer: { type: 'self' },
    last_finalization_error: null,
    latest_revision: null,
    lines: { object: 'list', data: [], has_more: false, url: `/v1/invoices/${id}/lines` },
    livemode: false,
    metadata: updatedMetadata({}, input.metadata),
    next_payment_attempt: null,
    number: null,
    on_behalf_of: null,
    payment_settings: { default_mandate: null, payment_method_options: null, payment_method_types: null },
    period_end: now,
    period_start: now,
    post_payment_credit_notes_amount: 0,
    pre_payment_credit_notes_amount: 0,
    receipt_number: null,
    rendering: null,
    shipping_cost: null,
    shipping_details: null,
    starting_balance: 0,
    statement_descriptor: null,
    status: 'draft',
    status_transitions: { finalized_at: null, marked_uncollectible_at: null, paid_at: null, voided_at: null },
    subtotal: 0,
    subtotal_excluding_tax: 0,
    test_clock: null,
    total: 0,
    total_discount_amounts: [],
    total_excluding_tax: 0,
    webhooks_delivered_at: null,
    automatically_finalizes_at: autoAdvance ? now + AUTO_ADVANCE_DELAY : null,
    total_pretax_credit_amounts: [],
    total_taxes: [],
    amount_overpaid: 0,
    parent: null,
    customer_account: null,
  });
  customer.currency ??= invoiceCurrency;
  state.invoices.set(id, invoice);
  // Since API version 2022-08-01 pending items stay pending unless the request asks to include them.
  if (input.pending_invoice_items_behavior === 'include') {
    for (const item of state.invoiceItems.values()) {
      if (item.customer === customer.id && item.invoice === null && item.currency === invoiceCurrency) item.invoice = id;
    }
    refreshInvoice(state, invoice);
  }
  return renderInvoice(invoice);
}

/** Draft → open (or straight to paid when nothing is due), numbered from the customer's invoice sequence. */
export function finalizeInvoice(
  state: StripeState,
  invoice: Stripe.Invoice,
  now: number,
  autoAdvance = invoice.auto_advance ?? false,
): void {
  if (invoice.status !== 'draft') {
    throw invalidRequest("This invoice is already finalized, you can't re-finalize a non-draft invoice.", {
      code: 'invoice_not_editable',
    });
  }
  const customer = requireCustomer(state, String(invoice.customer));
  const sequence = customer.next_invoice_sequence ?? 1;
  customer.next_invoice_sequence = sequence + 1;
  const hostedPath = `https://invoice.stripe.com/i/acct_tollgate/test_${randomBase62(40)}`;
  Object.assign(invoice, {
    status: 'open',
    auto_advance: autoAdvance,
    number: `${customer.invoice_prefix}-${String(sequence).padStart(4, '0')}`,
    effective_at: now,
    hosted_invoice_url: hostedPath,
    invoice_pdf: `${hostedPath}/pdf`,
    automatically_finalizes_at: null,
    next_payment_attempt:
      invoice.collection_method === 'charge_automatically' && autoAdvance ? now + AUTO_ADVANCE_DELAY : null,
    status_transitions: { ...invoice.status_transitions, finalized_at: now },
  } satisfies Partial<Stripe.Invoice>);
  if (invoice.amount_due === 0) markInvoicePaid(invoice, now);
}

/** Records payment of the whole amount due: charged (a collection attempt) or paid outside Stripe. */
export function markInvoicePaid(invoice: Stripe.Invoice, now: number, { outOfBand = false } = {}): void {
  const charged = !outOfBand && invoice.amount_due > 0;
  Object.assign(invoice, {
    status: 'paid',
    amount_paid: invoice.amount_due,
    amount_remaining: 0,
    attempted: invoice.attempted || charged,
    attempt_count: charged ? invoice.attempt_count + 1 : invoice.attempt_count,
    next_payment_attempt: null,
    status_transitions: { ...invoice.status_transitions, paid_at: now },
  } satisfies Partial<Stripe.Invoice>);
}

/** Records a failed collection attempt: the invoice stays open and Stripe schedules a retry. */
export function markInvoicePaymentFailed(invoice: Stripe.Invoice, now: number): void {
  Object.assign(invoice, {
    attempted: true,
    attempt_count: invoice.attempt_count + 1,
    next_payment_attempt: invoice.collection_method === 'charge_automatically' ? now + RETRY_DELAY : null,
  } satisfies Partial<Stripe.Invoice>);
}

function retrieveInvoice(request: ApiRequest): Stripe.Invoice {
  parseParams(noParams, request.params);
  return renderInvoice(requireInvoice(request.state, pathParam(request)));
}

function listInvoices({ params, state }: ApiRequest): Stripe.ApiList<Stripe.Invoice> {
  const input = parseParams(listInvoiceParams, params);
  const matching = newestFirst(state.invoices.values()).filter(
    (invoice) =>
      (input.customer === undefined || invoice.customer === input.customer) &&
      (input.status === undefined || invoice.status === input.status) &&
      (input.collection_method === undefined || invoice.collection_method === input.collection_method),
  );
  const page = listPage(matching, input, '/v1/invoices', 'invoice');
  return { ...page, data: page.data.map(renderInvoice) };
}

function listInvoiceLines(request: ApiRequest): Stripe.ApiList<Stripe.InvoiceLineItem> {
  const input = parseParams(endpoint(listParams), request.params);
  const invoice = requireInvoice(request.state, pathParam(request));
  return listPage(invoice.lines.data, input, invoice.lines.url, 'line_item');
}

function finalizeInvoiceRoute(request: ApiRequest): Stripe.Invoice {
  const input = parseParams(finalizeParams, request.params);
  const invoice = requireInvoice(request.state, pathParam(request));
  finalizeInvoice(request.state, invoice, request.now, input.auto_advance);
  return renderInvoice(invoice);
}

/** Pays with `paid_out_of_band`, the `payment_method` given, or the customer's default payment method; a draft is
 * finalized first, as Stripe does. */
function payInvoice(request: ApiRequest): Stripe.Invoice {
  const input = parseParams(payParams, request.params);
  const { state, now } = request;
  const invoice = requireInvoice(state, pathParam(request));
  if (invoice.status === 'paid') throw invalidRequest('Invoice is already paid');
  if (invoice.status === 'void') throw invalidRequest('You cannot pay a void invoice.');
  const customer = requireCustomer(state, String(invoice.customer));
  const paymentMethod = input.payment_method ?? customer.invoice_settings.default_payment_method ?? undefined;
  if (!input.paid_out_of_band && paymentMethod === undefined) {
    throw invalidRequest(
      'This customer has no attached payment source or default payment method. ' +
        'Please consider adding a default payment method.',
    );
  }
  if (invoice.status === 'draft') finalizeInvoice(state, invoice, now);
  if (invoice.status === 'paid') return renderInvoice(invoice);
  const declineCode = input.paid_out_of_band ? null : chargeOutcome(String(paymentMethod), 'payment_method');
  if (declineCode !== null) {
    markInvoicePaymentFailed(invoice, now);
    throw cardDeclined(declineCode);
  }
  markInvoicePaid(invoice, now, { outOfBand: input.paid_out_of_band ?? false });
  return renderInvoice(invoice);
}

function voidInvoice(request: ApiRequest): Stripe.Invoice {
  parseParams(noParams, request.params);
  const invoice = requireInvoice(request.state, pathParam(request));
  if (invoice.status !== 'open' && invoice.status !== 'uncollectible') {
    throw invalidRequest(`You can only void an open or uncollectible invoice; this invoice is ${invoice.status}.`);
  }
  Object.assign(invoice, {
    status: 'void',
    amount_remaining: 0,
    next_payment_attempt: null,
    status_transitions: { ...invoice.status_transitions, voided_at: request.now },
  } satisfies Partial<Stripe.Invoice>);
  return renderInvoice(invoice);
}

export const invoiceRoutes: Route[] = [
  route('POST', '/v1/invoiceitems', createInvoiceItem),
  route('GET', '/v1/invoiceitems', listInvoiceItems),
  route('GET', '/v1/invoiceitems/:id', retrieveInvoiceItem),
  route('DELETE', '/v1/invoiceitems/:id', deleteInvoiceItem),
  route('POST', '/v1/invoices', createInvoice),
  route('GET', '/v1/invoices', listInvoices),
  route('GET', '/v1/invoices/:id', retrieveInvoice),
  route('GET', '/v1/invoices/:id/lines', listInvoiceLines),
  route('POST', '/v1/invoices/:id/finalize', finalizeInvoiceRoute),
  route('POST', '/v1/invoices/:id/pay', payInvoice),
  route('POST', '/v1/invoices/:id/void', voidInvoice),
];
