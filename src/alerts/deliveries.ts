/**
 * The alert delivery log (alert_deliveries): one row per alert sent to a webhook, with its attempts, the last answer
 * and when it is tried next. Scheduling uses the database's clock, which every replica shares.
 */
import type { Queryable } from '../store/index.js';
import { toUsageAlert, type UsageAlert, type UsageAlertRow } from './records.js';
import type { AlertType } from '../catalog/index.js';

export const deliveryStatuses = ['pending', 'delivered', 'dead'] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

export interface AlertDelivery {
  id: string;
  alertId: string;
  customerId: string;
  subscriptionId: string;
  type: AlertType;
  periodStart: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string;
  lastAttemptAt: string | null;
  /** null when the last attempt got no answer. */
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
}

/** A delivery whose time has come, with what its attempt needs. */
export interface DueDelivery {
  id: string;
  attempts: number;
  alert: UsageAlert;
  /** The customer's webhook now; undefined if it was removed since the alert fired. */
  webhook: { url: string; secret: string } | undefined;
}

/** The outcome of a failed attempt, as the log keeps it. */
export interface AttemptFailure {
  statusCode: number | null;
  error: string;
}

/** Queues a delivery of each alert whose customer has a webhook, in the transaction that fires them. */
export async function queueDeliveries(tx: Queryable, alertIds: readonly string[]): Promise<void> {
  if (alertIds.length === 0) return;
  await tx.query(
    `INSERT INTO alert_deliveries (alert_id)
     SELECT a.id FROM usage_alerts a JOIN alert_webhooks w ON w.customer_id = a.customer_id WHERE a.id = ANY($1::text[])`,
    [alertIds],
  );
}

export class AlertDeliveryLog {
  constructor(private readonly db: Queryable) {}

  /** Pending deliveries due now, oldest first. */
  async due(limit: number): Promise<DueDelivery[]> {
    const rows = await this.db.query<UsageAlertRow & { delivery_id: string; attempts: number; url: string | null; signing_secret: string | null }>(
      `SELECT a.*, d.id AS delivery_id, d.attempts, w.url, w.signing_secret
       FROM alert_deliveries d JOIN usage_alerts a ON a.id = d.alert_id LEFT JOIN alert_webhooks w ON w.customer_id = a.customer_id
       WHERE d.status = 'pending' AND d.next_attempt_at <= clock_timestamp()
       ORDER BY d.next_attempt_at, d.id LIMIT $1`,
      [limit],
    );
    return rows.map((row) => ({
      id: String(row.delivery_id),
      attempts: row.attempts,
      alert: toUsageAlert(row),
      webhook: row.url === null ? undefined : { url: row.url, secret: row.signing_secret! },
    }));
  }

  /** Keeps the last error, so a delivery that needed a retry still shows why. */
  async delivered(id: string, statusCode: number): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET status = 'delivered', attempts = attempts + 1, last_attempt_at = clock_timestamp(),
         last_status_code = $2, delivered_at = clock_timestamp()
       WHERE id = $1 AND status = 'pending'`,
      [id, statusCode],
    );
  }

  async reschedule(id: string, delayMs: number, failure: AttemptFailure): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET attempts = attempts + 1, last_attempt_at = clock_timestamp(), last_status_code = $2,
         last_error = $3, next_attempt_at = clock_timestamp() + $4 * interval '1 millisecond'
       WHERE id = $1 AND status = 'pending'`,
      [id, failure.statusCode, failure.error, delayMs],
    );
  }

  /** Gives up on a delivery: it stays dead until an operator retries it. */
  async bury(id: string, failure: AttemptFailure): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET status = 'dead', attempts = attempts + 1, last_attempt_at = clock_timestamp(),
         last_status_code = $2, last_error = $3
       WHERE id = $1 AND status = 'pending'`,
      [id, failure.statusCode, failure.error],
    );
  }

  async get(id: string): Promise<AlertDelivery | undefined> {
    const [row] = await this.db.query<DeliveryRow>(`SELECT ${deliveryColumns} FROM alert_deliveries d JOIN usage_alerts a ON a.id = d.alert_id WHERE d.id = $1`, [id]);
    return row && toDelivery(row);
  }

  async list(options: { customerId?: string | undefined; status?: DeliveryStatus | undefined; limit: number; after?: string | undefined }): Promise<AlertDelivery[]> {
    const rows = await this.db.query<DeliveryRow>(
      `SELECT ${deliveryColumns} FROM alert_deliveries d JOIN usage_alerts a ON a.id = d.alert_id
       WHERE ($1::text IS NULL OR a.customer_id = $1) AND ($2::text IS NULL OR d.status = $2) AND d.id > $3
       ORDER BY d.id LIMIT $4`,
      [options.customerId ?? null, options.status ?? null, options.after ?? '0', options.limit],
    );
    return rows.map(toDelivery);
  }

  /** Re-arms a dead delivery to be sent now with a fresh attempt budget; undefined if it is not dead. */
  async retryDead(id: string): Promise<AlertDelivery | undefined> {
    const [row] = await this.db.query<DeliveryRow>(
      `WITH rearmed AS (
         UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = clock_timestamp()
         WHERE id = $1 AND status = 'dead' RETURNING *)
       SELECT ${deliveryColumns} FROM rearmed d JOIN usage_alerts a ON a.id = d.alert_id`,
      [id],
    );
    return row && toDelivery(row);
  }
}

/** A delivery row `d` with what it is about from its alert `a`. */
const deliveryColumns = 'd.*, a.customer_id, a.subscription_id, a.type, a.period_start';

interface DeliveryRow {
  id: string;
  alert_id: string;
  customer_id: string;
  subscription_id: string;
  type: AlertType;
  period_start: Date;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: Date;
  last_attempt_at: Date | null;
  last_status_code: number | null;
  last_error: string | null;
  delivered_at: Date | null;
  created_at: Date;
}

const toDelivery = (row: DeliveryRow): AlertDelivery => ({
  id: String(row.id),
  alertId: row.alert_id,
  customerId: row.customer_id,
  subscriptionId: row.subscription_id,
  type: row.type,
  periodStart: row.period_start.toISOString(),
  status: row.status,
  attempts: row.attempts,
  nextAttemptAt: row.next_attempt_at.toISOString(),
  lastAttemptAt: row.last_attempt_at?.toISOString() ?? null,
  lastStatusCode: row.last_status_code,
  lastError: row.last_error,
  deliveredAt: row.delivered_at?.toISOString() ?? null,
  createdAt: row.created_at.toISOString(),
});
