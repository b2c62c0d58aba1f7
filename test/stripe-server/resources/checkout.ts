// Checkout Sessions in `payment` mode: create, retrieve, list line items, and completion by the (simulated) buyer.
import type Stripe from 'stripe';
import { z } from 'zod';
import { exclusiveParams, invalidParam, missingParam } from '../errors.js';
import { fromFixture } from '../fixtures.js';
import { newId, randomBase62 } from '../ids.js';
import { lineAmount, requireCollectible, requireMinimumCharge } from '../money.js';
import {
  currency,
  decimal,
  endpoint,
  formArray,
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
import { listPage, requireObject, updatedMetadata, type StripeState } from '../state.js';
import { createInlinePrice, productDataParams, productFor, renderPrice, unitAmountDecimal } from './catalog.js';
import { requireCustomer } from './customers.js';
import { createPaymentIntent, confirmPaymentIntent } from './payments.js';

const DAY = 86_400;
/** Test card used when a test completes a session, as a buyer would on the hosted page. */
const BUYER_PAYMENT_METHOD = 'pm_card_visa';

const lineItemParams = z.strictObject({
  price: text().optional(),
  price_data: z
    .strictObject({
      currency: currency(),
      product: text().optional(),
      product_data: productDataParams.optional(),
      unit_amount: integer().optional(),
      unit_amount_decimal: decimal().optional(),
      tax_behavior: oneOf(['exclusive', 'inclusive', 'unspecified']).optional(),
    })
    .optional(),
  quantity: positiveInteger().optional(),
  metadata: metadata().optional(),
});

const createParams = endpoint({
  mode: oneOf(['payment', 'setup', 'subscription']),
  cancel_url: text().optional(),
  client_reference_id: text().optional(),
  currency: currency().optional(),
  customer: text().optional(),
  customer_email: text().optional(),
  expires_at: integer().optional(),
  line_items: formArray(lineItemParams).optional(),
  metadata: metadata().optional(),
  redirect_on_completion: oneOf(['always', 'if_required', 'never']).optional(),
  return_url: text().optional(),
  success_url: text().optional(),
  // Current names first; `hosted`, `embedded` and `custom` are what API versions before 2025 call them.
  ui_mode: oneOf(['hosted_page', 'embedded_page', 'elements', 'form', 'hosted', 'embedded', 'custom']).optional(),
});

type LineItemInput = z.output<typeof lineItemParams>;

/** The price of a line item, validated before anything is created; `create` makes the inline price if needed. */
function resolveLinePrice(
  state: StripeState,
  lineItem: LineItemInput,
  index: number,
): { currency: string; unitAmountDecimal: string; recurring: boolean; create: (now: number) => Stripe.Price } {
  const param = `line_items[${index}]`;
  const { price: priceId, price_data: data } = lineItem;
  if (lineItem.quantity === undefined) throw missingParam(`${param}[quantity]`);
  if (data === undefined) {
    if (priceId === undefined) {
      throw invalidParam(param, `You must specify either \`price\` or \`price_data\` in \`${param}\`.`, 'parameter_missing');
    }
    const price = requireObject(state.prices, priceId, 'price', `${param}[price]`);
    if (price.unit_amount_decimal === null) {
      throw invalidParam(`${param}[price]`, `The price ${price.id} has no unit amount.`);
    }
    return {
      currency: price.currency,
      unitAmountDecimal: String(price.unit_amount_decimal),
      recurring: price.type === 'recurring',
      create: () => price,
    };
  }
  if (priceId !== undefined) {
    throw exclusiveParams(`${param}[price_data]`, ['price', 'price_data']);
  }
  const unitAmount = unitAmountDecimal(data.unit_amount, data.unit_amount_decimal, `${param}[price_data][`);
  if (data.product === undefined && data.product_data === undefined) throw missingParam(`${param}[price_data][product]`);
  if (data.product !== undefined) requireObject(state.products, data.product, 'product', `${param}[price_data][product]`);
  return {
    currency: data.currency,
    unitAmountDecimal: unitAmount,
    recurring: false,
    create: (now) =>
      createInlinePrice(state, now, {
        currency: data.currency,
        product: productFor(state, now, data.product, data.product_data, `${param}[price_data][`),
        unitAmountDecimal: unitAmount,
      }),
  };
}

function isHosted(uiMode: string): boolean {
  return uiMode === 'hosted_page' || uiMode === 'hosted';
}

function createSession({ params, state, now }: ApiRequest): Stripe.Checkout.Session {
  const input = parseParams(createParams, params);
  if (input.mode !== 'payment') {
    throw invalidParam('mode', `mode=${input.mode} is not emulated by the Tollgate Stripe test server; only payment is.`);
  }
  const uiMode = input.ui_mode ?? 'hosted_page';
  if (isHosted(uiMode) && input.success_url === undefined) throw missingParam('success_url');
  if (!isHosted(uiMode)) {
    if (input.success_url !== undefined) {
      throw invalidParam('success_url', `success_url can only be used with ui_mode=hosted_page; use return_url instead.`);
    }
    if (input.return_url === undefined && input.redirect_on_completion !== 'never') throw missingParam('return_url');
  }
  if (input.customer !== undefined && input.customer_email !== undefined) {
    throw exclusiveParams('customer_email', ['customer', 'customer_email']);
  }
  if (!input.line_items?.length) throw missingParam('line_items');
  const lines = input.line_items.map((lineItem, index) => ({ lineItem, price: resolveLinePrice(state, lineItem, index) }));
  const sessionCurrency = input.currency ?? lines[0]?.price.currency ?? 'usd';
  lines.forEach(({ price }, index) => {
    if (price.recurring) {
      throw invalidParam(
        `line_items[${index}]`,
        'You specified `payment` mode but passed a recurring price. Either switch to `subscription` mode or use ' +
          'only one-time prices.',
      );
    }
    if (price.currency !== sessionCurrency) {
      throw invalidParam(`line_items[${index}]`, `All line items must use the session's currency (${sessionCurrency}).`);
    }
  });
  const lineTotals = lines.map(({ lineItem, price }, index) => {
    const amount = lineAmount(lineItem.quantity ?? 1, price.unitAmountDecimal);
    requireCollectible(amount, sessionCurrency, `line_items[${index}][price_data][unit_amount]`);
    return amount;
  });
  requireMinimumCharge(lineTotals.reduce((sum, amount) => sum + amount, 0), sessionCurrency, 'line_items');
  const customer = input.customer === undefined ? null : requireCustomer(state, input.customer, 'customer');

  const id = `cs_test_a1${randomBase62(56)}`;
  const lineItems = lines.map(({ lineItem, price }): Stripe.LineItem => {
    const quantity = lineItem.quantity ?? 1;
    const amount = lineAmount(quantity, price.unitAmountDecimal);
    const stripePrice = price.create(now);
    const product = requireObject(state.products, String(stripePrice.product), 'product');
    return fromFixture('item', {
      id: newId('li'),
      amount_discount: 0,
      amount_subtotal: amount,
      amount_tax: 0,
      amount_total: amount,
      currency: price.currency,
      description: product.name,
      price: renderPrice(stripePrice),
      quantity,
      metadata: updatedMetadata({}, lineItem.metadata),
      adjustable_quantity: null,
    });
  });
  const amountTotal = lineItems.reduce((sum, item) => sum + item.amount_total, 0);
  const session = fromFixture('checkout.session', {
    id,
    after_expiration: null,
    allow_promotion_codes: null,
    amount_subtotal: amountTotal,
    amount_total: amountTotal,
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    billing_address_collection: null,
    cancel_url: input.cancel_url ?? null,
    client_reference_id: input.client_reference_id ?? null,
    client_secret: isHosted(uiMode) ? null : `${id}_secret_${randomBase62(24)}`,
    consent: null,
    consent_collection: null,
    created: now,
    currency: sessionCurrency,
    custom_fields: [],
    custom_text: { after_submit: null, shipping_address: null, submit: null, terms_of_service_acceptance: null },
    customer: customer?.id ?? null,
    customer_creation: customer ? null : 'if_required',
    customer_details: null,
    customer_email: input.customer_email ?? null,
    expires_at: input.expires_at ?? now + DAY,
    invoice: null,
    invoice_creation: {
      enabled: false,
      invoice_data: {
        account_tax_ids: null,
        custom_fields: null,
        description: null,
        footer: null,
        issuer: null,
        metadata: {},
        rendering_options: null,
      },
    },
    livemode: false,
    locale: null,
    metadata: updatedMetadata({}, input.metadata),
    mode: 'payment',
    // Since API version 2022-08-01 the PaymentIntent is created when the buyer confirms, not with the session.
    payment_intent: null,
    payment_link: null,
    payment_method_collection: 'if_required',
    payment_method_configuration_details: null,
    payment_method_options: {},
    payment_method_types: ['card'],
    payment_status: 'unpaid',
    phone_number_collection: { enabled: false },
    recovered_from: null,
    saved_payment_method_options: null,
    setup_intent: null,
    shipping_address_collection: null,
    shipping_cost: null,
    shipping_options: [],
    status: 'open',
    submit_type: null,
    subscription: null,
    success_url: input.success_url ?? null,
    total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    ui_mode: uiMode,
    url: isHosted(uiMode) ? `https://checkout.stripe.com/c/pay/${id}` : null,
    adaptive_pricing: { enabled: false },
    discounts: [],
    collected_information: null,
    permissions: null,
    wallet_options: null,
    origin_context: null,
    currency_conversion: null,
    customer_account: null,
    integration_identifier: null,
    managed_payments: null,
  });
  state.checkoutSessions.set(id, session);
  state.checkoutLineItems.set(id, lineItems);
  return renderSession(state, session, input.expand);
}

/** Line items are part of the session object only when asked for with `expand[]=line_items`. */
function renderSession(
  state: StripeState,
  session: Stripe.Checkout.Session,
  expand: readonly string[] = [],
): Stripe.Checkout.Session {
  if (!expand.includes('line_items')) return session;
  const lineItems = state.checkoutLineItems.get(session.id) ?? [];
  return { ...session, line_items: listPage(lineItems, {}, `/v1/checkout/sessions/${session.id}/line_items`, 'line_item') };
}

function retrieveSession(request: ApiRequest): Stripe.Checkout.Session {
  const input = parseParams(noParams, request.params);
  const session = requireObject(request.state.checkoutSessions, pathParam(request), 'checkout.session');
  return renderSession(request.state, session, input.expand);
}

function listSessionLineItems(request: ApiRequest): Stripe.ApiList<Stripe.LineItem> {
  const input = parseParams(endpoint(listParams), request.params);
  const session = requireObject(request.state.checkoutSessions, pathParam(request), 'checkout.session');
  const lineItems = request.state.checkoutLineItems.get(session.id) ?? [];
  return listPage(lineItems, input, `/v1/checkout/sessions/${session.id}/line_items`, 'line_item');
}

/** What the buyer's successful payment on the Checkout page does: a succeeded PaymentIntent and a complete, paid
 * session. */
export function completeCheckoutSession(state: StripeState, sessionId: string, now: number): Stripe.Checkout.Session {
  const session = requireObject(state.checkoutSessions, sessionId, 'checkout.session');
  if (session.status !== 'open') throw new Error(`checkout session ${sessionId} is ${session.status}, not open`);
  const customer = session.customer === null ? null : requireCustomer(state, String(session.customer));
  const paymentIntent = createPaymentIntent(state, now, {
    amount: session.amount_total ?? 0,
    currency: session.currency ?? 'usd',
    customer: customer?.id ?? null,
  });
  confirmPaymentIntent(paymentIntent, BUYER_PAYMENT_METHOD, 'payment_method');
  Object.assign(session, {
    status: 'complete',
    payment_status: 'paid',
    payment_intent: paymentIntent.id,
    customer_details: {
      address: null,
      business_name: null,
      email: session.customer_email ?? customer?.email ?? 'buyer@example.com',
      individual_name: null,
      name: customer?.name ?? null,
      phone: null,
      tax_exempt: 'none',
      tax_ids: [],
    },
  } satisfies Partial<Stripe.Checkout.Session>);
  return session;
}

export const checkoutRoutes: Route[] = [
  route('POST', '/v1/checkout/sessions', createSession),
  route('GET', '/v1/checkout/sessions/:id', retrieveSession),
  route('GET', '/v1/checkout/sessions/:id/line_items', listSessionLineItems),
];
