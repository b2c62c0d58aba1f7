/** Usage alerts, wired: webhooks, the evaluation loop and the delivery loop, each led by one replica at a time. */
import type { Catalog } from '../catalog/index.js';
import type { AlertsConfig } from '../config/index.js';
import { type Clock, type Logger, notFound } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Db } from '../store/index.js';
import { AlertDeliveryWorker, type DeliveryPassSummary } from './delivery-worker.js';
import { AlertEvaluator } from './evaluator.js';
import { LeaderLoop } from './leader-loop.js';
import { type AlertDelivery, type AlertRecords, type AlertWithDelivery, alertEvent, type DeliveryFilter, type UsageAlert } from './records.js';
import { SqlAlertRecords } from './sql-records.js';
import { AlertWebhooks } from './webhooks.js';

/** Advisory locks of the two leaders: "alrt" and "aldv" in ASCII. */
const evaluationLockId = 0x616c7274;
const deliveryLockId = 0x616c6476;

export interface UsageAlertsDeps {
  config: AlertsConfig;
  db: Db;
  catalog: () => Catalog;
  clock: Clock;
  version: string;
  metrics: Metrics;
  logger: Logger;
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
  /** runOnce() evaluates now: undefined if another replica leads. */
  evaluation: LeaderLoop<UsageAlert[]>;
  delivery: LeaderLoop<DeliveryPassSummary>;
  list(customerId: string, limit: number): Promise<AlertWithDelivery[]>;
  stop(): Promise<void>;
}

export function startUsageAlerts(deps: UsageAlertsDeps): UsageAlerts {
  const { config, db, metrics, logger } = deps;
  const records = new SqlAlertRecords(db);
  const evaluator = new AlertEvaluator({ records, catalog: deps.catalog, clock: deps.clock, metrics, logger });
  const worker = new AlertDeliveryWorker({
    log: records,
    policy: config.retry,
    timeoutMs: config.timeoutMs,
    userAgent: `Tollgate/${deps.version}`,
    metrics,
    logger,
  });
  const evaluation = new LeaderLoop({
    db,
    lockId: evaluationLockId,
    intervalMs: config.evaluationIntervalMs,
    name: 'usage alert evaluation',
    logger,
    pass: () => evaluator.evaluate(),
  });
  const delivery = new LeaderLoop({
    db,
    lockId: deliveryLockId,
    intervalMs: config.deliveryIntervalMs,
    name: 'usage alert delivery',
    logger,
    pass: () => worker.deliverDue(),
  });
  evaluation.start();
  delivery.start();
  return {
    webhooks: new AlertWebhooks(records),
    deliveries: {
      get: (id) => records.delivery(id),
      list: (filter) => records.deliveries(filter),
      retryDead: (id) => records.retryDeadDelivery(id),
    },
    evaluation,
    delivery,
    list: (customerId, limit) => listAlerts(records, customerId, limit),
    stop: async () => {
      await Promise.all([evaluation.stop(), delivery.stop()]);
    },
  };
}

/** A customer's alerts, newest first, with the state of their delivery. */
export async function listAlerts(records: AlertRecords, customerId: string, limit: number): Promise<AlertWithDelivery[]> {
  const rows = await records.customerAlerts(customerId, limit);
  // No alerts, or no such customer: the latter is a 404, as on every other route of a customer.
  if (rows.length === 0 && !(await records.customerExists(customerId))) throw notFound('customer', customerId);
  return rows.map(({ alert, delivery }) => ({ event: alertEvent(alert), delivery }));
}
