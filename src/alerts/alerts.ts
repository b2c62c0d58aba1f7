/** Usage alerts, wired: webhooks, and the passes of the evaluation and delivery loops (src/app.ts schedules them). */
import type { Catalog } from '../catalog/index.js';
import type { AlertsConfig } from '../config/index.js';
import type { EventOutbox } from '../events/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Db } from '../store/index.js';
import { AlertDeliveryLog } from './deliveries.js';
import { AlertDeliveryWorker, type DeliveryPassSummary } from './delivery-worker.js';
import { AlertEvaluator } from './evaluator.js';
import { listAlerts, type AlertWithDelivery, type UsageAlert } from './records.js';
import { AlertWebhooks } from './webhooks.js';

/** Advisory locks of the two loops' leaders: "alrt" and "aldv" in ASCII. */
export const alertEvaluationLockId = 0x616c7274;
export const alertDeliveryLockId = 0x616c6476;

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

export interface UsageAlerts {
  webhooks: AlertWebhooks;
  deliveries: AlertDeliveryLog;
  /** The evaluation loop's pass: records the alerts whose thresholds were crossed. Run it as the leader. */
  evaluate(): Promise<UsageAlert[]>;
  /** The delivery loop's pass: attempts one batch of due deliveries. Run it as the leader. */
  deliverDue(): Promise<DeliveryPassSummary>;
  list(customerId: string, limit: number): Promise<AlertWithDelivery[]>;
}

export function createUsageAlerts(deps: UsageAlertsDeps): UsageAlerts {
  const { config, db, metrics, logger } = deps;
  const deliveries = new AlertDeliveryLog(db);
  const evaluator = new AlertEvaluator({ db, catalog: deps.catalog, clock: deps.clock, metrics, logger, events: deps.events });
  const worker = new AlertDeliveryWorker({
    log: deliveries,
    policy: config.retry,
    timeoutMs: config.timeoutMs,
    userAgent: `Tollgate/${deps.version}`,
    metrics,
    logger,
  });
  return {
    webhooks: new AlertWebhooks(db),
    deliveries,
    evaluate: () => evaluator.evaluate(),
    deliverDue: () => worker.deliverDue(),
    list: (customerId, limit) => listAlerts(db, customerId, limit),
  };
}
