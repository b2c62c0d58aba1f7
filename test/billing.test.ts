import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogPricing, previewPlanChange } from '../src/billing/period-invoice.js';
import { RatingLoop } from '../src/billing/rating-loop.js';
import { SqlInvoiceRecords } from '../src/billing/sql-invoice-records.js';
import { SqlRatingWork } from '../src/billing/sql-rating-work.js';
import { SqlSubscriptionHistories } from '../src/billing/sql-subscription-histories.js';
import { SqlWalletRecords } from '../src/billing/sql-wallet-records.js';
import { WalletService } from '../src/billing/wallet.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { type Leadership, Scheduler } from '../src/kernel/scheduler.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { periodContaining } from '../src/rating/period.js';
import { ratePlanChange } from '../src/rating/rate.js';
import { startTestApp, type TestApp } from './support/services.js';
import { markForRating } from './support/usage.js';

/**
 * Issue #5: billing periods, invoices and the rating loop, through the service (admin API, PostgreSQL or PGlite,
 * the metering rollups), with a hand-moved clock.
 */

const at = (iso: string) => Date.parse(iso);
const minutes = (n: number) => n * 60_000;

interface Rollup {
  endpoint: string;
  calls: number;
  units: number;
}

describe.each(['embedded', 'production'] as const)('billing (%s)', (mode) => {
  let service: TestApp;
  const clock = new ManualClock(at('2026-11-01T00:00:00Z'));
  let suffix = 0;

  beforeAll(async () => {
    service = await startTestApp({ mode, clock });
    // Passes run when a test asks, so each sees exactly the clock it set.
    await service.app.ratingLoop.stop();
  });
  afterAll(async () => {
    await service?.close();
  });

  async function customer(): Promise<string> {
    const id = `cust-${mode}-${++suffix}`;
    expect((await service.admin('POST', '/v1/customers', { id, name: id })).status).toBe(201);
    return id;
  }

  async function purchase(customerId: string, plan: string, periodAnchor?: string) {
    const response = await service.admin('POST', `/v1/customers/${customerId}/purchases`, { plan, ...(periodAnchor && { periodAnchor }) });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body as { subscription: { id: string; periodAnchor: string }; invoice: Invoice | null };
  }

  /** Usage as the metering pipeline leaves it: rollups per subscription period and endpoint. */
  async function meter(customerId: string, subscriptionId: string, periodStart: number, rollups: Rollup[]) {
    for (const rollup of rollups) {
      await service.app.db.query(
        `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units,
           denied_calls, request_bytes, response_bytes) VALUES ($1, $2, $3, $4, $5, $6, $5, $6, 0, 0, 0)`,
        [customerId, subscriptionId, new Date(periodStart), rollup.endpoint, rollup.calls, rollup.units],
      );
    }
    await markForRating(service.app.db, [subscriptionId]);
  }

  async function invoices(customerId: string): Promise<Invoice[]> {
    const listed = await service.admin('GET', `/v1/customers/${customerId}/invoices`);
    expect(listed.status).toBe(200);
    return Promise.all(listed.body.data.map(async (invoice: Invoice) => (await service.admin('GET', `/v1/invoices/${invoice.id}`)).body as Invoice));
  }

  const run = async () => {
    const result = await service.admin('POST', '/v1/billing/run');
    expect(result.body.led).toBe(true);
    return result.body as { rated: number; finalized: number };
  };

  it('rates the PetStore examples exactly through the invoice path, and a prorated first month', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const metered = await customer();
    const meteredSubscription = (await purchase(metered, 'metered')).subscription.id;
    const hybrid = await customer();
    const hybridSubscription = (await purchase(hybrid, 'hybrid')).subscription.id;
    const november = at('2026-11-01T00:00:00Z');
    await meter(metered, meteredSubscription, november, [
      { endpoint: 'list-pets', calls: 120_000, units: 120_000 },
      { endpoint: 'get-pet', calls: 30_000, units: 30_000 },
    ]);
    // 100,000 reads and 14,000 writes of weight 2: 128,000 units.
    await meter(hybrid, hybridSubscription, november, [
      { endpoint: 'list-pets', calls: 100_000, units: 100_000 },
      { endpoint: 'create-pet', calls: 14_000, units: 28_000 },
    ]);

    // Pro bought on November 16 on calendar-month billing: its first period is November, half of it active.
    clock.set(at('2026-11-16T00:00:00Z'));
    const pro = await customer();
    const bought = await purchase(pro, 'pro', '2026-12-01T00:00:00Z');
    expect(bought.invoice).toMatchObject({ total: '24.50', status: 'draft', periodStart: '2026-11-01T00:00:00.000Z' });

    clock.set(at('2026-11-20T00:00:00Z'));
    await run();
    const [meteredDraft] = await invoices(metered);
    expect(meteredDraft).toMatchObject({ status: 'draft', total: '1250.00', calls: 150_000, units: 150_000 });

    clock.set(at('2026-12-01T00:00:00Z') + minutes(6));
    await run();
    const meteredInvoice = (await invoices(metered)).find((invoice) => invoice.periodStart === '2026-11-01T00:00:00.000Z')!;
    expect(meteredInvoice).toMatchObject({ status: 'finalized', total: '1250.00', currency: 'USD', mode: 'postpaid', planId: 'metered' });
    expect(meteredInvoice.lines).toEqual([
      expect.objectContaining({
        kind: 'usage',
        amount: '1250.00',
        tiers: [
          { upTo: 100_000, quantity: '100000', unitPrice: '0.01', amount: '1000.00' },
          { upTo: 1_000_000, quantity: '50000', unitPrice: '0.005', amount: '250.00' },
        ],
      }),
    ]);
    expect(meteredInvoice.usage).toEqual([
      { endpointId: 'get-pet', calls: 30_000, units: 30_000 },
      { endpointId: 'list-pets', calls: 120_000, units: 120_000 },
    ]);

    const hybridInvoice = (await invoices(hybrid)).find((invoice) => invoice.status === 'finalized')!;
    expect(hybridInvoice.total).toBe('639.00');
    expect(hybridInvoice.lines.map((line) => [line.kind, line.description, line.amount])).toEqual([
      ['recurring_fee', 'Recurring fee (monthly)', '49.00'],
      ['usage', 'Included units: 10000 of 10000', '0.00'],
      ['usage', '118000 units at 0.005 USD', '590.00'],
    ]);

    const proInvoices = await invoices(pro);
    expect(proInvoices.map((invoice) => [invoice.periodStart, invoice.status, invoice.total])).toEqual([
      ['2026-12-01T00:00:00.000Z', 'draft', '49.00'],
      ['2026-11-01T00:00:00.000Z', 'finalized', '24.50'],
    ]);
    expect(proInvoices[1]!.lines[0]).toMatchObject({
      kind: 'recurring_fee',
      amount: '24.50',
      proration: { activeFrom: '2026-11-16T00:00:00.000Z', activeUntil: '2026-12-01T00:00:00.000Z', ratio: '0.5' },
    });

    const quote = await service.admin('GET', '/v1/plans/metered/quote?calls=150000');
    expect(quote.body).toMatchObject({ planId: 'metered', total: '1250.00' });
    expect((await service.admin('GET', '/v1/plans/hybrid/quote?calls=128000')).body.total).toBe('639.00');

    const report = await service.admin('GET', '/v1/reports/revenue?period=2026-11');
    expect(report.status).toBe(200);
    const byPlan = Object.fromEntries(report.body.byPlan.map((group: { id: string; revenue: string }) => [group.id, group.revenue]));
    expect(byPlan).toMatchObject({ metered: '1250.00', hybrid: '639.00', pro: '24.50' });
    const mrr = await service.admin('GET', '/v1/reports/mrr');
    expect(mrr.body.byPlan).toEqual(
      expect.arrayContaining([{ planId: 'hybrid', currency: 'USD', subscriptions: 1, recurringFee: '49.00', mrr: '49.00' }]),
    );
  });

  it('changes nothing when the loop runs again for a period, and refuses to change a finalized invoice', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const id = await customer();
    const subscription = (await purchase(id, 'metered')).subscription.id;
    await meter(id, subscription, at('2026-11-01T00:00:00Z'), [{ endpoint: 'list-pets', calls: 1_000, units: 1_000 }]);
    clock.set(at('2026-11-10T00:00:00Z'));
    await run();
    const snapshot = () =>
      service.app.db.query(
        `SELECT i.*, (SELECT json_agg(l ORDER BY l.position) FROM invoice_lines l WHERE l.invoice_id = i.id) AS lines
         FROM invoices i WHERE i.customer_id = $1 ORDER BY i.period_start`,
        [id],
      );
    const draft = await snapshot();
    clock.advance(minutes(1));
    await run();
    expect(await snapshot()).toEqual(draft); // not even rated_at: an unchanged draft is not written

    clock.set(at('2026-12-01T00:00:00Z') + minutes(6));
    await run();
    const finalized = await snapshot();
    expect(finalized[0]).toMatchObject({ status: 'finalized', total: '1000' });
    // Usage arriving late for a finalized period changes nothing either.
    await service.app.db.query(`UPDATE usage_rollups SET billable_calls = 5000, billable_units = 5000 WHERE subscription_id = $1`, [subscription]);
    clock.advance(minutes(1));
    await run();
    expect((await snapshot())[0]).toEqual(finalized[0]);

    const invoiceId = finalized[0]!.id as string;
    for (const statement of [
      `UPDATE invoices SET total = 0 WHERE id = $1`,
      `DELETE FROM invoices WHERE id = $1`,
      `UPDATE invoice_lines SET amount = 0 WHERE invoice_id = $1`,
      `DELETE FROM invoice_lines WHERE invoice_id = $1`,
      `INSERT INTO invoice_lines (invoice_id, position, plan_id, kind, description, quantity, amount, billed)
         VALUES ($1, 99, 'metered', 'usage', 'sneaky', 1, 100, 'in_arrears')`,
    ]) {
      await expect(service.app.db.query(statement, [invoiceId]), statement).rejects.toThrow(/finalized/);
    }
  });

  it('catches up after downtime: every period that ended is finalized, the running one is a draft', async () => {
    clock.set(at('2027-01-10T09:00:00Z'));
    const id = await customer();
    await purchase(id, 'pro');
    clock.set(at('2027-04-20T00:00:00Z'));
    const result = await run();
    expect(result.finalized).toBeGreaterThanOrEqual(3);
    expect((await invoices(id)).map((invoice) => [invoice.periodStart, invoice.status, invoice.total])).toEqual([
      ['2027-04-10T09:00:00.000Z', 'draft', '49.00'],
      ['2027-03-10T09:00:00.000Z', 'finalized', '49.00'],
      ['2027-02-10T09:00:00.000Z', 'finalized', '49.00'],
      ['2027-01-10T09:00:00.000Z', 'finalized', '49.00'],
    ]);
  });

  it('prorates a mid-period upgrade with ratePlanChange and credits a cancellation', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const id = await customer();
    const subscription = (await purchase(id, 'pro')).subscription.id;
    clock.set(at('2026-11-16T00:00:00Z'));
    expect((await service.admin('POST', `/v1/subscriptions/${subscription}/change-plan`, { plan: 'enterprise' })).status).toBe(200);
    clock.set(at('2026-11-23T00:00:00Z'));
    expect((await service.admin('POST', `/v1/subscriptions/${subscription}/cancel`)).status).toBe(200);

    const current = await service.admin('GET', `/v1/subscriptions/${subscription}/invoices/current`);
    expect(current.status).toBe(200);
    const change = ratePlanChange({
      from_plan: service.app.catalog.plan('pro')!.pricing!,
      to_plan: service.app.catalog.plan('enterprise')!.pricing!,
      period: periodContaining(at('2026-11-01T00:00:00Z'), at('2026-11-16T00:00:00Z')),
      change_at: at('2026-11-16T00:00:00Z'),
    });
    expect(change.lines.map((line) => line.amount)).toEqual([-2450n, 24_950n]);
    expect(current.body.lines.map((line: Line) => [line.planId, line.kind, line.amount])).toEqual([
      ['pro', 'recurring_fee', '49.00'],
      ['pro', 'proration_credit', '-24.50'],
      ['enterprise', 'recurring_fee', '249.50'],
      // Canceled with 8 of 30 days left: 499 × 8 / 30 = 133.07
      ['enterprise', 'proration_credit', '-133.07'],
    ]);
    expect(current.body.total).toBe('140.93');
    const history = await service.app.db.query('SELECT kind, from_plan_id, to_plan_id FROM subscription_changes WHERE subscription_id = $1 ORDER BY id', [subscription]);
    expect(history).toEqual([
      { kind: 'plan_change', from_plan_id: 'pro', to_plan_id: 'enterprise' },
      { kind: 'cancellation', from_plan_id: 'enterprise', to_plan_id: null },
    ]);
    await expect(service.app.db.query('DELETE FROM subscription_changes WHERE subscription_id = $1', [subscription])).rejects.toThrow(/append-only/);
  });

  it("charges the new plan's setup fee on change-plan, once per plan, and a confirmed preview bills what it showed", async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const id = await customer();
    const subscription = (await purchase(id, 'free')).subscription.id;
    const toPayPerCall = () => service.admin('POST', `/v1/subscriptions/${subscription}/change-plan`, { plan: 'pay-per-call' });
    clock.set(at('2026-11-10T00:00:00Z'));
    // Prepaid: the $5.00 setup fee is due from the wallet at once, so an empty wallet refuses the change.
    const refused = await toPayPerCall();
    expect(refused.status).toBe(402);
    expect(refused.body.error.message).toMatch(/setup fee|plan change 5\.00/i);
    expect((await service.admin('POST', `/v1/customers/${id}/wallet/top-ups`, { amount: '20.00', reference: `fund-${id}` })).status).toBe(201);
    expect((await toPayPerCall()).status).toBe(200);
    clock.set(at('2026-11-12T00:00:00Z'));
    expect((await service.admin('POST', `/v1/subscriptions/${subscription}/change-plan`, { plan: 'free' })).status).toBe(200);

    // Back to pay-per-call through a preview, confirmed at the instant it was rated: no second setup fee.
    clock.set(at('2026-11-14T00:00:00Z'));
    const history = (await new SqlSubscriptionHistories(service.app.db).history(subscription))!;
    const preview = previewPlanChange(history, 'pay-per-call', clock.now(), catalogPricing(service.app.catalog, 'petstore'))!;
    expect(preview).toMatchObject({ fromPlanId: 'free', toPlanId: 'pay-per-call', total: 0n, paidFrom: 'wallet', lines: [] });
    clock.advance(1_000);
    await expect(service.app.accounts.changePlan(subscription, 'pay-per-call', { at: clock.now() + 1, fromPlanId: 'free' })).rejects.toThrow(/between/);
    await expect(service.app.accounts.changePlan(subscription, 'pay-per-call', { at: clock.now(), fromPlanId: 'pro' })).rejects.toThrow(/on plan free now/);
    await service.app.accounts.changePlan(subscription, 'pay-per-call', { at: clock.now() - 1_000, fromPlanId: 'free' });

    const ledger = (await service.admin('GET', `/v1/customers/${id}/wallet/ledger`)).body.data as { kind: string; amount: string }[];
    expect(ledger.map((entry) => [entry.kind, entry.amount])).toEqual([
      ['top_up', '20.00'],
      ['plan_change', '-5.00'],
      ['plan_change', '0.00'],
    ]);
    const current = await service.admin('GET', `/v1/subscriptions/${subscription}/invoices/current`);
    expect(current.body.lines.map((line: Line) => [line.planId, line.kind, line.amount])).toEqual([['pay-per-call', 'setup_fee', '5.00']]);
  });

  it('previews an upgrade exactly as the change bills it: credit, prorated fee and setup fee', async () => {
    clock.set(at('2026-11-01T00:00:00Z'));
    const id = await customer();
    const subscription = (await purchase(id, 'pro')).subscription.id;
    clock.set(at('2026-11-16T00:00:00Z'));
    const history = (await new SqlSubscriptionHistories(service.app.db).history(subscription))!;
    const preview = previewPlanChange(history, 'enterprise', clock.now(), catalogPricing(service.app.catalog, 'petstore'))!;
    expect(preview.lines.map((line) => [line.plan_id, line.kind, line.amount])).toEqual([
      ['pro', 'proration_credit', -2450n],
      ['enterprise', 'recurring_fee', 24_950n],
    ]);
    expect(preview).toMatchObject({ total: 22_500n, paidFrom: 'invoice', period: periodContaining(at('2026-11-01T00:00:00Z'), clock.now()) });
    await service.app.accounts.changePlan(subscription, 'enterprise', { at: clock.now(), fromPlanId: 'pro' });
    const current = await service.admin('GET', `/v1/subscriptions/${subscription}/invoices/current`);
    expect(current.body.lines.slice(1).map((line: Line) => [line.planId, line.kind, line.amount])).toEqual([
      ['pro', 'proration_credit', '-24.50'],
      ['enterprise', 'recurring_fee', '249.50'],
    ]);
  });

  it('skips its pass where another replica leads, counting it as a follower run', async () => {
    const db = service.app.db;
    const metrics = createMetrics();
    const rating = new RatingLoop(
      {
        invoices: new SqlInvoiceRecords(db),
        histories: new SqlSubscriptionHistories(db),
        catalog: () => service.app.catalog,
        clock,
        usage: { usage: async () => expect.unreachable('a follower reads no usage'), within: () => expect.unreachable('a follower reads no usage') },
        work: new SqlRatingWork(db),
        wallets: new WalletService(new SqlWalletRecords(db), new MemoryCounterStore(clock), () => service.app.catalog, clock, silentLogger),
        metrics,
        logger: silentLogger,
      },
      { finalizeAfterMs: minutes(5) },
    );
    const elsewhere: Leadership = { run: async () => undefined, onGained: () => () => {} };
    // The rating job as src/app.ts registers it (interval 0: passes run when asked).
    const job = new Scheduler({ timers: new ManualClock(0), logger: silentLogger }).every('rating', 0, () => rating.pass(), { lead: rating.ledBy(elsewhere) });
    expect(await job.runOnce()).toBeUndefined();
    expect((await metrics.billingRuns.get()).values.filter((value) => value.value > 0)).toEqual([expect.objectContaining({ labels: { result: 'follower' }, value: 1 })]);
  });

  it.runIf(mode === 'embedded')('always leads on PGlite, whose data directory belongs to one process', async () => {
    expect(await service.app.ratingLoop.runOnce()).toMatchObject({ rated: expect.any(Number) });
  });
});

interface Line {
  planId: string;
  kind: string;
  description: string;
  amount: string;
  proration?: unknown;
  tiers?: unknown;
}

interface Invoice {
  id: string;
  periodStart: string;
  status: 'draft' | 'finalized';
  total: string;
  calls: number;
  units: number;
  lines: Line[];
  usage: unknown[];
}
