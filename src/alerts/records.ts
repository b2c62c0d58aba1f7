/** Usage alerts fired (usage_alerts), and the event each one sends to the customer's webhook. */
import { newId } from '../identity/index.js';
import { notFound } from '../kernel/index.js';
import type { BillingPeriod } from '../rating/index.js';
import type { Queryable } from '../store/index.js';
import type { AlertType } from '../catalog/index.js';

type JsonFields = Record<string, string | number>;

/** A threshold a subscription has crossed in its current billing period. */
export interface Crossing {
  customerId: string;
  subscriptionId: string;
  planId: string;
  period: BillingPeriod;
  type: AlertType;
  /** As `thresholdJson` gives it; with the plan, subscription and period, the alert's identity. */
  threshold: JsonFields;
  /** The value that crossed it. */
  observed: JsonFields;
}

export interface UsageAlert extends Crossing {
  id: string;
  /** Epoch ms, business time (the clock's). */
  firedAt: number;
}

/** The webhook body. Snake case, like the thresholds it names from the catalog. */
export interface AlertEvent {
  id: string;
  type: AlertType;
  created_at: string;
  customer: string;
  subscription: string;
  plan: string;
  period: { start: string; end: string };
  threshold: JsonFields;
  current: JsonFields;
}

export interface AlertWithDelivery {
  event: AlertEvent;
  /** null when the customer had no webhook when the alert fired. */
  delivery: { id: string; status: string; attempts: number } | null;
}

/**
 * Records the crossings that have not fired yet in their period; the unique key decides, so a threshold crossed
 * again (or seen by another pass) is not recorded twice. Returns the alerts fired now.
 */
export async function recordCrossings(tx: Queryable, crossings: readonly Crossing[], firedAt: number): Promise<UsageAlert[]> {
  const rows = await tx.query<UsageAlertRow>(
    `INSERT INTO usage_alerts (id, customer_id, subscription_id, plan_id, period_start, period_end, type, threshold, observed, fired_at)
     SELECT c.id, c.customer_id, c.subscription_id, c.plan_id, c.period_start, c.period_end, c.type, c.threshold, c.observed, $2
     FROM jsonb_to_recordset($1::jsonb) AS c (id text, customer_id text, subscription_id text, plan_id text,
       period_start timestamptz, period_end timestamptz, type text, threshold jsonb, observed jsonb)
     ON CONFLICT (customer_id, subscription_id, period_start, plan_id, threshold) DO NOTHING
     RETURNING *`,
    [
      JSON.stringify(
        crossings.map((crossing) => ({
          id: newId('alrt', 12),
          customer_id: crossing.customerId,
          subscription_id: crossing.subscriptionId,
          plan_id: crossing.planId,
          period_start: new Date(crossing.period.start).toISOString(),
          period_end: new Date(crossing.period.end).toISOString(),
          type: crossing.type,
          threshold: crossing.threshold,
          observed: crossing.observed,
        })),
      ),
      new Date(firedAt),
    ],
  );
  return rows.map(toUsageAlert);
}

/** A customer's alerts, newest first, with the state of their delivery. */
export async function listAlerts(db: Queryable, customerId: string, limit: number): Promise<AlertWithDelivery[]> {
  const rows = await db.query<UsageAlertRow & { delivery_id: string | null; delivery_status: string | null; delivery_attempts: number | null }>(
    `SELECT a.*, d.id AS delivery_id, d.status AS delivery_status, d.attempts AS delivery_attempts
     FROM usage_alerts a LEFT JOIN alert_deliveries d ON d.alert_id = a.id
     WHERE a.customer_id = $1 ORDER BY a.fired_at DESC, a.id LIMIT $2`,
    [customerId, limit],
  );
  // No alerts, or no such customer: the latter is a 404, as on every other route of a customer.
  if (rows.length === 0 && (await db.query('SELECT 1 FROM customers WHERE id = $1', [customerId])).length === 0) throw notFound('customer', customerId);
  return rows.map((row) => ({
    event: alertEvent(toUsageAlert(row)),
    delivery: row.delivery_id === null ? null : { id: String(row.delivery_id), status: row.delivery_status!, attempts: row.delivery_attempts! },
  }));
}

export function alertEvent(alert: UsageAlert): AlertEvent {
  return {
    id: alert.id,
    type: alert.type,
    created_at: new Date(alert.firedAt).toISOString(),
    customer: alert.customerId,
    subscription: alert.subscriptionId,
    plan: alert.planId,
    period: { start: new Date(alert.period.start).toISOString(), end: new Date(alert.period.end).toISOString() },
    threshold: alert.threshold,
    current: alert.observed,
  };
}

export interface UsageAlertRow {
  id: string;
  customer_id: string;
  subscription_id: string;
  plan_id: string;
  period_start: Date;
  period_end: Date;
  type: AlertType;
  threshold: JsonFields;
  observed: JsonFields;
  fired_at: Date;
}

export const toUsageAlert = (row: UsageAlertRow): UsageAlert => ({
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
