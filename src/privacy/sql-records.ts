import { eventTypes } from '../events/index.js';
import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type { CustomerDataRecords, CustomerSnapshot, KeptRecords } from './records.js';

/**
 * Where Tollgate holds data about a customer: every table, and how to find one customer's rows in it. The export
 * reads them all; a test fails when a table appears that is in neither list below, so new data gets a decision.
 */
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
  { table: 'event_outbox', where: ofCustomer, orderBy: 'id' },
  { table: 'event_dead_letters', where: ofCustomer, orderBy: 'id' },
  { table: 'rating_marks', where: ofSubscriptions, orderBy: 'subscription_id' },
  { table: 'rating_due', where: ofSubscriptions, orderBy: 'subscription_id' },
];

/** Tables holding nothing about any one customer. */
export const tablesWithoutCustomerData: readonly string[] = ['schema_migrations', 'stripe_webhook_events', 'leader_epoch'];

/** Stands in for an erased customer's name (the column is required); Stripe's copy of the customer gets it too. */
const erasedCustomerName = 'Erased customer';
/** Replaces error texts that may quote what the customer sent or where alerts went. */
const redactedError = '[redacted: customer erased]';

/** A customer's personal data in PostgreSQL or PGlite. */
export class SqlCustomerDataRecords implements CustomerDataRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  within(tx: Queryable): CustomerDataRecords {
    return new SqlCustomerDataRecords(joinedTransaction(this.db, tx));
  }

  snapshot(customerId: string): Promise<CustomerSnapshot | undefined> {
    return this.db.transaction(async (tx) => {
      await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const [customer] = await tx.query('SELECT 1 FROM customers WHERE id = $1', [customerId]);
      if (!customer) return undefined;
      const tables: CustomerSnapshot['tables'] = {};
      for (const { table, where, orderBy, omit = [] } of customerTables) {
        const rows = await tx.query<Record<string, unknown>>(`SELECT * FROM ${table} WHERE ${where} ORDER BY ${orderBy}`, [customerId]);
        tables[table] = rows.map((row) => Object.fromEntries(Object.entries(row).filter(([column]) => !omit.includes(column))));
      }
      const omitted = Object.fromEntries(customerTables.filter((table) => table.omit).map((table) => [table.table, table.omit!]));
      return { omitted, tables };
    });
  }

  async lockCustomer(customerId: string): Promise<{ erasedAt: Date | null } | undefined> {
    const [customer] = await this.db.query<{ erased_at: Date | null }>('SELECT erased_at FROM customers WHERE id = $1 FOR UPDATE', [customerId]);
    return customer && { erasedAt: customer.erased_at };
  }

  async destroyKeys(customerId: string, now: Date): Promise<number> {
    const destroyed = await this.db.query(
      `UPDATE api_keys SET status = 'revoked', revoked_at = coalesce(revoked_at, $2), name = NULL, prefix = '', hash = 'erased:' || id
       WHERE customer_id = $1 AND hash NOT LIKE 'erased:%' RETURNING id`,
      [customerId, now],
    );
    return destroyed.length;
  }

  async anonymise(customerId: string, erasedAt: Date | undefined): Promise<void> {
    if (erasedAt) {
      // The name change queues the Stripe customer's update (trigger), which redacts Stripe's copy.
      await this.db.query(
        `UPDATE customers SET name = $2, email = NULL, metadata = '{}', status = 'erased', status_reason = NULL, erased_at = $3 WHERE id = $1`,
        [customerId, erasedCustomerName, erasedAt],
      );
    }
    await this.db.query('UPDATE apps SET name = id WHERE customer_id = $1 AND name <> id', [customerId]);
    // A top-up not yet sent to Stripe never will be; redirect and checkout URLs may carry identifying parameters.
    await this.db.query(
      `UPDATE stripe_topups SET status = CASE WHEN status = 'pending' THEN 'expired' ELSE status END,
         success_url = '', cancel_url = NULL, checkout_url = NULL
       WHERE customer_id = $1`,
      [customerId],
    );
    // Redacted rather than cleared: a Stripe work item with an error looks before it writes again.
    await this.db.query(`UPDATE stripe_outbox SET last_error = $2 WHERE last_error <> $2 AND (${stripeWorkOfCustomer})`, [customerId, redactedError]);
    await this.db.query('DELETE FROM alert_webhooks WHERE customer_id = $1', [customerId]);
    // Signed-in portal sessions and unused sign-in links end with the customer; daily usage is not in the books.
    for (const table of ['portal_sessions', 'portal_links', 'usage_daily_rollups']) await this.db.query(`DELETE FROM ${table} WHERE customer_id = $1`, [customerId]);
    await this.db.query(`UPDATE alert_deliveries SET last_error = $2 WHERE last_error <> $2 AND ${alertDeliveriesOfCustomer}`, [customerId, redactedError]);
  }

  async deleteUsageEvents(customerId: string): Promise<number> {
    const [deleted] = await this.db.query<{ events: number }>(
      'WITH deleted AS (DELETE FROM usage_events WHERE customer_id = $1 RETURNING 1) SELECT count(*)::int AS events FROM deleted',
      [customerId],
    );
    // Their copies queued for the event stream go too; those already published are the consumers' to erase.
    for (const table of ['event_outbox', 'event_dead_letters']) {
      await this.db.query(`DELETE FROM ${table} WHERE customer_id = $1 AND type = $2`, [customerId, eventTypes.usageRecorded]);
    }
    return deleted!.events;
  }

  async keptRecords(customerId: string): Promise<KeptRecords> {
    const [kept] = await this.db.query<KeptRecords>(
      `SELECT (SELECT count(*) FROM invoices WHERE customer_id = $1)::int AS "invoices",
              (SELECT count(*) FROM usage_rollups WHERE customer_id = $1)::int AS "usageRollups",
              (SELECT count(*) FROM wallet_entries WHERE customer_id = $1)::int AS "walletEntries"`,
      [customerId],
    );
    return kept!;
  }
}
