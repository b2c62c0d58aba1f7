// The local Stripe server behaves like Stripe for the `stripe` package: objects, errors, idempotency, webhooks and
// faults. Tollgate's billing tests rely on it, so these tests drive it only through the real client.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { FaultInjector } from './stripe-server/faults.js';
import { shapeDifference } from './stripe-server/fixtures.js';
import { startStripeServer, type StripeServer } from './stripe-server/server.js';

const API_KEY = 'sk_test_tollgate_stripe_server';
const WEBHOOK_SECRET = 'whsec_tollgate_test_secret';

let server: StripeServer;
let clockMs = Date.UTC(2025, 5, 1);

beforeAll(async () => {
  server = await startStripeServer({ clock: () => clockMs });
});
afterAll(async () => {
  await server.close();
});
afterEach(() => {
  server.setFaults(null);
  server.setLatency(0);
});

function client(config: Stripe.StripeConfig = {}, apiKey = API_KEY): Stripe {
  return new Stripe(apiKey, {
    host: server.host,
    port: server.port,
    protocol: 'http',
    maxNetworkRetries: 0,
    telemetry: false,
    ...config,
  });
}

/** The error a rejected call raised, for assertions on its Stripe type and fields. */
async function failure(call: Promise<unknown>): Promise<Stripe.errors.StripeError> {
  try {
    await call;
  } catch (error) {
    return error as Stripe.errors.StripeError;
  }
  throw new Error('expected the call to fail');
}

/** The object has the pinned API version's shape of `resource`: Stripe's example, adjusted to that version. */
function expectStripeShape(object: object, resource: string): void {
  expect((object as { object?: unknown }).object).toBe(resource);
  expect(shapeDifference(object)).toBeUndefined();
}

function responseHeader(object: { lastResponse?: unknown }, name: string): unknown {
  return (object.lastResponse as { headers: Record<string, unknown> }).headers[name];
}

describe('objects and their Stripe shapes', () => {
  it('creates, retrieves, updates and lists customers', async () => {
    const stripe = client();
    const created = await stripe.customers.create({
      email: 'ada@example.com',
      name: 'Ada',
      metadata: { tollgate_customer_id: 'c-1', plan: 'pro' },
    });
    expect(created.id).toMatch(/^cus_[A-Za-z0-9]{14}$/);
    expect(created.created).toBe(Math.floor(clockMs / 1000));
    expectStripeShape(created, 'customer');

    const updated = await stripe.customers.update(created.id, { metadata: { plan: '', region: 'eu' }, name: '' });
    expect(updated.metadata).toEqual({ tollgate_customer_id: 'c-1', region: 'eu' });
    expect(updated.name).toBeNull();
    expect((await stripe.customers.retrieve(created.id)).id).toBe(created.id);

    const listed = await stripe.customers.list({ email: 'ada@example.com' });
    expect(listed.data.map((customer) => customer.id)).toEqual([created.id]);
    expect(server.state.customers.get(created.id)?.email).toBe('ada@example.com');

    await stripe.customers.del(created.id);
    expect(await stripe.customers.retrieve(created.id)).toMatchObject({ id: created.id, deleted: true });
  });

  it('pages lists newest first with starting_after', async () => {
    const stripe = client();
    const product = await stripe.products.create({ name: 'Paging' });
    const prices = [];
    for (const amount of [100, 200, 300]) {
      prices.push(await stripe.prices.create({ currency: 'usd', unit_amount: amount, product: product.id }));
    }
    const first = await stripe.prices.list({ product: product.id, limit: 2 });
    expect(first.data.map((price) => price.unit_amount)).toEqual([300, 200]);
    expect(first.has_more).toBe(true);
    const rest = await stripe.prices.list({ product: product.id, limit: 2, starting_after: first.data[1]?.id });
    expect(rest.data.map((price) => price.unit_amount)).toEqual([100]);
    expect(rest.has_more).toBe(false);
  });

  it('bills pending invoice items on a draft invoice, then finalizes and pays it', async () => {
    const stripe = client();
    const customer = await stripe.customers.create({ email: 'billing@example.com' });
    const product = await stripe.products.create({ name: 'API calls' });
    const flat = await stripe.invoiceItems.create({
      customer: customer.id,
      amount: 4900,
      currency: 'usd',
      description: 'Pro plan',
    });
    // 12,345 calls at $0.005: 6,172.5 cents rounds half up to 6,173.
    const usage = await stripe.invoiceItems.create({
      customer: customer.id,
      price_data: { currency: 'usd', product: product.id, unit_amount_decimal: Stripe.Decimal.from('0.5') },
      quantity: 12_345,
    });
    expect(flat.id).toMatch(/^ii_/);
    expect(usage.amount).toBe(6173);
    expectStripeShape(usage, 'invoiceitem');
    expect(flat.invoice).toBeNull();

    const draft = await stripe.invoices.create({ customer: customer.id, pending_invoice_items_behavior: 'include' });
    expectStripeShape(draft, 'invoice');
    expect(draft).toMatchObject({ status: 'draft', total: 4900 + 6173, amount_due: 4900 + 6173, number: null });
    expect(draft.lines.data.map((line) => line.parent?.invoice_item_details?.invoice_item)).toEqual([flat.id, usage.id]);
    expect(draft.lines.data[0]?.id).toMatch(/^il_/);

    const onDraft = { customer: customer.id, invoice: draft.id, currency: 'usd' };
    const extra = await stripe.invoiceItems.create({ ...onDraft, amount: 100 });
    expect(extra.invoice).toBe(draft.id);

    const finalized = await stripe.invoices.finalizeInvoice(draft.id);
    expect(finalized).toMatchObject({ status: 'open', total: 11_173, amount_remaining: 11_173 });
    expect(finalized.number).toMatch(/^[0-9A-Z]{8}-0001$/);
    expect(finalized.status_transitions.finalized_at).toBe(Math.floor(clockMs / 1000));

    const refinalized = await failure(stripe.invoices.finalizeInvoice(draft.id));
    expect(refinalized).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    const late = await failure(stripe.invoiceItems.create({ ...onDraft, amount: 1 }));
    expect(late.code).toBe('invoice_not_editable');

    const declined = await failure(stripe.invoices.pay(draft.id, { payment_method: 'pm_card_chargeDeclined' }));
    expect(declined).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect(declined).toMatchObject({ code: 'card_declined', decline_code: 'generic_decline', statusCode: 402 });

    const paid = await stripe.invoices.pay(draft.id, { payment_method: 'pm_card_visa' });
    expect(paid).toMatchObject({ status: 'paid', amount_paid: 11_173, amount_remaining: 0, attempt_count: 2 });

    const listed = await stripe.invoices.list({ customer: customer.id });
    expect(listed.data.map((invoice) => invoice.id)).toEqual([draft.id]);
    const expanded = await stripe.invoices.retrieve(draft.id, { expand: ['customer'] });
    expect((expanded.customer as Stripe.Customer).email).toBe('billing@example.com');
  });

  it('voids open invoices only', async () => {
    const stripe = client();
    const customer = await stripe.customers.create({});
    const invoice = await stripe.invoices.create({ customer: customer.id });
    expect((await failure(stripe.invoices.voidInvoice(invoice.id))).statusCode).toBe(400);
    await stripe.invoiceItems.create({ customer: customer.id, invoice: invoice.id, amount: 500, currency: 'usd' });
    await stripe.invoices.finalizeInvoice(invoice.id);
    const voided = await stripe.invoices.voidInvoice(invoice.id);
    expect(voided.status).toBe('void');
  });

  it('creates payment-mode checkout sessions from nested line items', async () => {
    const stripe = client();
    const session = await stripe.checkout.sessions.create({
      mode: 'payment',
      success_url: 'https://tollgate.example/topped-up',
      metadata: { wallet_id: 'w-1' },
      line_items: [
        { quantity: 1, price_data: { currency: 'usd', unit_amount: 2500, product_data: { name: 'Wallet top-up' } } },
        { quantity: 3, price_data: { currency: 'usd', unit_amount: 100, product_data: { name: 'Extra calls' } } },
      ],
      expand: ['line_items'],
    });
    expect(session.id).toMatch(/^cs_test_/);
    expect(session).toMatchObject({ amount_total: 2800, currency: 'usd', status: 'open', payment_status: 'unpaid' });
    expect(session.url).toContain(session.id);
    expect(session.line_items?.data.map((item) => [item.description, item.quantity, item.amount_total])).toEqual([
      ['Wallet top-up', 1, 2500],
      ['Extra calls', 3, 300],
    ]);
    const { line_items: _lineItems, ...withoutLineItems } = session;
    expectStripeShape(withoutLineItems, 'checkout.session');

    const completed = server.completeCheckoutSession(session.id);
    expect(completed).toMatchObject({ status: 'complete', payment_status: 'paid' });
    const retrieved = await stripe.checkout.sessions.retrieve(session.id, { expand: ['payment_intent'] });
    const paymentIntent = retrieved.payment_intent as Stripe.PaymentIntent;
    expect(paymentIntent).toMatchObject({ status: 'succeeded', amount: 2800, amount_received: 2800 });
    expectStripeShape(paymentIntent, 'payment_intent');
  });

  it('creates and confirms payment intents with test payment methods', async () => {
    const stripe = client();
    const created = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
    expect(created).toMatchObject({ status: 'requires_payment_method', amount: 1000 });
    expect(created.client_secret).toMatch(new RegExp(`^${created.id}_secret_`));
    const confirmed = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    expect(confirmed.status).toBe('succeeded');
    const declined = await failure(
      stripe.paymentIntents.create({
        amount: 1000,
        currency: 'usd',
        payment_method: 'pm_card_chargeDeclinedInsufficientFunds',
        confirm: true,
      }),
    );
    expect(declined).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect(declined.decline_code).toBe('insufficient_funds');
    expect(declined.payment_intent?.status).toBe('requires_payment_method');
    expect((await stripe.paymentIntents.retrieve(created.id)).id).toBe(created.id);
  });

  it('creates tiered metered prices on a billing meter', async () => {
    const stripe = client();
    const meter = await stripe.billing.meters.create({
      display_name: 'API calls',
      event_name: 'api_calls_tiered',
      default_aggregation: { formula: 'sum' },
    });
    expectStripeShape(meter, 'billing.meter');
    const missingMeter = await failure(
      stripe.prices.create({
        currency: 'usd',
        product_data: { name: 'Metered' },
        recurring: { interval: 'month', usage_type: 'metered' },
        unit_amount: 1,
      }),
    );
    expect(missingMeter.param).toBe('recurring[meter]');
    const price = await stripe.prices.create({
      currency: 'usd',
      product_data: { name: 'Metered calls' },
      recurring: { interval: 'month', usage_type: 'metered', meter: meter.id },
      billing_scheme: 'tiered',
      tiers_mode: 'graduated',
      tiers: [
        { up_to: 100_000, unit_amount_decimal: Stripe.Decimal.from('1.0') },
        { up_to: 1_000_000, unit_amount_decimal: Stripe.Decimal.from('0.5') },
        { up_to: 'inf', unit_amount_decimal: Stripe.Decimal.from('0.3') },
      ],
      expand: ['tiers'],
    });
    expect(price.tiers?.map((tier) => tier.up_to)).toEqual([100_000, 1_000_000, null]);
    expect(price.recurring).toMatchObject({ meter: meter.id, usage_type: 'metered' });
    const retrieved = await stripe.prices.retrieve(price.id);
    expect(retrieved.tiers).toBeUndefined();
    expectStripeShape(retrieved, 'price');
  });
});

describe('request decoding and errors', () => {
  it('requires a test-mode API key', async () => {
    const response = await fetch(`${server.url}/v1/customers`);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const error = await failure(client({}, 'sk_live_not_here').customers.list());
    expect(error).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(error.message).toMatch(/^Invalid API Key provided: sk_live_/);
  });

  it('names the missing required param', async () => {
    const stripe = client();
    const noCustomer = await failure(stripe.invoiceItems.create({ amount: 100, currency: 'usd' } as never));
    expect(noCustomer).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(noCustomer).toMatchObject({ statusCode: 400, code: 'parameter_missing', param: 'customer' });
    expect(noCustomer.message).toBe('Missing required param: customer.');

    const customer = await stripe.customers.create({});
    const noAmount = await failure(stripe.invoiceItems.create({ customer: customer.id, currency: 'usd' }));
    expect(noAmount).toMatchObject({ code: 'parameter_missing', param: 'amount' });
    const noCurrency = await failure(stripe.invoiceItems.create({ customer: customer.id, amount: 100 }));
    expect(noCurrency).toMatchObject({ code: 'parameter_missing', param: 'currency' });

    const noSuccessUrl = await failure(
      stripe.checkout.sessions.create({ mode: 'payment', line_items: [{ price: 'price_x', quantity: 1 }] }),
    );
    expect(noSuccessUrl).toMatchObject({ code: 'parameter_missing', param: 'success_url' });
    const noQuantity = await failure(
      stripe.checkout.sessions.create({
        mode: 'payment',
        success_url: 'https://tollgate.example/ok',
        line_items: [{ price_data: { currency: 'usd', unit_amount: 100, product_data: { name: 'x' } } }],
      }),
    );
    expect(noQuantity).toMatchObject({ code: 'parameter_missing', param: 'line_items[0][quantity]' });
    const noPayload = await failure(stripe.billing.meterEvents.create({ event_name: 'api_calls' } as never));
    expect(noPayload).toMatchObject({ code: 'parameter_missing', param: 'payload' });
  });

  it('rejects unknown params, malformed values and unknown ids as Stripe does', async () => {
    const stripe = client();
    const unknown = await failure(stripe.customers.create({ nickname: 'x' } as never));
    expect(unknown).toMatchObject({ code: 'parameter_unknown', param: 'nickname' });
    const notInteger = await failure(stripe.paymentIntents.create({ amount: 'ten' as never, currency: 'usd' }));
    expect(notInteger).toMatchObject({ code: 'parameter_invalid_integer', param: 'amount' });
    const missing = await failure(stripe.customers.retrieve('cus_missing'));
    expect(missing).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(missing).toMatchObject({ statusCode: 404, code: 'resource_missing', param: 'id' });
    const missingParamObject = await failure(stripe.invoices.create({ customer: 'cus_missing' }));
    expect(missingParamObject).toMatchObject({ statusCode: 400, code: 'resource_missing', param: 'customer' });
    const badExpand = await failure(stripe.customers.list({ expand: ['data.nonexistent'] }));
    expect(badExpand.message).toMatch(/cannot be expanded/);
    const route = await fetch(`${server.url}/v1/nowhere`, { headers: { Authorization: `Bearer ${API_KEY}` } });
    expect(route.status).toBe(404);
  });
});

describe('idempotency', () => {
  it('replays the saved response for the same key and params', async () => {
    const stripe = client();
    const params = { email: 'once@example.com', metadata: { attempt: 'a' } };
    const first = await stripe.customers.create(params, { idempotencyKey: 'customer-once' });
    const again = await stripe.customers.create(params, { idempotencyKey: 'customer-once' });
    expect(again.id).toBe(first.id);
    expect(responseHeader(again, 'idempotent-replayed')).toBe('true');
    expect(responseHeader(first, 'idempotent-replayed')).toBeUndefined();
    expect([...server.state.customers.values()].filter((customer) => customer.email === 'once@example.com')).toHaveLength(1);
  });

  it('rejects a key reused with other params or on another endpoint', async () => {
    const stripe = client();
    await stripe.customers.create({ email: 'first@example.com' }, { idempotencyKey: 'reused-key' });
    const otherParams = await failure(
      stripe.customers.create({ email: 'second@example.com' }, { idempotencyKey: 'reused-key' }),
    );
    expect(otherParams).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(otherParams.statusCode).toBe(400);
    expect(otherParams.message).toMatch(/^Keys for idempotent requests can only be used with the same parameters/);
    const otherEndpoint = await failure(stripe.products.create({ name: 'x' }, { idempotencyKey: 'reused-key' }));
    expect(otherEndpoint).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
  });

  it('answers 409 while the first request with a key is still running', async () => {
    // The second request is sent once the server holds the first, which it applies a generous while later.
    server.setLatency(2_000);
    const stripe = client();
    const first = stripe.customers.create({ email: 'race@example.com' }, { idempotencyKey: 'racing-key' });
    await vi.waitFor(() => expect(server.state.requestLog.some((logged) => logged.idempotencyKey === 'racing-key')).toBe(true), { timeout: 2_000 });
    const results = await Promise.allSettled([first, stripe.customers.create({ email: 'race@example.com' }, { idempotencyKey: 'racing-key' })]);
    expect(results[0].status).toBe('fulfilled');
    const conflict = results[1].status === 'rejected' ? (results[1].reason as Stripe.errors.StripeError) : undefined;
    // stripe-node maps 409 to StripeAPIError whatever the type; Stripe's body says idempotency_error.
    expect(conflict).toMatchObject({ statusCode: 409, rawType: 'idempotency_error', code: 'idempotency_key_in_use' });
  });

  it('saves results once the endpoint ran, but not parameter validation failures', async () => {
    const stripe = client();
    const invalid = await failure(stripe.products.create({} as never, { idempotencyKey: 'fix-and-retry' }));
    expect(invalid.code).toBe('parameter_missing');
    const fixed = await stripe.products.create({ name: 'Fixed' }, { idempotencyKey: 'fix-and-retry' });
    expect(fixed.name).toBe('Fixed');

    const ran = await failure(stripe.invoices.create({ customer: 'cus_gone' }, { idempotencyKey: 'executed' }));
    const replayed = await failure(stripe.invoices.create({ customer: 'cus_gone' }, { idempotencyKey: 'executed' }));
    expect(replayed.message).toBe(ran.message);
    expect(replayed.headers?.['idempotent-replayed']).toBe('true');
  });
});

describe('billing meter events', () => {
  it('rejects a repeated identifier within 24 hours and sums usage per customer', async () => {
    const stripe = client();
    const meter = await stripe.billing.meters.create({
      display_name: 'Requests',
      event_name: 'requests',
      default_aggregation: { formula: 'sum' },
    });
    const customer = await stripe.customers.create({});
    const start = Math.floor(clockMs / 1000 / 60) * 60;
    const event = await stripe.billing.meterEvents.create({
      event_name: 'requests',
      identifier: 'usage-window-1',
      payload: { stripe_customer_id: customer.id, value: '25' },
      timestamp: start,
    });
    expectStripeShape(event, 'billing.meter_event');
    expect(event.payload).toEqual({ stripe_customer_id: customer.id, value: '25' });

    const duplicate = await failure(
      stripe.billing.meterEvents.create({
        event_name: 'requests',
        identifier: 'usage-window-1',
        payload: { stripe_customer_id: customer.id, value: '25' },
      }),
    );
    expect(duplicate).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(duplicate.message).toBe('An event already exists with identifier usage-window-1.');
    expect(duplicate.headers?.['stripe-should-retry']).toBe('false');

    await stripe.billing.meterEvents.create({
      event_name: 'requests',
      identifier: 'usage-window-2',
      payload: { stripe_customer_id: customer.id, value: '17' },
      timestamp: start + 30,
    });
    const summaries = await stripe.billing.meters.listEventSummaries(meter.id, {
      customer: customer.id,
      start_time: start,
      end_time: start + 3600,
    });
    expect(summaries.data[0]?.aggregated_value).toBe(42);

    const stale = await failure(
      stripe.billing.meterEvents.create({
        event_name: 'requests',
        payload: { stripe_customer_id: customer.id, value: '1' },
        timestamp: start - 36 * 86_400,
      }),
    );
    expect(stale.param).toBe('timestamp');

    clockMs += 25 * 3_600_000;
    const later = await stripe.billing.meterEvents.create({
      event_name: 'requests',
      identifier: 'usage-window-1',
      payload: { stripe_customer_id: customer.id, value: '25' },
    });
    expect(later.identifier).toBe('usage-window-1');
  });
});

describe('webhooks', () => {
  let receiver: Server;
  let receiverUrl: string;
  const received: Stripe.Event[] = [];

  beforeAll(async () => {
    const verifier = new Stripe(API_KEY);
    receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        try {
          const event = verifier.webhooks.constructEvent(
            Buffer.concat(chunks),
            request.headers['stripe-signature'] ?? '',
            WEBHOOK_SECRET,
          );
          received.push(event);
          response.writeHead(200).end('{"received":true}');
        } catch (error) {
          response.writeHead(400).end((error as Error).message);
        }
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/webhooks/stripe`;
  });
  afterAll(async () => {
    await new Promise((resolve) => receiver.close(resolve));
  });

  it('delivers signed events that stripe.webhooks.constructEvent accepts', async () => {
    const stripe = client();
    const customer = await stripe.customers.create({});
    const invoice = await stripe.invoices.create({ customer: customer.id });
    await stripe.invoiceItems.create({ customer: customer.id, invoice: invoice.id, amount: 4900, currency: 'usd' });
    server.markInvoicePaid(invoice.id);
    const event = server.events.invoice('invoice.paid', invoice.id);
    expect(event).toMatchObject({ object: 'event', type: 'invoice.paid', livemode: false, pending_webhooks: 1 });
    expect(event.id).toMatch(/^evt_/);
    expectStripeShape(event, 'event');

    const delivery = await server.sendWebhook(receiverUrl, event, { secret: WEBHOOK_SECRET });
    expect(delivery.status).toBe(200);
    const delivered = received.at(-1);
    expect(delivered?.id).toBe(event.id);
    expect(delivered?.data.object).toMatchObject({ id: invoice.id, status: 'paid', amount_paid: 4900 });
    expect((await stripe.events.retrieve(event.id)).type).toBe('invoice.paid');
  });

  it('rejects forged, re-signed and stale signatures', async () => {
    const event = server.events.build('customer.created', { id: 'cus_forged', object: 'customer' });
    const forged = await server.sendWebhook(receiverUrl, event, {
      secret: WEBHOOK_SECRET,
      signatureOverride: `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}`,
    });
    expect(forged.status).toBe(400);
    expect(forged.body).toMatch(/No signatures found matching the expected signature/);
    const wrongSecret = await server.sendWebhook(receiverUrl, event, { secret: 'whsec_attacker' });
    expect(wrongSecret.status).toBe(400);
    const stale = await server.sendWebhook(receiverUrl, event, {
      secret: WEBHOOK_SECRET,
      timestamp: Math.floor(Date.now() / 1000) - 301,
    });
    expect(stale.status).toBe(400);
    expect(stale.body).toMatch(/Timestamp outside the tolerance zone/);
  });

  it('builds payment failure, checkout and subscription events from state changes', async () => {
    const stripe = client();
    const customer = await stripe.customers.create({ email: 'sub@example.com' });
    const invoice = await stripe.invoices.create({ customer: customer.id });
    await stripe.invoiceItems.create({ customer: customer.id, invoice: invoice.id, amount: 9900, currency: 'usd' });
    const failed = server.markInvoicePaymentFailed(invoice.id);
    expect(failed).toMatchObject({ status: 'open', attempt_count: 1, attempted: true });
    expect(server.events.invoice('invoice.payment_failed', invoice.id).data.object).toMatchObject({
      id: invoice.id,
      status: 'open',
      attempt_count: 1,
    });

    const session = await stripe.checkout.sessions.create({
      mode: 'payment',
      success_url: 'https://tollgate.example/ok',
      customer: customer.id,
      line_items: [{ quantity: 1, price_data: { currency: 'usd', unit_amount: 1000, product_data: { name: 'Top-up' } } }],
    });
    server.completeCheckoutSession(session.id);
    const completed = server.events.checkoutSession('checkout.session.completed', session.id);
    expect(completed.data.object).toMatchObject({ id: session.id, payment_status: 'paid', customer: customer.id });

    const price = await stripe.prices.create({
      currency: 'usd',
      unit_amount: 4900,
      recurring: { interval: 'month' },
      product_data: { name: 'Pro' },
    });
    const subscription = server.createSubscription({ customer: customer.id, price: price.id });
    expectStripeShape(subscription, 'subscription');
    const previous = server.updateSubscription(subscription.id, { status: 'past_due' });
    const updated = server.events.subscription('customer.subscription.updated', subscription.id, previous);
    expect(updated.data).toMatchObject({
      object: { id: subscription.id, status: 'past_due' },
      previous_attributes: { status: 'active' },
    });
    const now = Math.floor(clockMs / 1000);
    server.updateSubscription(subscription.id, { status: 'canceled', canceled_at: now, ended_at: now });
    const deleted = server.events.subscription('customer.subscription.deleted', subscription.id);
    const delivery = await server.sendWebhook(receiverUrl, deleted, { secret: WEBHOOK_SECRET });
    expect(delivery.status).toBe(200);
    expect(received.at(-1)?.data.object).toMatchObject({ id: subscription.id, status: 'canceled' });
    expect((await stripe.subscriptions.retrieve(subscription.id)).status).toBe('canceled');
  });
});

describe('fault injection', () => {
  it('draws the same faults from the same seed', () => {
    const draw = () => {
      const injector = new FaultInjector();
      injector.configure({ rate: 0.3, kinds: ['500', '429', 'timeout', 'drop'], seed: 42 });
      return Array.from({ length: 200 }, () => injector.next());
    };
    const faults = draw();
    expect(faults).toEqual(draw());
    const injected = faults.filter((fault) => fault !== undefined);
    expect(injected.length).toBeGreaterThan(40);
    expect(injected.length).toBeLessThan(80);
    expect(new Set(injected.map((fault) => `${fault.kind}/${fault.phase}`)).size).toBe(7);
  });

  it('applies a request, then drops the connection: the key makes the retry a replay', async () => {
    server.setFaults({ rate: 1, kinds: ['drop'], phases: ['after'], limit: 1 });
    const stripe = client({ maxNetworkRetries: 2 });
    const customer = await stripe.customers.create({ metadata: { op: 'drop-after' } }, { idempotencyKey: 'drop-after' });
    expect(responseHeader(customer, 'idempotent-replayed')).toBe('true');
    const stored = [...server.state.customers.values()].filter((c) => c.metadata.op === 'drop-after');
    expect(stored.map((c) => c.id)).toEqual([customer.id]);
    expect(server.state.faultLog.at(-1)).toMatchObject({ kind: 'drop', phase: 'after', idempotencyKey: 'drop-after' });
  });

  it('applies a request, then times out: a retry without the same key duplicates it', async () => {
    const stripe = client({ timeout: 300 });
    const createAfterTimeout = async (idempotencyKey?: string) => {
      server.setFaults({ rate: 1, kinds: ['timeout'], phases: ['after'], limit: 1 });
      const params = { metadata: { op: `timeout-${idempotencyKey}` } };
      const timedOut = await failure(stripe.customers.create(params, { idempotencyKey }));
      expect(timedOut).toBeInstanceOf(Stripe.errors.StripeConnectionError);
      return stripe.customers.create(params, { idempotencyKey });
    };
    const count = (op: string) => [...server.state.customers.values()].filter((c) => c.metadata.op === op).length;
    await createAfterTimeout();
    expect(count('timeout-undefined')).toBe(2);
    await createAfterTimeout('timeout-key');
    expect(count('timeout-timeout-key')).toBe(1);
  });

  it('saves a 500 raised after applying a request and replays it, like Stripe', async () => {
    server.setFaults({ rate: 1, kinds: ['500'], phases: ['after'], limit: 1 });
    const stripe = client({ maxNetworkRetries: 2 });
    const first = await failure(stripe.products.create({ name: 'Half-done' }, { idempotencyKey: 'server-error' }));
    expect(first).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(first.headers?.['stripe-should-retry']).toBe('false');
    const second = await failure(stripe.products.create({ name: 'Half-done' }, { idempotencyKey: 'server-error' }));
    expect(second.headers?.['idempotent-replayed']).toBe('true');
    expect([...server.state.products.values()].filter((product) => product.name === 'Half-done')).toHaveLength(1);
  });

  it('at a 30% fault rate, explicit keys and retries leave exactly one object per key', async () => {
    const stripe = client({ maxNetworkRetries: 3, timeout: 300 });
    const customer = await stripe.customers.create({});
    const faultsBefore = server.state.faultLog.length;
    const replaysBefore = server.state.stats.idempotentReplays;
    server.setFaults({ rate: 0.3, kinds: ['500', '429', 'timeout', 'drop'], seed: 7 });
    const operations = 24;
    const outcomes: string[] = [];
    for (let op = 0; op < operations; op += 1) {
      const params = { customer: customer.id, amount: 100 + op, currency: 'usd', metadata: { op: String(op) } };
      // Tollgate's sync loop keeps one key per operation and retries it until Stripe gives an answer.
      for (let attempt = 0; attempt < 5; attempt += 1) {
        try {
          await stripe.invoiceItems.create(params, { idempotencyKey: `usage-${op}` });
          outcomes.push('created');
          break;
        } catch (error) {
          if (error instanceof Stripe.errors.StripeAPIError && error.headers?.['idempotent-replayed'] === 'true') {
            outcomes.push('indeterminate 500');
            break;
          }
          if (attempt === 4) throw error;
        }
      }
    }
    server.setFaults(null);

    const items = [...server.state.invoiceItems.values()].filter((item) => item.customer === customer.id);
    const perOperation = Array.from(
      { length: operations },
      (_, op) => items.filter((item) => item.metadata?.op === String(op)).length,
    );
    expect(perOperation).toEqual(Array.from({ length: operations }, () => 1));
    const phases = new Set(server.state.faultLog.slice(faultsBefore).map((fault) => fault.phase));
    expect(phases).toEqual(new Set(['before', 'after']));
    expect(server.state.stats.idempotentReplays - replaysBefore).toBeGreaterThan(0);
    expect(outcomes).toHaveLength(operations);
  });
});

describe('fidelity to the pinned API version', () => {
  it('answers in the pinned version\'s shapes: no invoice `subscription`, the fields the version added', async () => {
    const stripe = client();
    const customer = await stripe.customers.create({ name: 'Shape Check' });
    const invoice = await stripe.invoices.create({ customer: customer.id, currency: 'usd', auto_advance: false });
    expect(Object.hasOwn(invoice, 'subscription')).toBe(false);
    expect(invoice).toHaveProperty('parent');
    const session = await stripe.checkout.sessions.create({
      mode: 'payment',
      success_url: 'https://example.com/thanks',
      line_items: [{ quantity: 1, price_data: { currency: 'usd', unit_amount: 500, product_data: { name: 'Top-up' } } }],
    });
    expect(session).toHaveProperty('allowed_payment_method_types');
    const intent = await stripe.paymentIntents.create({ amount: 1_000, currency: 'usd' });
    expect(intent).toMatchObject({ payment_record: null, allowed_payment_method_types: null });

    // What the check would catch in the server's own answers.
    expect(shapeDifference({ ...invoice, subscription: null })).toMatch(/has subscription, which the pinned version does not return/);
    const { parent: _parent, ...withoutParent } = invoice;
    expect(shapeDifference(withoutParent)).toMatch(/lacks parent/);
    expect(shapeDifference({ object: 'list', data: [{ ...invoice, total: '1000' }] })).toMatch(/data\[0\]\.total \(invoice\) is string, not number/);
  });

  it('refuses amounts Stripe refuses: three-decimal amounts not ending in 0, Checkout totals under the minimum charge', async () => {
    const stripe = client();
    const customer = await stripe.customers.create({ name: 'Manama Pets' });
    const unrounded = await failure(stripe.invoiceItems.create({ customer: customer.id, amount: 19_125, currency: 'bhd' }));
    expect(unrounded).toMatchObject({ statusCode: 400, type: 'StripeInvalidRequestError', code: 'invalid_amount', param: 'amount' });
    expect(await stripe.invoiceItems.create({ customer: customer.id, amount: 19_130, currency: 'bhd' })).toMatchObject({ amount: 19_130 });

    const checkout = (currency: string, unitAmount: number) =>
      stripe.checkout.sessions.create({
        mode: 'payment',
        success_url: 'https://example.com/thanks',
        line_items: [{ quantity: 1, price_data: { currency, unit_amount: unitAmount, product_data: { name: 'Top-up' } } }],
      });
    expect(await failure(checkout('usd', 49))).toMatchObject({ statusCode: 400, code: 'amount_too_small', param: 'line_items' });
    expect(await failure(checkout('gbp', 29))).toMatchObject({ statusCode: 400, code: 'amount_too_small' });
    expect(await failure(checkout('kwd', 2_505))).toMatchObject({ statusCode: 400, code: 'invalid_amount', param: 'line_items[0][price_data][unit_amount]' });
    expect(await checkout('kwd', 2_510)).toMatchObject({ amount_total: 2_510 });
    expect(await failure(stripe.paymentIntents.create({ amount: 1_005, currency: 'omr' }))).toMatchObject({ statusCode: 400, code: 'invalid_amount' });
    expect(await failure(stripe.paymentIntents.create({ amount: 40, currency: 'eur' }))).toMatchObject({ statusCode: 400, code: 'amount_too_small' });
  });
});

