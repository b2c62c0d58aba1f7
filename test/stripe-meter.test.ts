import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Subscription } from '../src/accounts/types.js';
import { ManualClock } from '../src/kernel/clock.js';
import { isDuplicateMeterEvent } from '../src/stripe/usage.js';
import { startStripeServer, type StripeServer } from './stripe-server/server.js';
import { startTestApp, type TestApp } from './support/services.js';

const secretKey = 'sk_test_tollgate_meter';
const webhookSecret = 'whsec_tollgate_meter_test';

/** The PetStore catalog with Enterprise in meter mode: its usage goes to the Stripe meter `api_calls`. */
function writeCatalog(dir: string): string {
  const document = parse(readFileSync('examples/petstore.yaml', 'utf8')) as { plans: { id: string; stripe?: object }[] };
  document.plans.find((plan) => plan.id === 'enterprise')!.stripe = { meter_event_name: 'api_calls' };
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
    stripeApi = new Stripe(secretKey, { host: stripe.host, port: stripe.port, protocol: 'http' });
    meter = await stripeApi.billing.meters.create({
      display_name: 'API calls',
      event_name: 'api_calls',
      default_aggregation: { formula: 'sum' },
    });
    service = await startTestApp({
      mode: 'production',
      clock,
      env: {
        TOLLGATE_CATALOG: writeCatalog(catalogDir),
        TOLLGATE_STRIPE_SECRET_KEY: secretKey,
        TOLLGATE_STRIPE_WEBHOOK_SECRET: webhookSecret,
        TOLLGATE_STRIPE_API_BASE: stripe.url,
        TOLLGATE_STRIPE_TIMEOUT_MS: '150',
        // The test runs each sync pass itself, so it can move the clock between an attempt and its retry.
        TOLLGATE_STRIPE_SYNC_INTERVAL_MS: '600000',
        TOLLGATE_STRIPE_RETRY_BASE_MS: '1',
        TOLLGATE_STRIPE_RETRY_MAX_MS: '2',
        TOLLGATE_STRIPE_USAGE_REPORT_INTERVAL_MS: '1',
      },
    });
    await service.app.ratingLoop.stop();
  });

  afterAll(async () => {
    await service?.close();
    await stripe?.close();
    rmSync(catalogDir, { recursive: true, force: true });
  });

  const db = () => service.app.db;
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** One sync pass as leader, after the retry delays (a few ms of the database's clock) have run out. */
  async function syncPass() {
    await sleep(10);
    const summary = await service.app.stripe.sync!.pass();
    expect(summary).toBeDefined();
    return summary!;
  }

  /** A customer on Enterprise (meter mode), with its Stripe customer made already. */
  async function meteredCustomer(): Promise<{ customerId: string; stripeCustomerId: string; subscription: Subscription }> {
    const customerId = `meter-customer-${++suffix}`;
    await service.app.accounts.createCustomer({ id: customerId, name: `Meter Customer ${suffix}` });
    const subscription = await service.app.accounts.subscribe(customerId, 'enterprise');
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
});
