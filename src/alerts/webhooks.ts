/** Customers' alert webhooks (alert_webhooks): the URL alerts are POSTed to and the secret they are signed with. */
import { randomBytes } from 'node:crypto';
import { notFound } from '../kernel/index.js';
import type { Queryable } from '../store/index.js';

export interface AlertWebhook {
  customerId: string;
  url: string;
  /** Enough of the secret to tell which one a receiver holds; the secret itself is shown once. */
  secretPrefix: string;
  createdAt: string;
  updatedAt: string;
}

const secretPrefixLength = 'whsec_'.length + 6;

export class AlertWebhooks {
  constructor(private readonly db: Queryable) {}

  /**
   * Sets the customer's webhook URL with a new signing secret, returned this once. Setting it again rotates the
   * secret: deliveries from then on are signed with the new one.
   */
  async set(customerId: string, url: string): Promise<AlertWebhook & { secret: string }> {
    const secret = `whsec_${randomBytes(32).toString('base64url')}`;
    const [row] = await this.db.query<WebhookRow>(
      `INSERT INTO alert_webhooks (customer_id, url, signing_secret) SELECT id, $2, $3 FROM customers WHERE id = $1
       ON CONFLICT (customer_id) DO UPDATE SET url = excluded.url, signing_secret = excluded.signing_secret
       RETURNING *`,
      [customerId, url, secret],
    );
    if (!row) throw notFound('customer', customerId);
    return { ...toWebhook(row), secret };
  }

  async get(customerId: string): Promise<AlertWebhook> {
    const [row] = await this.db.query<WebhookRow>('SELECT * FROM alert_webhooks WHERE customer_id = $1', [customerId]);
    if (!row) throw notFound('alert webhook of customer', customerId);
    return toWebhook(row);
  }

  /** Alerts fired from then on are only recorded; pending deliveries go dead at their next attempt. */
  async remove(customerId: string): Promise<void> {
    const rows = await this.db.query('DELETE FROM alert_webhooks WHERE customer_id = $1 RETURNING customer_id', [customerId]);
    if (rows.length === 0) throw notFound('alert webhook of customer', customerId);
  }
}

interface WebhookRow {
  customer_id: string;
  url: string;
  signing_secret: string;
  created_at: Date;
  updated_at: Date;
}

const toWebhook = (row: WebhookRow): AlertWebhook => ({
  customerId: row.customer_id,
  url: row.url,
  secretPrefix: row.signing_secret.slice(0, secretPrefixLength),
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});
