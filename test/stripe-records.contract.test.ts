import { onBothDatabases } from './support/contract-databases.js';
import { SqlStripeOutbox, SqlStripeRecords } from '../src/stripe/index.js';
import type { Db } from '../src/store/db.js';
import { type StripeFixtures, stripeRecordsContract } from './contracts/stripe-records.contract.js';

const fixturesOf = (db: Db): StripeFixtures => ({
  customer: async (id, name = `name of ${id}`, email = null) => {
    await db.query('INSERT INTO customers (id, name, email) VALUES ($1, $2, $3)', [id, name, email]);
  },
  subscription: async (id, customerId, planId, periodAnchor = new Date('2026-11-01T00:00:00Z')) => {
    await db.query(
      `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor) VALUES ($1, $2, $3, $4, 'active', $5, $5)`,
      [id, customerId, `product_of_${id}`, planId, periodAnchor],
    );
  },
  invoice: async (id, subscriptionId, options) => {
    const periodStart = options.periodStart ?? new Date('2026-11-01T00:00:00Z');
    const total = options.lines.reduce((sum, line) => sum + line.amount, 0n);
    await db.query(
      `INSERT INTO invoices (id, customer_id, subscription_id, product_id, plan_id, period_start, period_end, currency, mode, status,
         total, revenue_share, calls, units, usage, fingerprint, rated_at)
       SELECT $1, customer_id, id, product_id, plan_id, $3, $3::timestamptz + interval '30 days', 'USD', 'postpaid', 'draft', $4, 0, 0, 0, '[]', 'f', $3
       FROM subscriptions WHERE id = $2`,
      [id, subscriptionId, periodStart, total.toString()],
    );
    for (const [position, line] of options.lines.entries()) {
      await db.query(
        `INSERT INTO invoice_lines (invoice_id, position, plan_id, kind, description, quantity, amount, billed) VALUES ($1, $2, $3, $4, $5, 1, $6, 'in_arrears')`,
        [id, position, line.planId, line.kind, `line ${position}`, line.amount.toString()],
      );
    }
    if (options.finalized) await db.query(`UPDATE invoices SET status = 'finalized', finalized_at = $2 WHERE id = $1`, [id, periodStart]);
  },
  usage: async (subscriptionId, periodStart, endpointId, billableUnits) => {
    await db.query(
      `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units, denied_calls, request_bytes, response_bytes)
       SELECT customer_id, id, $2, $3, 1, $4, 1, $4, 0, 0, 0 FROM subscriptions WHERE id = $1`,
      [subscriptionId, periodStart, endpointId, billableUnits],
    );
  },
});

/** The adapter over a database onBothDatabases has emptied. */
const storesOf = (db: Db) => {
  return {
    records: new SqlStripeRecords(db),
    outbox: new SqlStripeOutbox(db),
    fixtures: fixturesOf(db),
    inForeignTransaction: <T>(work: (tx: Parameters<Parameters<Db['transaction']>[0]>[0]) => Promise<T>) => db.transaction(work),
    close: async () => {},
  };
};

/** The SQL adapter on both databases it runs on, emptied before every test. */
onBothDatabases(['customers', 'subscriptions', 'invoices', 'invoice_lines', 'usage_rollups', 'stripe_customers', 'stripe_invoices', 'stripe_topups', 'stripe_usage_reports', 'stripe_webhook_events', 'stripe_outbox'], (name, emptied) => stripeRecordsContract(name, async () => storesOf(await emptied())));
