import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Subscription } from '../src/identity/types.js';
import { ManualClock } from '../src/kernel/clock.js';
import { roundForStripe } from '../src/stripe/amounts.js';
import { stripeApiVersion } from '../src/stripe/client.js';
import { isDuplicateMeterEvent } from '../src/stripe/usage.js';
import { startStripeServer, type StripeServer, type WebhookOptions } from './stripe-server/server.js';
import { startTestApp, type TestApp } from './support/services.js';
import { markForRating } from './support/usage.js';

const secretKey = 'sk_test_tollgate_meter';
const webhookSecret = 'whsec_tollgate_meter_test';
/** Stripe signs the thin events' destination with a secret of its own. */
const thinEventsSecret = 'whsec_tollgate_meter_thin_events';

/**
 * The PetStore catalog with Enterprise in meter mode (its usage goes to the Stripe meter `api_calls`), Pro priced in
 * Bahraini dinar, and Enterprise BHD: meter mode, with our own price for its usage at 0.0125 BHD a unit.
 */
function writeCatalog(dir: string): string {
  const document = parse(readFileSync('examples/petstore.yaml', 'utf8')) as { plans: { id: string; stripe?: object; pricing: object }[] };
  const plan = (id: string) => document.plans.find((candidate) => candidate.id === id)!;
  plan('enterprise').stripe = { meter_event_name: 'api_calls' };
  // Bahraini dinar: three decimals, and Stripe collects only amounts whose last digit is 0.
  document.plans.push({ ...plan('pro'), id: 'pro-bhd', pricing: { currency: 'BHD', recurring_fee: '19.125' } });
  document.plans.push({
    ...plan('enterprise'),
    id: 'enterprise-bhd',
    pricing: { currency: 'BHD', usage: { model: 'per_unit', unit_price: '0.0125' } },
    stripe: { meter_event_name: 'api_calls' },
  });
  const file = join(dir, 'catalog.yaml');
  writeFileSync(file, stringify(document));
  return file;
}

describe('Stripe meter mode', () => {
  const clock = new ManualClock(Date.now());
  let stripe: StripeServer;
  let stripeApi: Stripe;
  let service: TestApp;
  let catalogDir: string;
  let meter: Stripe.Billing.Meter;
  let suffix = 0;

  beforeAll(async () => {
    catalogDir = mkdtempSync(join(tmpdir(), 'tollgate-stripe-meter-'));
    stripe = await startStripeServer({ clock: () => clock.now() });
    stripeApi = new Stripe('sk_test_tollgate_meter_fixtures', { host: stripe.host, port: stripe.port, protocol: 'http' });
    meter = await stripeApi.billing.meters.create({
      display_name: 'API calls',
      event_name: 'api_calls',
      default_aggregation: { formula: 'sum' },
    });
    service = await startTestApp({
      mode: 'production',
      clock,
      // Nothing runs by itself: the test runs each sync pass, so it can move the clock between an attempt and its retry.
      timers: new ManualClock(0),
      env: {
        TOLLGATE_CATALOG: writeCatalog(catalogDir),
        TOLLGATE_STRIPE_SECRET_KEY: secretKey,
        TOLLGATE_STRIPE_WEBHOOK_SECRET: `${webhookSecret},${thinEventsSecret}`,
        TOLLGATE_STRIPE_API_BASE: stripe.url,
        TOLLGATE_STRIPE_TIMEOUT_MS: '150',
        TOLLGATE_STRIPE_RETRY_BASE_MS: '1',
        TOLLGATE_STRIPE_RETRY_MAX_MS: '2',
      },
    });
  });

  afterAll(async () => {
    await service?.close();
    await stripe?.close();
    rmSync(catalogDir, { recursive: true, force: true });
  });

  const db = () => service.app.db;
  const deliver = (event: object, options: Partial<WebhookOptions> = {}) =>
    stripe.sendWebhook(`${service.httpUrl}/webhooks/stripe`, event, { secret: webhookSecret, timestamp: Math.floor(clock.now() / 1000), ...options });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * One sync pass with a usage scan, as leader, after the retry delays (a few ms of the database's clock, which no
   * test clock moves) have run out.
   */
  async function syncPass() {
    await sleep(10);
    service.app.stripe.sync!.requestUsageScan();
    const summary = await service.app.stripeSync!.runOnce();
    expect(summary).toBeDefined();
    return summary!;
  }

  /** A customer on a meter-mode plan (Enterprise unless named), with its Stripe customer made already. */
  async function meteredCustomer(planId = 'enterprise'): Promise<{ customerId: string; stripeCustomerId: string; subscription: Subscription }> {
    const customerId = `meter-customer-${++suffix}`;
    await service.app.accounts.createCustomer({ id: customerId, name: `Meter Customer ${suffix}` });
    const subscription = await service.app.accounts.subscribe(customerId, planId);
    await syncPass();
    const [mapping] = await db().query<{ stripe_customer_id: string }>('SELECT stripe_customer_id FROM stripe_customers WHERE customer_id = $1', [customerId]);
    return { customerId, stripeCustomerId: mapping!.stripe_customer_id, subscription };
  }

  /** Billable usage as metering leaves it: a rollup of the subscription's current period. */
  async function addUsage(subscription: Subscription, units: number): Promise<void> {
    await db().query(
      `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units,
                                  denied_calls, request_bytes, response_bytes)
       VALUES ($1, $2, $3, 'list-pets', $4, $4, $4, $4, 0, 0, 0)
       ON CONFLICT (customer_id, subscription_id, period_start, endpoint_id) DO UPDATE SET
         billable_units = usage_rollups.billable_units + EXCLUDED.billable_units`,
      [subscription.customerId, subscription.id, subscription.periodAnchor, units],
    );
    await markForRating(db(), [subscription.id]);
  }

  /** What Stripe's meter counts for the customer over the subscription's first period, as its API reports it. */
  async function stripeMeterTotal(stripeCustomerId: string, subscription: Subscription): Promise<number> {
    const start = Math.floor(new Date(subscription.periodAnchor).getTime() / 60_000) * 60;
    const summaries = await stripeApi.billing.meters.listEventSummaries(meter.id, {
      customer: stripeCustomerId,
      start_time: start,
      end_time: start + 40 * 86_400,
    });
    return summaries.data.reduce((sum, summary) => sum + summary.aggregated_value, 0);
  }

  const usageWork = (subscription: Subscription) => service.app.stripe.outbox.find('usage.report', `${subscription.id}@${new Date(subscription.periodAnchor).toISOString()}`);

  it('retries a meter event whose answer was lost with the same parameters, after the clock moved: Stripe counts it once', async () => {
    const { stripeCustomerId, subscription } = await meteredCustomer();
    await addUsage(subscription, 70);
    // Stripe applies the meter event, and its answer never arrives (the client times out).
    stripe.setFaults({ rate: 1, kinds: ['timeout'], phases: ['after'], limit: 1 });
    expect(await syncPass()).toMatchObject({ retried: 1 });
    stripe.setFaults(null);
    expect(stripe.state.faultLog.at(-1)).toMatchObject({ path: '/v1/billing/meter_events', phase: 'after' });

    clock.advance(90_000);
    expect(await syncPass()).toMatchObject({ done: 1, dead: 0 });
    expect(await usageWork(subscription)).toMatchObject({ status: 'done' });
    expect(stripe.state.stats.idempotentReplays).toBeGreaterThan(0);
    expect(await stripeMeterTotal(stripeCustomerId, subscription)).toBe(70);

    // Usage that grows afterwards is a new event, with a new timestamp, and counted too.
    await addUsage(subscription, 5);
    clock.advance(60_000);
    expect(await syncPass()).toMatchObject({ done: 1 });
    expect(await stripeMeterTotal(stripeCustomerId, subscription)).toBe(75);
  });

  it('takes a meter event Stripe already has as reported, whether or not its refusal names the identifier', async () => {
    const { stripeCustomerId, subscription } = await meteredCustomer();
    await addUsage(subscription, 30);
    // Stripe applied the event but saved a failure under the key: the next attempt uses new keys, and Stripe then
    // refuses the event's identifier as a duplicate.
    stripe.setFaults({ rate: 1, kinds: ['500'], phases: ['after'], limit: 1 });
    expect(await syncPass()).toMatchObject({ retried: 1 });
    stripe.setFaults(null);
    expect(await syncPass()).toMatchObject({ done: 1, dead: 0 });
    expect(await stripeMeterTotal(stripeCustomerId, subscription)).toBe(30);

    const refusal = (fields: { message: string; param?: string; code?: string }) =>
      new Stripe.errors.StripeInvalidRequestError({ type: 'invalid_request_error', statusCode: 400, ...fields } as never);
    expect(isDuplicateMeterEvent(refusal({ message: 'An event already exists with identifier x.', param: 'identifier' }))).toBe(true);
    expect(isDuplicateMeterEvent(refusal({ message: 'An event already exists with identifier x.' }))).toBe(true);
    expect(isDuplicateMeterEvent(refusal({ message: 'Duplicate meter event.', code: 'duplicate_meter_event' }))).toBe(true);
    expect(isDuplicateMeterEvent(refusal({ message: 'The identifier must be at most 100 characters.', param: 'identifier' }))).toBe(false);
    expect(isDuplicateMeterEvent(refusal({ message: 'No such customer: cus_x', param: 'payload' }))).toBe(false);
    const keyReused = new Stripe.errors.StripeIdempotencyError({ type: 'idempotency_error', statusCode: 400, message: 'Keys for idempotent requests can only be used with the same parameters' } as never);
    expect(isDuplicateMeterEvent(keyReused)).toBe(false);
  });

  it("sends the pinned API version with every request, and our own idempotency key with every write (customer updates too)", async () => {
    const { customerId } = await meteredCustomer();
    const from = stripe.state.requestLog.length;
    await service.app.accounts.updateCustomer(customerId, { name: 'Renamed Pets' });
    await syncPass();
    const sent = stripe.state.requestLog.slice(from);
    expect(sent.some((request) => request.method === 'POST' && request.path.startsWith('/v1/customers/'))).toBe(true);
    const ours = stripe.state.requestLog.filter((request) => request.apiKey === secretKey);
    expect(ours.length).toBeGreaterThan(5);
    expect(new Set(ours.map((request) => request.stripeVersion))).toEqual(new Set([stripeApiVersion]));
    const writes = ours.filter((request) => request.method === 'POST');
    expect(writes.filter((request) => !request.idempotencyKey?.startsWith('tollgate:'))).toEqual([]);
  });

  it('marks usage Stripe refuses after accepting it failed (meter error report), and reconcile compares meter totals', async () => {
    const { customerId, stripeCustomerId, subscription } = await meteredCustomer();
    await addUsage(subscription, 40);
    expect(await syncPass()).toMatchObject({ done: 1 });
    const clean = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
    expect(clean.body.meters).toEqual({ missing: [], totalMismatch: [], failed: [] });

    // Stripe's asynchronous validation drops the event (say the customer was deleted in Stripe meanwhile) and
    // reports it through a thin event, which names only itself: the report is fetched from /v2/core/events.
    const [identifier, event] = [...stripe.state.meterEvents].find(([, candidate]) => candidate.payload.stripe_customer_id === stripeCustomerId)!;
    expect(event.payload.value).toBe('40');
    stripe.state.meterEvents.delete(identifier);
    const report = stripe.events.meterErrorReport('v1.billing.meter.error_report_triggered', meter.id, [
      { identifier, code: 'meter_event_customer_not_found', message: `No customer found for ${stripeCustomerId}` },
      { identifier: 'someone-elses-event', code: 'meter_event_customer_not_found', message: 'No customer found for cus_x' },
    ]);
    expect((await deliver(report, { secret: 'whsec_someone_else' })).status).toBe(400);
    const delivered = await deliver(report, { secret: thinEventsSecret });
    expect([delivered.status, JSON.parse(delivered.body).result]).toEqual([200, 'applied']);
    expect(JSON.parse((await deliver(report, { secret: thinEventsSecret })).body).result).toBe('duplicate');

    const [marked] = await db().query<{ failed_at: Date | null; failure: string | null }>(
      'SELECT failed_at, failure FROM stripe_usage_reports WHERE subscription_id = $1',
      [subscription.id],
    );
    expect(marked).toMatchObject({ failed_at: expect.any(Date), failure: `meter_event_customer_not_found: No customer found for ${stripeCustomerId}` });
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^tollgate_stripe_meter_errors_total\{code="meter_event_customer_not_found"\} 2$/m);

    const drift = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
    expect(drift.body.meters).toEqual({
      missing: [],
      totalMismatch: [{ customerId, eventName: 'api_calls', ours: '40', stripe: '0' }],
      failed: [{ subscriptionId: subscription.id, periodStart: new Date(subscription.periodAnchor).toISOString(), failure: expect.stringMatching(/^meter_event_customer_not_found/) }],
    });
    // Put back as Stripe would count it once the cause is fixed and the usage re-sent, for the tests that follow.
    stripe.state.meterEvents.set(identifier, event);
    await db().query('UPDATE stripe_usage_reports SET failed_at = NULL, failure = NULL WHERE subscription_id = $1', [subscription.id]);
  });

  it('reconcile retries a failed Stripe read, and answers 502 naming Stripe when it keeps failing', async () => {
    stripe.setFaults({ rate: 1, kinds: ['500'], phases: ['before'], limit: 2 });
    const recovered = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
    expect(recovered.status).toBe(200);
    expect(stripe.state.faultLog.slice(-2).map((fault) => fault.path)).toEqual(['/v1/customers?limit=100', '/v1/customers?limit=100']);

    stripe.setFaults({ rate: 1, kinds: ['500', 'drop'], phases: ['before'] });
    try {
      const failed = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
      expect(failed.status).toBe(502);
      expect(failed.body.error).toMatchObject({ code: 'bad_gateway', message: expect.stringMatching(/^reading customers from Stripe failed \(after 3 attempts\)/) });
    } finally {
      stripe.setFaults(null);
    }
  });

  describe('three-decimal currencies: Stripe collects amounts ending in 0, and our records equal what it collects', () => {
    it('invoice: sent rounded half-up to 10 minor units, the rounding recorded, and reconciled as matching', async () => {
      const customerId = `bhd-customer-${++suffix}`;
      await service.app.accounts.createCustomer({ id: customerId, name: 'Manama Pets' });
      await service.app.accounts.subscribe(customerId, 'pro-bhd');
      clock.advance(31 * 86_400_000 + 10 * 60_000);
      await service.app.ratingLoop.runOnce();
      const [invoice] = await db().query<{ id: string; total: string }>(`SELECT id, total FROM invoices WHERE customer_id = $1 AND status = 'finalized'`, [customerId]);
      expect(invoice!.total).toBe('19125');
      await syncPass();
      await syncPass();
      const [recorded] = await db().query<{ stripe_invoice_id: string; rounding: string }>('SELECT stripe_invoice_id, rounding FROM stripe_invoices WHERE invoice_id = $1', [invoice!.id]);
      const inStripe = stripe.state.invoices.get(recorded!.stripe_invoice_id)!;
      expect([inStripe.currency, inStripe.total, inStripe.status]).toEqual(['bhd', 19_130, 'open']);
      expect(BigInt(invoice!.total) + BigInt(recorded!.rounding)).toBe(BigInt(inStripe.total));

      stripe.markInvoicePaid(inStripe.id);
      expect(JSON.parse((await deliver(stripe.events.invoice('invoice.paid', inStripe.id))).body).result).toBe('applied');
      expect(stripe.state.invoices.get(inStripe.id)!.amount_paid).toBe(19_130);
      const report = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
      expect(report.status).toBe(200);
      expect(report.body.invoices.amountMismatch).toEqual([]);
    });

    it('Checkout top-up: the amount is rounded before the session, and the wallet is credited what Stripe collected', async () => {
      const customerId = `bhd-wallet-${++suffix}`;
      await service.app.accounts.createCustomer({ id: customerId, name: 'Muscat Pets' });
      const created = await service.admin('POST', `/v1/customers/${customerId}/wallet/checkout-sessions`, {
        amount: 2_505,
        currency: 'BHD',
        successUrl: 'https://petstore.example.com/wallet/thanks',
      });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ amount: '2510', currency: 'BHD', status: 'open' });
      const session = stripe.completeCheckoutSession(created.body.stripeSessionId);
      expect(session.amount_total).toBe(2_510);
      expect(JSON.parse((await deliver(stripe.events.checkoutSession('checkout.session.completed', session.id))).body).result).toBe('applied');
      const entries = await db().query<{ amount: string; currency: string }>('SELECT amount, currency FROM wallet_entries WHERE customer_id = $1', [customerId]);
      expect(entries).toEqual([{ amount: '2510', currency: 'BHD' }]);

      const tooSmall = await service.admin('POST', `/v1/customers/${customerId}/wallet/checkout-sessions`, {
        amount: 4,
        currency: 'KWD',
        successUrl: 'https://petstore.example.com/wallet/thanks',
      });
      expect(tooSmall.status).toBe(400);
      expect(tooSmall.body.error).toMatchObject({ field: 'amount' });
    });

    it('meter mode: Stripe prices the units at a collectible price; Tollgate reports them once and bills none of them', async () => {
      // Stripe's own price of the units, in fils: a decimal unit amount is rounded when Stripe bills.
      const price = (fields: Partial<Stripe.PriceCreateParams>) =>
        stripeApi.prices.create({ currency: 'bhd', product_data: { name: 'API calls (BHD)' }, recurring: { interval: 'month', usage_type: 'metered', meter: meter.id }, ...fields });
      const stripePrice = await price({ unit_amount_decimal: Stripe.Decimal.from('12.5') });
      expect([stripePrice.unit_amount, String(stripePrice.unit_amount_decimal)]).toEqual([null, '12.5']);

      const { customerId, stripeCustomerId, subscription } = await meteredCustomer('enterprise-bhd');
      await addUsage(subscription, 1_234);
      expect(await syncPass()).toMatchObject({ done: 1, dead: 0 });
      const [reported] = await db().query<{ reported_units: string }>('SELECT reported_units FROM stripe_usage_reports WHERE subscription_id = $1', [subscription.id]);
      const meterTotal = await stripeMeterTotal(stripeCustomerId, subscription);
      expect([reported!.reported_units, meterTotal]).toEqual(['1234', 1_234]);
      const reconciled = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
      expect(reconciled.body.meters).toEqual({ missing: [], totalMismatch: [], failed: [] });
      // What Stripe collects for them: 1,234 × 12.5 fils = 15.425 BHD, collected as 15.430 BHD.
      expect(roundForStripe(BigInt(meterTotal) * 125n / 10n, 'BHD')).toBe(15_430n);

      // Our own invoice of the period keeps our rating of the usage (not rounded: nothing collects it) ...
      clock.advance(31 * 86_400_000 + 10 * 60_000);
      await service.app.ratingLoop.runOnce();
      const [invoice] = await db().query<{ id: string; total: string; currency: string }>(`SELECT id, total, currency FROM invoices WHERE customer_id = $1 AND status = 'finalized'`, [customerId]);
      const lines = await db().query<{ plan_id: string; kind: string; amount: string }>(
        `SELECT plan_id, kind, amount FROM invoice_lines WHERE invoice_id = $1 AND kind <> 'revenue_share' ORDER BY position`,
        [invoice!.id],
      );
      expect([invoice!.currency, invoice!.total, lines]).toEqual(['BHD', '15425', [{ plan_id: 'enterprise-bhd', kind: 'usage', amount: '15425' }]]);
      // ... and sends none of it to Stripe: the customer pays the usage once, on Stripe's own invoice from the meter.
      await syncPass();
      await syncPass();
      expect(await db().query('SELECT invoice_id FROM stripe_invoices WHERE invoice_id = $1', [invoice!.id])).toEqual([]);
      expect([...stripe.state.invoices.values()].filter((candidate) => candidate.customer === stripeCustomerId)).toEqual([]);
      expect([...stripe.state.invoiceItems.values()].filter((item) => item.customer === stripeCustomerId)).toEqual([]);
      expect(await db().query('SELECT amount FROM wallet_entries WHERE customer_id = $1', [customerId])).toEqual([]);
    });
  });
});
