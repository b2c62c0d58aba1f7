/**
 * Erasing a customer (GDPR art. 17): what identifies the person goes, what the books need stays, anonymised.
 * README, "Privacy", lists what is removed and what is kept, and why.
 */
import type { AccountsService } from '../identity/index.js';
import { type Clock, notFound } from '../kernel/index.js';
import type { Db, Queryable } from '../store/index.js';
import { alertDeliveriesOfCustomer, stripeWorkOfCustomer } from './customer-data.js';

/** Stands in for an erased customer's name (the column is required); Stripe's copy of the customer gets it too. */
export const erasedCustomerName = 'Erased customer';
/** Replaces error texts that may quote what the customer sent or where alerts went. */
const redactedError = '[redacted: customer erased]';

export interface ErasureReport {
  customerId: string;
  erasedAt: string;
  /** What this call did; erasing again only sweeps usage events that arrived since. */
  subscriptionsCanceled: number;
  keysDestroyed: number;
  usageEventsDeleted: number;
  /** Financial records kept, anonymised by the erasure of the customer record they point to. */
  kept: { invoices: number; usageRollups: number; walletEntries: number };
}

export class CustomerErasure {
  constructor(
    private readonly db: Db,
    private readonly accounts: AccountsService,
    private readonly clock: Clock,
  ) {}

  async erase(customerId: string): Promise<ErasureReport> {
    const { erasedAt, subscriptionsCanceled, keysDestroyed } = await this.accounts.inTransaction(async (accounts, tx) => {
      const [customer] = await tx.query<{ erased_at: Date | null }>('SELECT erased_at FROM customers WHERE id = $1 FOR UPDATE', [customerId]);
      if (!customer) throw notFound('customer', customerId);
      const now = new Date(this.clock.now());
      // Through the accounts service, so billing settles the canceled subscriptions as any cancellation.
      const active = (await accounts.listSubscriptions(customerId)).filter((subscription) => subscription.status === 'active');
      for (const subscription of active) await accounts.cancelSubscription(subscription.id);
      const keys = await this.destroyKeys(tx, customerId, now);
      await this.anonymise(tx, customerId, customer.erased_at === null ? now : undefined);
      return { erasedAt: customer.erased_at ?? now, subscriptionsCanceled: active.length, keysDestroyed: keys };
    });
    // After the commit: the keys are dead already while this scans usage_events (it has no index by customer).
    const [deleted] = await this.db.query<{ events: number }>(
      'WITH deleted AS (DELETE FROM usage_events WHERE customer_id = $1 RETURNING 1) SELECT count(*)::int AS events FROM deleted',
      [customerId],
    );
    const [kept] = await this.db.query<ErasureReport['kept']>(
      `SELECT (SELECT count(*) FROM invoices WHERE customer_id = $1)::int AS "invoices",
              (SELECT count(*) FROM usage_rollups WHERE customer_id = $1)::int AS "usageRollups",
              (SELECT count(*) FROM wallet_entries WHERE customer_id = $1)::int AS "walletEntries"`,
      [customerId],
    );
    return {
      customerId,
      erasedAt: erasedAt.toISOString(),
      subscriptionsCanceled,
      keysDestroyed,
      usageEventsDeleted: deleted!.events,
      kept: kept!,
    };
  }

  /**
   * Revoked, with the hash replaced by a value no key hashes to (hashes are hex), so the key can never
   * authenticate again; the identity cache drops the old hash within a poll. Rows stay: usage and the history
   * refer to key ids.
   */
  private async destroyKeys(tx: Queryable, customerId: string, now: Date): Promise<number> {
    const destroyed = await tx.query(
      `UPDATE api_keys SET status = 'revoked', revoked_at = coalesce(revoked_at, $2), name = NULL, prefix = '', hash = 'erased:' || id
       WHERE customer_id = $1 AND hash NOT LIKE 'erased:%' RETURNING id`,
      [customerId, now],
    );
    return destroyed.length;
  }

  /** `erasedAt` is set on the first erasure only: the customer row refuses every change once erased. */
  private async anonymise(tx: Queryable, customerId: string, erasedAt: Date | undefined): Promise<void> {
    if (erasedAt) {
      // The name change queues the Stripe customer's update (trigger), which redacts Stripe's copy.
      await tx.query(
        `UPDATE customers SET name = $2, email = NULL, metadata = '{}', status = 'erased', status_reason = NULL, erased_at = $3 WHERE id = $1`,
        [customerId, erasedCustomerName, erasedAt],
      );
    }
    await tx.query('UPDATE apps SET name = id WHERE customer_id = $1 AND name <> id', [customerId]);
    // A top-up not yet sent to Stripe never will be; redirect and checkout URLs may carry identifying parameters.
    await tx.query(
      `UPDATE stripe_topups SET status = CASE WHEN status = 'pending' THEN 'expired' ELSE status END,
         success_url = '', cancel_url = NULL, checkout_url = NULL
       WHERE customer_id = $1`,
      [customerId],
    );
    // Redacted rather than cleared: a Stripe work item with an error looks before it writes again.
    await tx.query(`UPDATE stripe_outbox SET last_error = $2 WHERE last_error <> $2 AND (${stripeWorkOfCustomer})`, [customerId, redactedError]);
    await tx.query('DELETE FROM alert_webhooks WHERE customer_id = $1', [customerId]);
    // Signed-in portal sessions and unused sign-in links end with the customer; daily usage is not in the books.
    for (const table of ['portal_sessions', 'portal_links', 'usage_daily_rollups']) await tx.query(`DELETE FROM ${table} WHERE customer_id = $1`, [customerId]);
    await tx.query(`UPDATE alert_deliveries SET last_error = $2 WHERE last_error <> $2 AND ${alertDeliveriesOfCustomer}`, [customerId, redactedError]);
  }
}
