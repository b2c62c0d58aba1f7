/** Usage alerts, wired: webhooks, and the passes of the evaluation and delivery loops (src/app.ts schedules them). */
import type { Catalog } from '../catalog/index.js';
import type { AlertsConfig } from '../config/index.js';
import type { EventOutbox } from '../events/index.js';
import { type Clock, type Logger, notFound } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Db } from '../store/index.js';
import { AlertDeliveryWorker, type DeliveryPassSummary } from './delivery-worker.js';
import { AlertEvaluator } from './evaluator.js';
import { type AlertDelivery, type AlertRecords, type AlertWithDelivery, alertEvent, type DeliveryFilter, type UsageAlert } from './records.js';
import { SqlAlertRecords } from './sql-records.js';
import { AlertWebhooks } from './webhooks.js';

export interface UsageAlertsDeps {
  config: AlertsConfig;
  db: Db;
  catalog: () => Catalog;
  clock: Clock;
  version: string;
  metrics: Metrics;
  logger: Logger;
  /** Where fired alerts are queued for the event stream; off unless given. */
  events?: EventOutbox;
}

/** The delivery log as operators see it. */
export interface AlertDeliveries {
  get(id: string): Promise<AlertDelivery | undefined>;
  list(filter: DeliveryFilter): Promise<AlertDelivery[]>;
  /** Re-arms a dead delivery to be sent now with a fresh attempt budget; undefined if it is not dead. */
  retryDead(id: string): Promise<AlertDelivery | undefined>;
}

export interface UsageAlerts {
  webhooks: AlertWebhooks;
  deliveries: AlertDeliveries;
  /** The evaluation loop's pass: records the alerts whose thresholds were crossed. Run it as the leader. */
  evaluate(): Promise<UsageAlert[]>;
  /** The delivery loop's pass: attempts one batch of due deliveries. Run it as the leader. */
  deliverDue(): Promise<DeliveryPassSummary>;
  list(customerId: string, limit: number): Promise<AlertWithDelivery[]>;
}

export function createUsageAlerts(deps: UsageAlertsDeps): UsageAlerts {
  const { config, db, metrics, logger } = deps;
  const records = new SqlAlertRecords(db);
  const evaluator = new AlertEvaluator({ records, catalog: deps.catalog, clock: deps.clock, metrics, logger, events: deps.events });
  const worker = new AlertDeliveryWorker({
    log: records,
    policy: config.retry,
    timeoutMs: config.timeoutMs,
    userAgent: `Tollgate/${deps.version}`,
    metrics,
    logger,
  });
  return {
    webhooks: new AlertWebhooks(records),
    deliveries: {
      get: (id) => records.delivery(id),
      list: (filter) => records.deliveries(filter),
      retryDead: (id) => records.retryDeadDelivery(id),
    },
    evaluate: () => evaluator.evaluate(),
    deliverDue: () => worker.deliverDue(),
    list: (customerId, limit) => listAlerts(records, customerId, limit),
  };
}

/** A customer's alerts, newest first, with the state of their delivery. */
export async function listAlerts(records: AlertRecords, customerId: string, limit: number): Promise<AlertWithDelivery[]> {
  const rows = await records.customerAlerts(customerId, limit);
  // No alerts, or no such customer: the latter is a 404, as on every other route of a customer.
  if (rows.length === 0 && !(await records.customerExists(customerId))) throw notFound('customer', customerId);
  return rows.map(({ alert, delivery }) => ({ event: alertEvent(alert), delivery }));
}
