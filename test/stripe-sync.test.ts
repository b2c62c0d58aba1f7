import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { Subscription } from '../src/identity/types.js';
import { runCli } from './support/cli.js';
import { ManualClock } from '../src/kernel/clock.js';
import { leadershipApplicationName, leadershipLockId } from '../src/store/leadership.js';
import { enqueueStripeWork } from '../src/stripe/sql-outbox.js';
import { startStripeServer, type StripeServer } from './stripe-server/server.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';
import { markForRating } from './support/usage.js';

const customerCount = 50;
const meteredCustomerCount = 10;
const day = 86_400_000;
/** Past a monthly period's end and billing's wait for late usage, so the rating loop finalizes the period. */
const aMonthLater = 31 * day + 10 * 60_000;

/**
 * The PetStore catalog with a partner's revenue share on Pro (reported, never billed: it must not reach Stripe) and
 * Enterprise in meter mode (its usage goes to the Stripe meter `api_calls`), and Pro priced in Icelandic króna.
 */
function writeCatalog(dir: string): string {
  const document = parse(readFileSync('examples/petstore.yaml', 'utf8')) as { plans: { id: string; stripe?: object; pricing: object }[] };
  const plan = (id: string) => document.plans.find((candidate) => candidate.id === id)!;
  plan('pro').pricing = { ...plan('pro').pricing, revenue_share: { partner: 'petstore-partners', percent: 30 } };
  plan('enterprise').stripe = { meter_event_name: 'api_calls' };
  // Króna: no decimals for us and ISO 4217, two in Stripe's API.
  document.plans.push({ ...plan('pro'), id: 'pro-isk', pricing: { currency: 'ISK', recurring_fee: '4900' } });
  const file = join(dir, 'catalog.yaml');
  writeFileSync(file, stringify(document));
  return file;
}

const until = async (condition: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
};

const groupBy = <T>(items: Iterable<T>, key: (item: T) => string | undefined) => {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const value = key(item);
    if (value !== undefined) groups.set(value, [...(groups.get(value) ?? []), item]);
  }
  return groups;
};

describe('Stripe sync', () => {
  const clock = new ManualClock(Date.now());
  let stripe: StripeServer;
  let service: TestApp;
  let catalogDir: string;

  beforeAll(async () => {
    catalogDir = mkdtempSync(join(tmpdir(), 'tollgate-stripe-sync-'));
    stripe = await startStripeServer({ clock: () => clock.now() });
    // The meter Enterprise's usage goes to, as the operator makes it in Stripe (reconcile compares its totals).
    await new Stripe('sk_test_tollgate_sync_fixtures', { host: stripe.host, port: stripe.port, protocol: 'http' }).billing.meters.create({
      display_name: 'API calls',
      event_name: 'api_calls',
      default_aggregation: { formula: 'sum' },
    });
    service = await startTestApp({
      mode: 'production',
      clock,
      env: {
        TOLLGATE_CATALOG: writeCatalog(catalogDir),
        TOLLGATE_STRIPE_SECRET_KEY: 'sk_test_tollgate_sync',
        TOLLGATE_STRIPE_API_BASE: stripe.url,
        // A dropped or hung request fails fast and retries come quickly, so the test takes seconds.
        TOLLGATE_STRIPE_TIMEOUT_MS: '150',
        TOLLGATE_STRIPE_SYNC_INTERVAL_MS: '20',
        // The stripe package waits half a second before re-sending over a dropped connection; overlap those waits.
        TOLLGATE_STRIPE_CONCURRENCY: '16',
        TOLLGATE_STRIPE_RETRY_BASE_MS: '5',
        TOLLGATE_STRIPE_RETRY_MAX_MS: '50',
        TOLLGATE_STRIPE_MAX_ATTEMPTS: '50',
        TOLLGATE_STRIPE_USAGE_REPORT_INTERVAL_MS: '20',
      },
    });
    // Billing runs when a test asks, at the clock the test set.
    await service.app.ratingLoop.stop();
  });

  afterAll(async () => {
    await service?.close();
    await stripe?.close();
    rmSync(catalogDir, { recursive: true, force: true });
  });

  const db = () => service.app.db;
  const outboxSettled = async () => (await service.app.stripe.outbox.backlog()).pending === 0;
  const finalizedInvoices = (customerPattern: string) =>
    db().query<{ id: string; customer_id: string; total: string; billed_lines: string }>(
      `SELECT i.id, i.customer_id, i.total,
              (SELECT count(*) FROM invoice_lines l WHERE l.invoice_id = i.id AND l.kind <> 'revenue_share') AS billed_lines
       FROM invoices i WHERE i.customer_id LIKE $1 AND i.status = 'finalized' ORDER BY i.id`,
      [customerPattern],
    );

  /**
   * Another replica, as far as the app can tell: a session that ends the app's leadership session, takes the lock and
   * raises the epoch.
   * Ending the session holding it again each try, should the app's own next attempt have come first.
   */
  async function holdLeadership(): Promise<pg.Client> {
    const holder = new pg.Client({ connectionString: service.app.config.databaseUrl });
    await holder.connect();
    await until(
      async () => {
        await holder.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [leadershipApplicationName]);
        return (await holder.query('SELECT pg_try_advisory_lock($1) AS locked', [leadershipLockId])).rows[0].locked;
      },
      5_000,
      'the leadership lock',
    );
    // As a replica taking over does: the app's passes still running are refused from here on.
    await holder.query("UPDATE leader_epoch SET epoch = epoch + 1, holder = 'the test'");
    await until(async () => !service.app.leadership.leading, 5_000, 'the app to stop leading');
    return holder;
  }

  it('syncs a month of invoices for many customers through 30% faults with nothing in Stripe twice', async () => {
    for (let i = 0; i < customerCount; i++) {
      await service.app.accounts.createCustomer({ id: `acme-${i}`, name: `Acme ${i}`, email: `billing@acme-${i}.example` });
      await service.app.accounts.subscribe(`acme-${i}`, 'pro');
    }
    stripe.setFaults({ rate: 0.3, kinds: ['500', '429', 'timeout', 'drop'], seed: 6 });
    clock.advance(aMonthLater);
    await service.app.ratingLoop.runOnce();
    const invoices = await finalizedInvoices('acme-%');
    expect(invoices).toHaveLength(customerCount);
    await until(outboxSettled, 45_000, 'the outbox to drain');
    stripe.setFaults(null);

    const { state } = stripe;
    expect(state.faultLog.filter((fault) => fault.phase === 'after').length).toBeGreaterThan(10);
    expect(state.faultLog.filter((fault) => fault.kind === '429').length).toBeGreaterThan(10);
    expect((await service.app.stripe.outbox.backlog()).dead).toBe(0);

    const customers = groupBy(state.customers.values(), (customer) => customer.metadata.tollgate_customer_id);
    expect(customers.size).toBe(customerCount);
    for (const [customerId, copies] of customers) {
      expect(copies, `Stripe customers of ${customerId}`).toHaveLength(1);
      expect(copies[0]).toMatchObject({ name: `Acme ${customerId.slice(5)}`, email: `billing@${customerId}.example` });
    }

    const stripeInvoices = groupBy(state.invoices.values(), (invoice) => invoice.metadata?.tollgate_invoice_id);
    expect(stripeInvoices.size).toBe(customerCount);
    for (const invoice of invoices) {
      const copies = stripeInvoices.get(invoice.id) ?? [];
      expect(copies, `Stripe invoices of ${invoice.id}`).toHaveLength(1);
      expect(copies[0]).toMatchObject({
        status: 'open',
        total: Number(invoice.total),
        currency: 'usd',
        auto_advance: true,
        collection_method: 'charge_automatically',
        customer: customers.get(invoice.customer_id)![0]!.id,
      });
      const items = [...state.invoiceItems.values()].filter((item) => item.invoice === copies[0]!.id);
      const expectedLines = Array.from({ length: Number(invoice.billed_lines) }, (_, position) => String(position));
      expect(items.map((item) => item.metadata?.tollgate_line).sort()).toEqual(expectedLines.sort());
    }

    const recorded = await db().query<{ n: string }>(`SELECT count(*) AS n FROM stripe_invoices WHERE customer_id LIKE 'acme-%' AND status = 'open'`);
    expect(Number(recorded[0]!.n)).toBe(customerCount);
  }, 60_000);

  it('reports usage of meter-mode plans to the Stripe meter once, through faults, and leaves their invoices to Stripe', async () => {
    stripe.setFaults({ rate: 0.3, kinds: ['500', '429', 'drop'], seed: 11 });
    const subscriptions: Subscription[] = [];
    for (let i = 0; i < meteredCustomerCount; i++) {
      const customer = await service.app.accounts.createCustomer({ id: `metered-${i}`, name: `Metered ${i}` });
      subscriptions.push(await service.app.accounts.subscribe(customer.id, 'enterprise'));
    }
    /** Usage as metering leaves it: rollups per subscription period and endpoint. */
    const addUsage = async (units: number) => {
      for (const subscription of subscriptions) {
        for (const endpoint of ['list-pets', 'analytics']) {
          await db().query(
            `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units,
                                        denied_calls, request_bytes, response_bytes)
             VALUES ($1, $2, $3, $4, $5, $5, $5, $5, 0, 0, 0)
             ON CONFLICT (customer_id, subscription_id, period_start, endpoint_id) DO UPDATE SET
               billable_units = usage_rollups.billable_units + EXCLUDED.billable_units`,
            [subscription.customerId, subscription.id, subscription.periodAnchor, endpoint, units],
          );
        }
      }
      await markForRating(db(), subscriptions.map((subscription) => subscription.id));
    };
    const allReported = (expected: number) => async () => {
      const totals = new Map<string, number>();
      for (const event of stripe.state.meterEvents.values()) {
        const customer = event.payload.stripe_customer_id!;
        if (event.event_name === 'api_calls') totals.set(customer, (totals.get(customer) ?? 0) + Number(event.payload.value));
      }
      const mapped = await db().query<{ stripe_customer_id: string }>(`SELECT stripe_customer_id FROM stripe_customers WHERE customer_id LIKE 'metered-%'`);
      return mapped.length === meteredCustomerCount && mapped.every((row) => totals.get(row.stripe_customer_id) === expected);
    };

    await addUsage(700);
    await until(allReported(1_400), 30_000, 'the first usage reports');
    await addUsage(55);
    await until(allReported(1_510), 30_000, 'the usage that grew since');
    await until(outboxSettled, 30_000, 'the outbox to drain');
    stripe.setFaults(null);
    // Growth is sent as it happens, never counted twice: the totals stay put once everything is reported, after a
    // usage scan and a sync pass both begun now (the first runOnce() may join a pass begun earlier).
    service.app.stripe.sync!.requestUsageScan();
    await service.app.stripeSync!.runOnce();
    await service.app.stripeSync!.runOnce();
    expect(await allReported(1_510)()).toBe(true);

    clock.advance(aMonthLater);
    await service.app.ratingLoop.runOnce();
    const meteredInvoices = await finalizedInvoices('metered-%');
    expect(meteredInvoices).toHaveLength(meteredCustomerCount);
    await until(outboxSettled, 10_000, 'the invoice work');
    const pushed = new Set([...stripe.state.invoices.values()].map((invoice) => invoice.metadata?.tollgate_invoice_id));
    expect(meteredInvoices.filter((invoice) => pushed.has(invoice.id))).toEqual([]);
  }, 60_000);

  it('runs the sync on the leader only: nothing moves while another replica leads', async () => {
    const holder = await holdLeadership();
    try {
      await service.app.accounts.createCustomer({ id: 'follower-test', name: 'Follower Test' });
      // A pass begun after the customer was created finds another leader (the first runOnce() may join one begun
      // while the app led, which the takeover may have refused).
      await service.app.stripeSync!.runOnce().catch(() => {});
      expect(await service.app.stripeSync!.runOnce()).toBeUndefined();
      expect((await service.app.stripe.outbox.find('customer.sync', 'follower-test'))?.status).toBe('pending');
    } finally {
      await holder.end();
    }
    // The app leads again at its next attempt (1–2 s) and syncs at once.
    await until(async () => (await service.app.stripe.outbox.find('customer.sync', 'follower-test'))?.status === 'done', 5_000, 'the sync after the app leads again');
  });

  it('shows work that cannot succeed as dead letters (admin API, CLI, metric) and retries it on request', async () => {
    await enqueueStripeWork(db(), 'invoice.finalized', 'inv_does_not_exist');
    await until(async () => (await service.app.stripe.outbox.find('invoice.finalized', 'inv_does_not_exist'))?.status === 'dead', 5_000, 'the dead letter');

    const listed = await service.admin('GET', '/v1/stripe/outbox?status=dead');
    expect(listed.body.data).toEqual([
      expect.objectContaining({ kind: 'invoice.finalized', subjectId: 'inv_does_not_exist', status: 'dead', lastError: 'invoice inv_does_not_exist not found' }),
    ]);
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^tollgate_stripe_outbox_items\{status="dead"\} 1$/m);
    expect(metrics).toMatch(/^tollgate_stripe_sync_attempts_total\{kind="invoice.finalized",result="dead"\} 1$/m);

    const printed = await cli(['stripe', 'dead-letters']);
    expect(JSON.parse(printed.stdout)).toMatchObject({ data: [{ subjectId: 'inv_does_not_exist' }] });
    const retried = await cli(['stripe', 'retry', listed.body.data[0].id]);
    expect(JSON.parse(retried.stdout)).toMatchObject({ subjectId: 'inv_does_not_exist', status: 'pending', attempts: 0 });
    expect((await service.admin('POST', '/v1/stripe/outbox/999999/retry')).status).toBe(404);
  });

  it('reconciles Stripe with our records and repairs the drift', async () => {
    await until(outboxSettled, 10_000, 'the outbox to drain');
    // Drift: an answer lost (Stripe has the invoice, we have no record of it), and pushes that never ran.
    const pushedBefore = await finalizedInvoices('acme-%');
    const lostAnswer = pushedBefore[0]!;
    await db().query('DELETE FROM stripe_invoices WHERE invoice_id = $1', [lostAnswer.id]);
    const holder = await holdLeadership();
    try {
      clock.advance(aMonthLater);
      // Rated outside the led job (its job is stopped, and another replica leads): the sync is not there to push.
      await service.app.rating.pass();
      await db().query(`UPDATE stripe_outbox SET status = 'done' WHERE kind = 'invoice.finalized' AND status = 'pending'`);
    } finally {
      await holder.end();
    }
    await until(async () => service.app.leadership.leading, 5_000, 'the app to lead again');
    const pushed = new Set(pushedBefore.map((invoice) => invoice.id));
    const neverSent = (await finalizedInvoices('acme-%')).map((invoice) => invoice.id).filter((id) => !pushed.has(id));
    expect(neverSent).toHaveLength(customerCount);

    const drift = await cli(['stripe', 'reconcile']);
    expect(drift.code).toBe(1);
    const report = JSON.parse(drift.stdout);
    expect(report.invoices).toMatchObject({ unrecorded: [{ invoiceId: lostAnswer.id }], duplicated: [], amountMismatch: [], unsettled: [] });
    expect(report.invoices.missing.sort()).toEqual(neverSent);
    expect(report.customers).toEqual({ missing: [], unrecorded: [], duplicated: [] });
    // The metered customers' usage, sent through faults, is all in the meter, once.
    expect(report.meters).toEqual({ missing: [], totalMismatch: [], failed: [] });

    const repaired = await service.admin('POST', '/v1/stripe/reconcile', { repair: true });
    expect(repaired.body.repaired).toEqual({ requeued: customerCount, recorded: 1, settled: 0 });
    await until(outboxSettled, 20_000, 'the re-queued pushes');
    const clean = await cli(['stripe', 'reconcile']);
    expect(JSON.parse(clean.stdout).invoices).toMatchObject({ missing: [], unrecorded: [] });
    expect(clean.code).toBe(0);
  }, 40_000);

  it('reconciles a króna invoice, which Stripe holds at a hundred times our amount, as matching', async () => {
    await service.app.accounts.createCustomer({ id: 'isk-1', name: 'Reykjavik Pets' });
    await service.app.accounts.subscribe('isk-1', 'pro-isk');
    clock.advance(aMonthLater);
    await service.app.ratingLoop.runOnce();
    await until(outboxSettled, 20_000, 'the outbox to drain');
    const [invoice] = await finalizedInvoices('isk-%');
    expect(invoice!.total).toBe('4900');
    const inStripe = [...stripe.state.invoices.values()].filter((candidate) => candidate.metadata?.tollgate_invoice_id === invoice!.id);
    expect(inStripe.map((candidate) => [candidate.currency, candidate.total])).toEqual([['isk', 490_000]]);

    const report = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
    expect(report.body.invoices.amountMismatch).toEqual([]);
    // A real difference is still found, and given in our units.
    const drift = stripe.state.invoices.get(inStripe[0]!.id)!;
    drift.total = 480_000;
    try {
      const drifted = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
      expect(drifted.body.invoices.amountMismatch).toEqual([{ invoiceId: invoice!.id, stripeInvoiceId: inStripe[0]!.id, ours: '4900', stripe: '4800' }]);
    } finally {
      drift.total = 490_000;
    }
  }, 30_000);

  it('bills only the part of a period after a move out of meter mode: Stripe billed the meter-mode plan itself', async () => {
    await service.app.accounts.createCustomer({ id: 'leaving-meter', name: 'Leaving Meter Mode' });
    const subscription = await service.app.accounts.subscribe('leaving-meter', 'enterprise');
    clock.advance(20 * day);
    await service.app.accounts.changePlan(subscription.id, 'pro');
    clock.advance(aMonthLater);
    await service.app.ratingLoop.runOnce();
    await until(outboxSettled, 10_000, 'the invoice work');
    const [invoice] = await finalizedInvoices('leaving-meter');
    const lines = await db().query<{ plan_id: string; kind: string; amount: string }>(
      `SELECT plan_id, kind, amount FROM invoice_lines WHERE invoice_id = $1 AND kind <> 'revenue_share' ORDER BY position`,
      [invoice!.id],
    );
    // Our invoice keeps the whole period: the Enterprise fee and its credit, then Pro for the rest of it.
    expect(lines.map((line) => [line.plan_id, line.kind])).toEqual([
      ['enterprise', 'recurring_fee'],
      ['enterprise', 'proration_credit'],
      ['pro', 'recurring_fee'],
    ]);
    const proCharge = BigInt(lines[2]!.amount);
    const [inStripe] = [...stripe.state.invoices.values()].filter((candidate) => candidate.metadata?.tollgate_invoice_id === invoice!.id);
    expect(inStripe!.total).toBe(Number(proCharge));
    const report = await service.admin('POST', '/v1/stripe/reconcile', { repair: false });
    expect(report.body.invoices.amountMismatch).toEqual([]);
  });

  /** Runs the CLI against this test's server, its --json output captured. */
  function cli(argv: string[]) {
    return runCli({ TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken }, ...argv, '--json');
  }
});
