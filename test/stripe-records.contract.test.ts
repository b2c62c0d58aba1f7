import { afterAll, beforeAll } from 'vitest';
import { SqlStripeOutbox, SqlStripeRecords } from '../src/stripe/index.js';
import type { Db } from '../src/store/db.js';
import { migrate } from '../src/store/migrations.js';
import { PgliteDb } from '../src/store/pglite.js';
import { PostgresDb } from '../src/store/postgres.js';
import { type StripeFixtures, stripeRecordsContract } from './contracts/stripe-records.contract.js';
import { createTestDatabase } from './support/services.js';

/**
 * The SQL adapter on both databases it runs on: a PostgreSQL database of this file's own (dropped after) and an
 * in-memory PGlite, each migrated once and emptied before every test.
 */

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let postgres: PostgresDb;
let pglite: PgliteDb;
beforeAll(async () => {
  database = await createTestDatabase();
  postgres = new PostgresDb(database.url);
  pglite = await PgliteDb.open();
  await Promise.all([migrate(postgres), migrate(pglite)]);
});
afterAll(async () => {
  await Promise.all([postgres?.close(), pglite?.close()]);
  await database?.drop();
});

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

const emptied = async (db: Db) => {
  await db.query('TRUNCATE customers, subscriptions, invoices, invoice_lines, usage_rollups, stripe_customers, stripe_invoices, stripe_topups, stripe_usage_reports, stripe_webhook_events, stripe_outbox CASCADE');
  return {
    records: new SqlStripeRecords(db),
    outbox: new SqlStripeOutbox(db),
    fixtures: fixturesOf(db),
    inForeignTransaction: <T>(work: (tx: Parameters<Parameters<Db['transaction']>[0]>[0]) => Promise<T>) => db.transaction(work),
    close: async () => {},
  };
};

stripeRecordsContract('SQL on PostgreSQL', () => emptied(postgres));
stripeRecordsContract('SQL on PGlite', () => emptied(pglite));
