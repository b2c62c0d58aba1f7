import type { Db } from '../store/index.js';
import type { Identity } from './types.js';
import { type CustomerStatus, type KeyStatus, paymentSuspensionPrefix, type SubscriptionStatus } from './types.js';

/** A key's identity as the Check needs it, under its hash. */
export interface HashedIdentity {
  hash: string;
  identity: Identity;
}

/** Reads keys with their subscription and customer, as the identity records in Redis hold them. */
export class SqlIdentityRows {
  constructor(private readonly db: Db) {}

  /** The customer's keys that can still be presented (an erased key's hash matches no key). */
  ofCustomer(customerId: string): Promise<HashedIdentity[]> {
    return this.select('k.customer_id = $1', [customerId, paymentSuspensionPrefix]);
  }

  /** Up to `limit` keys after the key id `after`, in id order: the rebuild reads every key in such batches. */
  page(after: string, limit: number): Promise<HashedIdentity[]> {
    return this.select('k.id > $1 ORDER BY k.id LIMIT $3', [after, paymentSuspensionPrefix, limit]);
  }

  private async select(where: string, params: unknown[]): Promise<HashedIdentity[]> {
    const rows = await this.db.query<IdentityRow>(
      `SELECT k.id, k.hash, k.customer_id, k.subscription_id, k.status,
              s.id AS s_id, s.customer_id AS s_customer_id, s.product_id, s.plan_id, s.status AS s_status, s.period_anchor,
              c.id AS c_id, c.status AS c_status, coalesce(starts_with(c.status_reason, $2), false) AS overdue
       FROM api_keys k
       LEFT JOIN subscriptions s ON s.id = k.subscription_id
       LEFT JOIN customers c ON c.id = k.customer_id
       WHERE k.hash NOT LIKE 'erased:%' AND ${where}`,
      params,
    );
    return rows.map((row) => ({
      hash: row.hash,
      identity: {
        key: { id: row.id, customerId: row.customer_id, subscriptionId: row.subscription_id, status: row.status },
        subscription:
          row.s_id === null
            ? undefined
            : { id: row.s_id, customerId: row.s_customer_id!, productId: row.product_id!, planId: row.plan_id!, status: row.s_status!, periodAnchor: row.period_anchor!.getTime() },
        customer: row.c_id === null ? undefined : { id: row.c_id, status: row.c_status!, overdue: row.overdue },
      },
    }));
  }
}

interface IdentityRow {
  id: string;
  hash: string;
  customer_id: string;
  subscription_id: string;
  status: KeyStatus;
  s_id: string | null;
  s_customer_id: string | null;
  product_id: string | null;
  plan_id: string | null;
  s_status: SubscriptionStatus | null;
  period_anchor: Date | null;
  c_id: string | null;
  c_status: CustomerStatus | null;
  overdue: boolean;
}
