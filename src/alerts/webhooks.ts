/** Customers' alert webhooks (alert_webhooks): the URL alerts are POSTed to and the secret they are signed with. */
import { randomBytes } from 'node:crypto';
import { notFound } from '../kernel/index.js';
import type { AlertRecords, AlertWebhookRecord } from './records.js';

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
  constructor(private readonly records: Pick<AlertRecords, 'setWebhook' | 'webhook' | 'removeWebhook'>) {}

  /**
   * Sets the customer's webhook URL with a new signing secret, returned this once. Setting it again rotates the
   * secret: deliveries from then on are signed with the new one.
   */
  async set(customerId: string, url: string): Promise<AlertWebhook & { secret: string }> {
    const secret = `whsec_${randomBytes(32).toString('base64url')}`;
    const record = await this.records.setWebhook(customerId, url, secret);
    if (!record) throw notFound('customer', customerId);
    return { ...toWebhook(record), secret };
  }

  async get(customerId: string): Promise<AlertWebhook> {
    const record = await this.records.webhook(customerId);
    if (!record) throw notFound('alert webhook of customer', customerId);
    return toWebhook(record);
  }

  /** Alerts fired from then on are only recorded; pending deliveries go dead at their next attempt. */
  async remove(customerId: string): Promise<void> {
    if (!(await this.records.removeWebhook(customerId))) throw notFound('alert webhook of customer', customerId);
  }
}

const toWebhook = (record: AlertWebhookRecord): AlertWebhook => ({
  customerId: record.customerId,
  url: record.url,
  secretPrefix: record.secret.slice(0, secretPrefixLength),
  createdAt: record.createdAt,
  updatedAt: record.updatedAt,
});
