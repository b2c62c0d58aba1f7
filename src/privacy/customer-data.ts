/**
 * Where Tollgate holds data about a customer: every table, and how to find one customer's rows in it. The export
 * reads them all; a test fails when a table appears that is in neither list below, so new data gets a decision.
 */
import { notFound } from '../kernel/index.js';
import type { Db } from '../store/index.js';

export interface CustomerTable {
  table: string;
  /** Selects the customer's rows; $1 is the customer id. */
  where: string;
  orderBy: string;
  /** Columns left out of the export: secrets and credential verifiers, which are not the customer's data to carry. */
  omit?: readonly string[];
}

const ofCustomer = 'customer_id = $1';
const ofSubscriptions = 'subscription_id IN (SELECT id FROM subscriptions WHERE customer_id = $1)';
const ofInvoices = 'IN (SELECT id FROM invoices WHERE customer_id = $1)';

/** Stripe work about the customer, by the subject each kind of work names (see src/stripe/outbox.ts). */
export const stripeWorkOfCustomer = `(kind = 'customer.sync' AND subject_id = $1)
  OR (kind = 'invoice.finalized' AND subject_id ${ofInvoices})
  OR (kind = 'topup.checkout' AND subject_id IN (SELECT id FROM stripe_topups WHERE customer_id = $1))
  OR (kind = 'usage.report' AND split_part(subject_id, '@', 1) IN (SELECT id FROM subscriptions WHERE customer_id = $1))`;

export const alertDeliveriesOfCustomer = 'alert_id IN (SELECT id FROM usage_alerts WHERE customer_id = $1)';

export const customerTables: readonly CustomerTable[] = [
  { table: 'customers', where: 'id = $1', orderBy: 'id' },
  { table: 'apps', where: ofCustomer, orderBy: 'created_at, id' },
  { table: 'subscriptions', where: ofCustomer, orderBy: 'started_at, id' },
  { table: 'subscription_changes', where: ofSubscriptions, orderBy: 'effective_at, id' },
  { table: 'api_keys', where: ofCustomer, orderBy: 'created_at, id', omit: ['hash'] },
  { table: 'usage_events', where: ofCustomer, orderBy: 'occurred_at, usage_id' },
  { table: 'usage_rollups', where: ofCustomer, orderBy: 'period_start, subscription_id, endpoint_id' },
  { table: 'usage_captured_rollups', where: ofCustomer, orderBy: 'period_start, subscription_id, endpoint_id, name' },
  { table: 'usage_daily_rollups', where: ofCustomer, orderBy: 'day, endpoint_id' },
  { table: 'customer_first_calls', where: ofCustomer, orderBy: 'customer_id' },
  { table: 'invoices', where: ofCustomer, orderBy: 'period_start, id' },
  { table: 'invoice_lines', where: `invoice_id ${ofInvoices}`, orderBy: 'invoice_id, position' },
  { table: 'wallets', where: ofCustomer, orderBy: 'currency' },
  { table: 'wallet_entries', where: ofCustomer, orderBy: 'id' },
  { table: 'stripe_customers', where: ofCustomer, orderBy: 'customer_id' },
  { table: 'stripe_invoices', where: ofCustomer, orderBy: 'created_at, stripe_invoice_id' },
  { table: 'stripe_topups', where: ofCustomer, orderBy: 'created_at, id' },
  { table: 'stripe_usage_reports', where: ofSubscriptions, orderBy: 'subscription_id, period_start' },
  { table: 'stripe_outbox', where: stripeWorkOfCustomer, orderBy: 'id' },
  { table: 'alert_webhooks', where: ofCustomer, orderBy: 'customer_id', omit: ['signing_secret'] },
  { table: 'usage_alerts', where: ofCustomer, orderBy: 'fired_at, id' },
  { table: 'alert_deliveries', where: alertDeliveriesOfCustomer, orderBy: 'id' },
  { table: 'portal_sessions', where: ofCustomer, orderBy: 'created_at', omit: ['id_hash'] },
  { table: 'portal_links', where: ofCustomer, orderBy: 'created_at', omit: ['token_hash'] },
];

/** Tables holding nothing about any one customer. */
export const tablesWithoutCustomerData: readonly string[] = ['schema_migrations', 'stripe_webhook_events'];

export interface CustomerExport {
  customerId: string;
  exportedAt: string;
  /** Columns left out, by table. */
  omitted: Record<string, readonly string[]>;
  /** Every row about the customer, as stored, by table. */
  tables: Record<string, Record<string, unknown>[]>;
}

/** Everything held about a customer, read in one snapshot so the tables agree with each other. */
export async function exportCustomer(db: Db, customerId: string, now: number): Promise<CustomerExport> {
  return db.transaction(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const [customer] = await tx.query('SELECT 1 FROM customers WHERE id = $1', [customerId]);
    if (!customer) throw notFound('customer', customerId);
    const tables: CustomerExport['tables'] = {};
    for (const { table, where, orderBy, omit = [] } of customerTables) {
      const rows = await tx.query<Record<string, unknown>>(`SELECT * FROM ${table} WHERE ${where} ORDER BY ${orderBy}`, [customerId]);
      tables[table] = rows.map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => !omit.includes(column))));
    }
    const omitted = Object.fromEntries(customerTables.filter((table) => table.omit).map((table) => [table.table, table.omit!]));
    return { customerId, exportedAt: new Date(now).toISOString(), omitted, tables };
  });
}
