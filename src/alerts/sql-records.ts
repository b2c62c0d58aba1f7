import type { AlertType } from '../catalog/index.js';
import { type Db, joinedTransaction, type Queryable, withDomainErrors } from '../store/index.js';
import type {
  AlertDelivery,
  AlertRecords,
  AlertWebhookRecord,
  AlertWithDelivery,
  AttemptFailure,
  DeliveryFilter,
  DeliveryStatus,
  DueDelivery,
  SubscriptionPeriod,
  UsageAlert,
  WatchedSubscriptionRecord,
} from './records.js';

/** The alerts' records in PostgreSQL or PGlite (the same SQL on both). */
export class SqlAlertRecords implements AlertRecords {
  private readonly db: Db;

  constructor(db: Db) {
    this.db = withDomainErrors(db);
  }

  transaction<T>(work: (records: AlertRecords, tx: Queryable) => Promise<T>): Promise<T> {
    return this.db.transaction((tx) => work(new SqlAlertRecords(joinedTransaction(this.db, tx)), tx));
  }

  async watchedSubscriptions(planIds: readonly string[]): Promise<WatchedSubscriptionRecord[]> {
    const rows = await this.db.query<{ id: string; customer_id: string; plan_id: string; period_anchor: Date }>(
      `SELECT id, customer_id, plan_id, period_anchor FROM subscriptions WHERE status = 'active' AND plan_id = ANY($1::text[]) ORDER BY id`,
      [planIds],
    );
    return rows.map((row) => ({ id: row.id, customerId: row.customer_id, planId: row.plan_id, periodAnchor: row.period_anchor }));
  }

  async periodUnits(periods: readonly SubscriptionPeriod[]): Promise<{ subscriptionId: string; units: bigint }[]> {
    if (periods.length === 0) return [];
    const rows = await this.db.query<{ subscription_id: string; units: string }>(
      `SELECT subscription_id, sum(units) AS units FROM usage_rollups
       WHERE (customer_id, subscription_id, period_start) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]))
       GROUP BY subscription_id`,
      [periods.map((p) => p.customerId), periods.map((p) => p.subscriptionId), periods.map((p) => p.periodStart)],
    );
    return rows.map((row) => ({ subscriptionId: row.subscription_id, units: BigInt(row.units) }));
  }

  async periodInvoices(periods: readonly SubscriptionPeriod[]): Promise<{ id: string; subscriptionId: string; total: bigint; currency: string }[]> {
    if (periods.length === 0) return [];
    const rows = await this.db.query<{ id: string; subscription_id: string; total: string; currency: string }>(
      `SELECT id, subscription_id, total, currency FROM invoices
       WHERE (subscription_id, period_start) IN (SELECT * FROM unnest($1::text[], $2::timestamptz[]))`,
      [periods.map((p) => p.subscriptionId), periods.map((p) => p.periodStart)],
    );
    return rows.map((row) => ({ id: row.id, subscriptionId: row.subscription_id, total: BigInt(row.total), currency: row.currency }));
  }

  async walletBalances(customerIds: readonly string[]): Promise<{ customerId: string; currency: string; balance: bigint }[]> {
    if (customerIds.length === 0) return [];
    const rows = await this.db.query<{ customer_id: string; currency: string; balance: string }>(
      `SELECT w.customer_id, w.currency, coalesce(sum(e.amount), 0) AS balance
       FROM wallets w LEFT JOIN wallet_entries e ON e.customer_id = w.customer_id AND e.currency = w.currency
       WHERE w.customer_id = ANY($1::text[]) GROUP BY w.customer_id, w.currency`,
      [customerIds],
    );
    return rows.map((row) => ({ customerId: row.customer_id, currency: row.currency, balance: BigInt(row.balance) }));
  }

  async insertAlerts(alerts: readonly UsageAlert[]): Promise<UsageAlert[]> {
    if (alerts.length === 0) return [];
    const rows = await this.db.query<UsageAlertRow>(
      `INSERT INTO usage_alerts (id, customer_id, subscription_id, plan_id, period_start, period_end, type, threshold, observed, fired_at)
       SELECT c.id, c.customer_id, c.subscription_id, c.plan_id, c.period_start, c.period_end, c.type, c.threshold, c.observed, c.fired_at
       FROM jsonb_to_recordset($1::jsonb) AS c (id text, customer_id text, subscription_id text, plan_id text,
         period_start timestamptz, period_end timestamptz, type text, threshold jsonb, observed jsonb, fired_at timestamptz)
       ON CONFLICT (customer_id, subscription_id, period_start, plan_id, threshold) DO NOTHING
       RETURNING *`,
      [
        JSON.stringify(
          alerts.map((alert) => ({
            id: alert.id,
            customer_id: alert.customerId,
            subscription_id: alert.subscriptionId,
            plan_id: alert.planId,
            period_start: new Date(alert.period.start).toISOString(),
            period_end: new Date(alert.period.end).toISOString(),
            type: alert.type,
            threshold: alert.threshold,
            observed: alert.observed,
            fired_at: new Date(alert.firedAt).toISOString(),
          })),
        ),
      ],
    );
    return rows.map(toUsageAlert);
  }

  async queueDeliveries(alertIds: readonly string[]): Promise<void> {
    if (alertIds.length === 0) return;
    await this.db.query(
      `INSERT INTO alert_deliveries (alert_id)
       SELECT a.id FROM usage_alerts a JOIN alert_webhooks w ON w.customer_id = a.customer_id WHERE a.id = ANY($1::text[])`,
      [alertIds],
    );
  }

  async customerAlerts(customerId: string, limit: number): Promise<{ alert: UsageAlert; delivery: AlertWithDelivery['delivery'] }[]> {
    const rows = await this.db.query<UsageAlertRow & { delivery_id: string | null; delivery_status: string | null; delivery_attempts: number | null }>(
      `SELECT a.*, d.id AS delivery_id, d.status AS delivery_status, d.attempts AS delivery_attempts
       FROM usage_alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id
       WHERE a.customer_id = $1 ORDER BY a.fired_at DESC, a.id LIMIT $2`,
      [customerId, limit],
    );
    return rows.map((row) => ({
      alert: toUsageAlert(row),
      delivery: row.delivery_id === null ? null : { id: String(row.delivery_id), status: row.delivery_status!, attempts: row.delivery_attempts! },
    }));
  }

  async customerExists(customerId: string): Promise<boolean> {
    return (await this.db.query('SELECT 1 FROM customers WHERE id = $1', [customerId])).length > 0;
  }

  async dueDeliveries(limit: number): Promise<DueDelivery[]> {
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

  async markDelivered(id: string, statusCode: number): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET status = 'delivered', attempts = attempts + 1, last_attempt_at = clock_timestamp(),
         last_status_code = $2, delivered_at = clock_timestamp()
       WHERE id = $1 AND status = 'pending'`,
      [id, statusCode],
    );
  }

  async rescheduleDelivery(id: string, delayMs: number, failure: AttemptFailure): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET attempts = attempts + 1, last_attempt_at = clock_timestamp(), last_status_code = $2,
         last_error = $3, next_attempt_at = clock_timestamp() + $4 * interval '1 millisecond'
       WHERE id = $1 AND status = 'pending'`,
      [id, failure.statusCode, failure.error, delayMs],
    );
  }

  async buryDelivery(id: string, failure: AttemptFailure): Promise<void> {
    await this.db.query(
      `UPDATE alert_deliveries SET status = 'dead', attempts = attempts + 1, last_attempt_at = clock_timestamp(),
         last_status_code = $2, last_error = $3
       WHERE id = $1 AND status = 'pending'`,
      [id, failure.statusCode, failure.error],
    );
  }

  async delivery(id: string): Promise<AlertDelivery | undefined> {
    const [row] = await this.db.query<DeliveryRow>(`SELECT ${deliveryColumns} FROM alert_deliveries d JOIN usage_alerts a ON a.id = d.alert_id WHERE d.id = $1`, [id]);
    return row && toDelivery(row);
  }

  async deliveries(filter: DeliveryFilter): Promise<AlertDelivery[]> {
    const rows = await this.db.query<DeliveryRow>(
      `SELECT ${deliveryColumns} FROM alert_deliveries d JOIN usage_alerts a ON a.id = d.alert_id
       WHERE ($1::text IS NULL OR a.customer_id = $1) AND ($2::text IS NULL OR d.status = $2) AND d.id > $3
       ORDER BY d.id LIMIT $4`,
      [filter.customerId ?? null, filter.status ?? null, filter.after ?? '0', filter.limit],
    );
    return rows.map(toDelivery);
  }

  async retryDeadDelivery(id: string): Promise<AlertDelivery | undefined> {
    const [row] = await this.db.query<DeliveryRow>(
      `WITH rearmed AS (
         UPDATE alert_deliveries SET status = 'pending', attempts = 0, next_attempt_at = clock_timestamp()
         WHERE id = $1 AND status = 'dead' RETURNING *)
       SELECT ${deliveryColumns} FROM rearmed d JOIN usage_alerts a ON a.id = d.alert_id`,
      [id],
    );
    return row && toDelivery(row);
  }

  async setWebhook(customerId: string, url: string, secret: string): Promise<AlertWebhookRecord | undefined> {
    const [row] = await this.db.query<WebhookRow>(
      `INSERT INTO alert_webhooks (customer_id, url, signing_secret) SELECT id, $2, $3 FROM customers WHERE id = $1
       ON CONFLICT (customer_id) DO UPDATE SET url = excluded.url, signing_secret = excluded.signing_secret
       RETURNING *`,
      [customerId, url, secret],
    );
    return row && toWebhook(row);
  }

  async webhook(customerId: string): Promise<AlertWebhookRecord | undefined> {
    const [row] = await this.db.query<WebhookRow>('SELECT * FROM alert_webhooks WHERE customer_id = $1', [customerId]);
    return row && toWebhook(row);
  }

  async removeWebhook(customerId: string): Promise<boolean> {
    const rows = await this.db.query('DELETE FROM alert_webhooks WHERE customer_id = $1 RETURNING customer_id', [customerId]);
    return rows.length > 0;
  }
}

interface UsageAlertRow {
  id: string;
  customer_id: string;
  subscription_id: string;
  plan_id: string;
  period_start: Date;
  period_end: Date;
  type: AlertType;
  threshold: Record<string, string | number>;
  observed: Record<string, string | number>;
  fired_at: Date;
}

const toUsageAlert = (row: UsageAlertRow): UsageAlert => ({
  id: row.id,
  customerId: row.customer_id,
  subscriptionId: row.subscription_id,
  planId: row.plan_id,
  period: { start: row.period_start.getTime(), end: row.period_end.getTime() },
  type: row.type,
  threshold: row.threshold,
  observed: row.observed,
  firedAt: row.fired_at.getTime(),
});

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

interface WebhookRow {
  customer_id: string;
  url: string;
  signing_secret: string;
  created_at: Date;
  updated_at: Date;
}

const toWebhook = (row: WebhookRow): AlertWebhookRecord => ({
  customerId: row.customer_id,
  url: row.url,
  secret: row.signing_secret,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});
