import { readFileSync } from 'node:fs';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseCatalog } from '../src/catalog/load.js';
import { ManualClock } from '../src/kernel/clock.js';
import { planOfStripeSubscription } from '../src/stripe/subscriptions.js';
import { signPayload, startStripeServer, type StripeServer, type WebhookOptions } from './stripe-server/server.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

const secretKey = 'sk_test_tollgate_webhooks';
const webhookSecret = 'whsec_tollgate_webhooks_test';
const day = 86_400_000;
const graceMs = 3 * day;
/** A bound on waits for the service's own sync job (every 20 ms): generous for a busy machine, ended by the change. */
const backgroundWaitMs = 60_000;

describe('Stripe webhooks', () => {
  const clock = new ManualClock(Date.now());
  let stripe: StripeServer;
  let stripeApi: Stripe;
  let service: TestApp;
  let envoy: FakeEnvoy;
  let suffix = 0;

  beforeAll(async () => {
    stripe = await startStripeServer({ clock: () => clock.now() });
    stripeApi = new Stripe(secretKey, { host: stripe.host, port: stripe.port, protocol: 'http' });
    service = await startTestApp({
      mode: 'production',
      clock,
      env: {
        TOLLGATE_STRIPE_SECRET_KEY: secretKey,
        TOLLGATE_STRIPE_WEBHOOK_SECRET: webhookSecret,
        TOLLGATE_STRIPE_API_BASE: stripe.url,
        TOLLGATE_STRIPE_SYNC_INTERVAL_MS: '20',
        TOLLGATE_STRIPE_PAYMENT_GRACE_MS: String(graceMs),
      },
    });
    envoy = new FakeEnvoy(service.grpcAddress);
  });

  afterAll(async () => {
    envoy?.close();
    await service?.close();
    await stripe?.close();
  });

  const deliver = (event: object, options: Partial<WebhookOptions> = {}) =>
    stripe.sendWebhook(`${service.httpUrl}/webhooks/stripe`, event, { secret: webhookSecret, timestamp: Math.floor(clock.now() / 1000), ...options });

  const until = async <T>(probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (accept(value)) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(value)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };

  /**
   * One whole sync pass that starts now. The service's own job passes every 20 ms, and runOnce() joins a pass in
   * progress, which may have begun before what the test just changed: the second call gets a pass begun after it.
   */
  const syncPass = async () => {
    await service.app.stripeSync!.runOnce();
    return service.app.stripeSync!.runOnce();
  };

  /** A customer with a key on `plan`, synced to Stripe. */
  async function customerWithKey(plan: string): Promise<{ customerId: string; stripeCustomerId: string; key: string }> {
    const customerId = `webhook-customer-${++suffix}`;
    await service.app.accounts.createCustomer({ id: customerId, name: `Webhook Customer ${suffix}` });
    const { key } = await service.app.accounts.createKey({ customerId, planId: plan });
    const [mapping] = await until(
      () => service.app.db.query<{ stripe_customer_id: string }>('SELECT stripe_customer_id FROM stripe_customers WHERE customer_id = $1', [customerId]),
      (rows) => rows.length === 1,
      backgroundWaitMs,
      'the customer in Stripe',
    );
    return { customerId, stripeCustomerId: mapping!.stripe_customer_id, key };
  }

  /** An invoice Stripe is collecting from the customer. */
  async function openInvoice(stripeCustomerId: string): Promise<string> {
    const invoice = await stripeApi.invoices.create({ customer: stripeCustomerId, currency: 'usd', auto_advance: false });
    await stripeApi.invoiceItems.create({ customer: stripeCustomerId, invoice: invoice.id, amount: 4_900, currency: 'usd', description: 'Pro' });
    return invoice.id;
  }

  const checkPets = (key: string) => envoy.check({ method: 'GET', path: '/api/v1/pets', key });
  const metric = async (line: RegExp) => (await (await fetch(`${service.httpUrl}/metrics`)).text()).match(line)?.[1];

  it('rejects a forged, an unsigned and a replayed stale delivery with 400, changing nothing', async () => {
    const { stripeCustomerId } = await customerWithKey('pro');
    const invoiceId = await openInvoice(stripeCustomerId);
    stripe.markInvoicePaymentFailed(invoiceId);
    const event = stripe.events.invoice('invoice.payment_failed', invoiceId);
    const now = Math.floor(clock.now() / 1000);

    const forged = await deliver(event, { signatureOverride: signPayload(JSON.stringify(event, null, 2), 'whsec_not_the_secret', now) });
    const stale = await deliver(event, { timestamp: now - 301 });
    const unsigned = await fetch(`${service.httpUrl}/webhooks/stripe`, { method: 'POST', body: JSON.stringify(event) });
    for (const response of [forged, stale]) {
      expect(response.status).toBe(400);
      expect(JSON.parse(response.body).error).toMatchObject({ code: 'invalid_request', field: 'stripe-signature' });
    }
    expect(unsigned.status).toBe(400);
    expect(JSON.parse(stale.body).error.message).toMatch(/tolerance/);

    const recorded = await service.app.db.query('SELECT 1 FROM stripe_webhook_events WHERE id = $1', [event.id]);
    const failures = await service.app.db.query('SELECT 1 FROM stripe_invoices WHERE stripe_invoice_id = $1', [invoiceId]);
    expect([recorded, failures]).toEqual([[], []]);
    expect(await metric(/^tollgate_stripe_webhook_events_total\{type="unverified",result="rejected"\} (\d+)$/m)).toBe('3');

    const genuine = await deliver(event);
    expect(genuine.status).toBe(200);
    expect(JSON.parse(genuine.body)).toMatchObject({ received: true, id: event.id, result: 'applied' });
  });

  it('answers 400 to a correctly signed body that is not an event (null, not JSON, no data)', async () => {
    const now = Math.floor(clock.now() / 1000);
    const signed = (payload: string) =>
      fetch(`${service.httpUrl}/webhooks/stripe`, { method: 'POST', headers: { 'stripe-signature': signPayload(payload, webhookSecret, now) }, body: payload });
    const withoutData = JSON.stringify({ id: 'evt_no_data', object: 'event', type: 'invoice.paid', created: now });
    for (const [payload, field] of [
      ['null', 'body'],
      ['{"id": "evt_not_json"', 'body'],
      [withoutData, 'body.data'],
    ] as const) {
      const response = await signed(payload);
      expect(response.status, payload).toBe(400);
      expect(((await response.json()) as { error: unknown }).error).toMatchObject({ code: 'invalid_request', field });
    }
    expect(await service.app.db.query('SELECT 1 FROM stripe_webhook_events WHERE id = $1', ['evt_no_data'])).toEqual([]);
  });

  it('credits a Checkout top-up to the wallet once, however often and however concurrently its events arrive', async () => {
    const { customerId } = await customerWithKey('pro');
    const created = await service.admin('POST', `/v1/customers/${customerId}/wallet/checkout-sessions`, {
      amount: 2_500,
      currency: 'USD',
      successUrl: 'https://petstore.example.com/wallet/thanks',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ customerId, amount: '2500', currency: 'USD', status: 'open' });
    expect(created.body.checkoutUrl).toMatch(/^https:\/\/checkout\.stripe\.com\//);

    stripe.completeCheckoutSession(created.body.stripeSessionId);
    const completed = stripe.events.checkoutSession('checkout.session.completed', created.body.stripeSessionId);
    const deliveries = await Promise.all([deliver(completed), deliver(completed), deliver(completed)]);
    expect(deliveries.map((delivery) => delivery.status)).toEqual([200, 200, 200]);
    expect(deliveries.map((delivery) => JSON.parse(delivery.body).result).sort()).toEqual(['applied', 'duplicate', 'duplicate']);
    expect(JSON.parse((await deliver(completed)).body).result).toBe('duplicate');
    // Another event about the same payment is new to us, but the payment is credited already.
    const again = stripe.events.checkoutSession('checkout.session.async_payment_succeeded', created.body.stripeSessionId);
    expect(JSON.parse((await deliver(again)).body).result).toBe('applied');

    const entries = await service.app.db.query<{ kind: string; amount: string }>('SELECT kind, amount FROM wallet_entries WHERE customer_id = $1', [customerId]);
    expect(entries).toEqual([{ kind: 'top_up', amount: '2500' }]);
    expect((await service.admin('GET', `/v1/stripe/top-ups/${created.body.id}`)).body).toMatchObject({ status: 'paid' });
  });

  it('suspends the customer (402 at the Check) once a failed payment outlasts the grace period, and restores access when paid', async () => {
    const { customerId, stripeCustomerId, key } = await customerWithKey('pro');
    await service.app.identities.refresh();
    expect((await checkPets(key)).httpStatus).toBe(200);
    const invoiceId = await openInvoice(stripeCustomerId);

    stripe.markInvoicePaymentFailed(invoiceId);
    const failed = stripe.events.invoice('invoice.payment_failed', invoiceId);
    expect(JSON.parse((await deliver(failed)).body).result).toBe('applied');
    clock.advance(graceMs - 60_000);
    await syncPass();
    expect((await checkPets(key)).httpStatus).toBe(200);

    // Past the grace: the next sync pass suspends, and the next identity sync carries it to the Check.
    clock.advance(120_000);
    await syncPass();
    await service.app.identities.refresh();
    const denied = await checkPets(key);
    expect(denied.httpStatus).toBe(402);
    expect(denied.body).toMatchObject({ error: { code: 'account_suspended' } });
    expect((await service.app.accounts.getCustomer(customerId)).statusReason).toMatch(/^payment_overdue: Stripe invoice in_/);

    // Stripe retried and failed again; that report is delivered only after the payment below.
    const failedAgain = stripe.events.invoice('invoice.payment_failed', invoiceId);
    stripe.markInvoicePaid(invoiceId);
    expect(JSON.parse((await deliver(stripe.events.invoice('invoice.paid', invoiceId))).body).result).toBe('applied');
    // Access is back at the next identity sync, without waiting for a Stripe sync pass.
    await service.app.identities.refresh();
    expect((await checkPets(key)).httpStatus).toBe(200);

    expect(JSON.parse((await deliver(failedAgain)).body).result).toBe('applied');
    clock.advance(graceMs + day);
    await syncPass();
    expect((await service.app.accounts.getCustomer(customerId)).status).toBe('active');
    expect((await checkPets(key)).httpStatus).toBe(200);
  });

  it('keeps a customer suspended while a second overdue invoice is unpaid, and restores access once both are paid', async () => {
    const { customerId, stripeCustomerId, key } = await customerWithKey('pro');
    const [first, second] = [await openInvoice(stripeCustomerId), await openInvoice(stripeCustomerId)];
    stripe.markInvoicePaymentFailed(first);
    await deliver(stripe.events.invoice('invoice.payment_failed', first));
    clock.advance(day);
    stripe.markInvoicePaymentFailed(second);
    await deliver(stripe.events.invoice('invoice.payment_failed', second));
    // Both grace periods are over: the first suspends the customer; the second finds them suspended already.
    clock.advance(graceMs + 60_000);
    await syncPass();
    expect((await service.app.accounts.getCustomer(customerId)).status).toBe('suspended');

    stripe.markInvoicePaid(first);
    expect(JSON.parse((await deliver(stripe.events.invoice('invoice.paid', first))).body).result).toBe('applied');
    expect((await service.app.accounts.getCustomer(customerId)).status).toBe('suspended');
    await service.app.identities.refresh();
    expect((await checkPets(key)).httpStatus).toBe(402);

    stripe.markInvoicePaid(second);
    expect(JSON.parse((await deliver(stripe.events.invoice('invoice.paid', second))).body).result).toBe('applied');
    expect((await service.app.accounts.getCustomer(customerId)).status).toBe('active');
    await service.app.identities.refresh();
    expect((await checkPets(key)).httpStatus).toBe(200);
  });

  it('follows Stripe subscriptions: a plan change reaches the Check at the next identity sync, a deletion downgrades to the default plan', async () => {
    const { customerId, stripeCustomerId, key } = await customerWithKey('pro');
    const price = await stripeApi.prices.create({
      currency: 'usd',
      unit_amount: 49_900,
      recurring: { interval: 'month' },
      product_data: { name: 'PetStore Enterprise' },
      metadata: { tollgate_plan: 'enterprise' },
    });
    const subscription = stripe.createSubscription({ customer: stripeCustomerId, price: price.id });
    const planAtCheck = () => checkPets(key).then((outcome) => outcome.metadata.plan_id);

    expect(JSON.parse((await deliver(stripe.events.subscription('customer.subscription.created', subscription.id))).body).result).toBe('applied');
    // The upgrade is at the Check after the next identity sync.
    await service.app.identities.refresh();
    expect(await planAtCheck()).toBe('enterprise');

    // Delivered out of order: the deletion first, then an update that happened before it.
    const staleUpdate = stripe.events.subscription('customer.subscription.updated', subscription.id);
    const previous = stripe.updateSubscription(subscription.id, { status: 'canceled', canceled_at: Math.floor(clock.now() / 1000) });
    const deleted = stripe.events.subscription('customer.subscription.deleted', subscription.id, previous);
    expect(JSON.parse((await deliver(deleted)).body).result).toBe('applied');
    await service.app.identities.refresh();
    expect(await planAtCheck()).toBe('free');
    expect(JSON.parse((await deliver(staleUpdate)).body).result).toBe('applied');
    await service.app.identities.refresh();
    expect(await planAtCheck()).toBe('free');
    expect((await service.app.accounts.listSubscriptions(customerId)).filter((s) => s.status === 'active').map((s) => s.planId)).toEqual(['free']);
  });

  describe('maps every Stripe subscription status to an account state at the Check', () => {
    /** A customer with a key on Pro and a Stripe subscription to Enterprise in `status` (applied through a webhook). */
    async function subscribed(status: Stripe.Subscription.Status) {
      const customer = await customerWithKey('pro');
      const price = await stripeApi.prices.create({
        currency: 'usd',
        unit_amount: 49_900,
        recurring: { interval: 'month' },
        product_data: { name: 'PetStore Enterprise' },
        metadata: { tollgate_plan: 'enterprise' },
      });
      const subscription = stripe.createSubscription({ customer: customer.stripeCustomerId, price: price.id }, { status });
      expect(JSON.parse((await deliver(stripe.events.subscription('customer.subscription.created', subscription.id))).body).result).toBe('applied');
      return { ...customer, subscriptionId: subscription.id };
    }
    /** Stripe moved the subscription to `status`, with `latestInvoice` its latest invoice; the webhook says so. */
    async function moveTo(subscriptionId: string, status: Stripe.Subscription.Status, latestInvoice?: string) {
      const previous = stripe.updateSubscription(subscriptionId, { status, ...(latestInvoice && { latest_invoice: latestInvoice }) });
      const type = status === 'canceled' ? 'customer.subscription.deleted' : 'customer.subscription.updated';
      expect(JSON.parse((await deliver(stripe.events.subscription(type, subscriptionId, previous))).body).result).toBe('applied');
      await service.app.identities.refresh();
    }
    const atCheck = async (key: string) => {
      await service.app.identities.refresh();
      const outcome = await checkPets(key);
      return { status: outcome.httpStatus, plan: outcome.httpStatus === 200 ? outcome.metadata.plan_id : undefined };
    };

    it('active and trialing: the paid plan', async () => {
      for (const status of ['active', 'trialing'] as const) {
        const { key } = await subscribed(status);
        expect(await atCheck(key)).toEqual({ status: 200, plan: 'enterprise' });
      }
    });

    it('incomplete: nothing yet; incomplete_expired: never granted, so the plan the customer had stays', async () => {
      const { key, subscriptionId } = await subscribed('incomplete');
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'pro' });
      await moveTo(subscriptionId, 'incomplete_expired');
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'pro' });
      // The first payment went through in time after all: the subscription became active.
      const second = await subscribed('incomplete');
      await moveTo(second.subscriptionId, 'active');
      expect(await atCheck(second.key)).toEqual({ status: 200, plan: 'enterprise' });
    });

    it('past_due: the paid plan during the grace period, suspended (402) after it, back when it is active again', async () => {
      const { key, stripeCustomerId, subscriptionId } = await subscribed('active');
      const invoiceId = await openInvoice(stripeCustomerId);
      stripe.markInvoicePaymentFailed(invoiceId);
      await moveTo(subscriptionId, 'past_due', invoiceId);
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'enterprise' });
      clock.advance(graceMs + 60_000);
      await syncPass();
      expect(await atCheck(key)).toEqual({ status: 402, plan: undefined });
      // Paid: the subscription is active again, even if the invoice's own event never comes.
      stripe.markInvoicePaid(invoiceId);
      await moveTo(subscriptionId, 'active', invoiceId);
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'enterprise' });
    });

    it('unpaid: suspended (402) at once, keeping the plan; paying the invoice restores access', async () => {
      const { customerId, key, stripeCustomerId, subscriptionId } = await subscribed('active');
      const invoiceId = await openInvoice(stripeCustomerId);
      stripe.markInvoicePaymentFailed(invoiceId);
      await moveTo(subscriptionId, 'unpaid', invoiceId);
      expect(await atCheck(key)).toEqual({ status: 402, plan: undefined });
      expect((await service.app.accounts.getCustomer(customerId)).statusReason).toMatch(/^payment_overdue: Stripe invoice in_\w+ unpaid/);
      stripe.markInvoicePaid(invoiceId);
      expect(JSON.parse((await deliver(stripe.events.invoice('invoice.paid', invoiceId))).body).result).toBe('applied');
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'enterprise' });
    });

    it('paused and canceled: back to the default plan; a resumed subscription grants its plan again', async () => {
      const { key, subscriptionId } = await subscribed('active');
      await moveTo(subscriptionId, 'paused');
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'free' });
      await moveTo(subscriptionId, 'active');
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'enterprise' });
      await moveTo(subscriptionId, 'canceled');
      expect(await atCheck(key)).toEqual({ status: 200, plan: 'free' });
    });
  });

  it("pushes the invoices billing finalizes at a period's end, and marks ours paid when Stripe collects them", async () => {
    const { customerId } = await customerWithKey('pro');
    clock.advance(31 * day + 10 * 60_000);
    await service.app.ratingLoop.runOnce();
    const [invoice] = await service.app.db.query<{ id: string; total: string }>(
      `SELECT id, total FROM invoices WHERE customer_id = $1 AND status = 'finalized'`,
      [customerId],
    );
    expect(invoice).toBeDefined();
    const [pushed] = await until(
      () => service.app.db.query<{ stripe_invoice_id: string; status: string }>('SELECT stripe_invoice_id, status FROM stripe_invoices WHERE invoice_id = $1', [invoice!.id]),
      (rows) => rows[0]?.status === 'open',
      backgroundWaitMs,
      'the invoice in Stripe',
    );
    const billedLines = await service.app.db.query(`SELECT 1 FROM invoice_lines WHERE invoice_id = $1 AND kind <> 'revenue_share'`, [invoice!.id]);
    const stripeInvoice = stripe.state.invoices.get(pushed!.stripe_invoice_id)!;
    expect(stripeInvoice).toMatchObject({ total: Number(invoice!.total), metadata: { tollgate_invoice_id: invoice!.id } });
    expect(stripeInvoice.lines.data).toHaveLength(billedLines.length);

    stripe.markInvoicePaid(stripeInvoice.id);
    expect(JSON.parse((await deliver(stripe.events.invoice('invoice.paid', stripeInvoice.id))).body).result).toBe('applied');
    const [paid] = await service.app.db.query<{ status: string; settled_at: Date | null }>('SELECT status, settled_at FROM stripe_invoices WHERE invoice_id = $1', [invoice!.id]);
    expect(paid).toMatchObject({ status: 'paid', settled_at: expect.any(Date) });
  });

  it('maps a Stripe subscription to a plan by metadata, or by price id or lookup key listed in the catalog', async () => {
    const document = parse(readFileSync('examples/petstore.yaml', 'utf8')) as { plans: { id: string; stripe?: object }[] };
    document.plans.find((plan) => plan.id === 'pro')!.stripe = { prices: ['petstore_pro_monthly'] };
    const catalog = parseCatalog(stringify(document));
    const { stripeCustomerId } = await customerWithKey('free');
    const subscriptionOn = async (params: Partial<Stripe.PriceCreateParams>, fields: Partial<Stripe.Subscription> = {}) => {
      const price = await stripeApi.prices.create({ currency: 'usd', unit_amount: 4_900, recurring: { interval: 'month' }, product_data: { name: 'Pro' }, ...params });
      return stripe.createSubscription({ customer: stripeCustomerId, price: price.id }, fields);
    };

    expect(planOfStripeSubscription(catalog, await subscriptionOn({ lookup_key: 'petstore_pro_monthly' }))?.id).toBe('pro');
    expect(planOfStripeSubscription(catalog, await subscriptionOn({ metadata: { tollgate_plan: 'enterprise' } }))?.id).toBe('enterprise');
    expect(planOfStripeSubscription(catalog, await subscriptionOn({}, { metadata: { tollgate_plan: 'free' } }))?.id).toBe('free');
    expect(planOfStripeSubscription(catalog, await subscriptionOn({}))).toBeUndefined();
  });
});
