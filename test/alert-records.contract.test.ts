import { onBothDatabases } from './support/contract-databases.js';
import { SqlAlertRecords } from '../src/alerts/index.js';
import type { Db } from '../src/store/db.js';
import { type AlertFixtures, alertRecordsContract } from './contracts/alert-records.contract.js';

const fixturesOf = (db: Db): AlertFixtures => ({
  customer: async (id) => {
    await db.query('INSERT INTO customers (id, name) VALUES ($1, $1)', [id]);
  },
  subscription: async (id, customerId, planId, options = {}) => {
    await db.query(
      `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor)
       VALUES ($1, $2, $3, $4, $5, $6, $6)`,
      [id, customerId, `product_of_${id}`, planId, options.canceled ? 'canceled' : 'active', options.periodAnchor ?? new Date('2026-11-01T00:00:00Z')],
    );
  },
  usage: async (customerId, subscriptionId, periodStart, endpointId, units) => {
    await db.query(
      `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units, denied_calls, request_bytes, response_bytes)
       VALUES ($1, $2, $3, $4, 1, $5, 1, $5, 0, 0, 0)`,
      [customerId, subscriptionId, periodStart, endpointId, units],
    );
  },
  invoice: async (id, customerId, subscriptionId, periodStart, total, currency) => {
    await db.query(
      `INSERT INTO invoices (id, customer_id, subscription_id, product_id, plan_id, period_start, period_end, currency, mode, status,
         total, revenue_share, calls, units, usage, fingerprint, rated_at)
       VALUES ($1, $2, $3, 'petstore', 'pro', $4, $4::timestamptz + interval '30 days', $5, 'postpaid', 'draft', $6, 0, 0, 0, '[]', 'f', $4)`,
      [id, customerId, subscriptionId, periodStart, currency, total.toString()],
    );
  },
  wallet: async (customerId, currency) => {
    await db.query('INSERT INTO wallets (customer_id, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING', [customerId, currency]);
  },
  walletEntry: async (customerId, currency, amount, reference) => {
    await db.query('INSERT INTO wallets (customer_id, currency) VALUES ($1, $2) ON CONFLICT DO NOTHING', [customerId, currency]);
    await db.query(
      `INSERT INTO wallet_entries (customer_id, currency, kind, amount, reference, description, occurred_at)
       VALUES ($1, $2, $3, $4, $5, $5, clock_timestamp())`,
      [customerId, currency, amount > 0n ? 'top_up' : 'usage', amount.toString(), reference],
    );
  },
});

/** The adapter over a database onBothDatabases has emptied. */
const storesOf = (db: Db) => {
  return { records: new SqlAlertRecords(db), fixtures: fixturesOf(db), close: async () => {} };
};

/** The SQL adapter on both databases it runs on, emptied before every test. */
onBothDatabases(['customers', 'subscriptions', 'usage_rollups', 'invoices', 'wallets', 'wallet_entries', 'usage_alerts', 'alert_deliveries', 'alert_webhooks'], (name, emptied) => alertRecordsContract(name, async () => storesOf(await emptied())));
