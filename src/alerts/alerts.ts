/** Usage alerts, wired: webhooks, the evaluation loop and the delivery loop, each led by one replica at a time. */
import type { Catalog } from '../catalog/index.js';
import type { AlertsConfig } from '../config/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Db } from '../store/index.js';
import { AlertDeliveryLog } from './deliveries.js';
import { AlertDeliveryWorker, type DeliveryPassSummary } from './delivery-worker.js';
import { AlertEvaluator } from './evaluator.js';
import { LeaderLoop } from './leader-loop.js';
import { listAlerts, type AlertWithDelivery, type UsageAlert } from './records.js';
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

export interface UsageAlerts {
  webhooks: AlertWebhooks;
  deliveries: AlertDeliveryLog;
  /** runOnce() evaluates now: undefined if another replica leads. */
  evaluation: LeaderLoop<UsageAlert[]>;
  delivery: LeaderLoop<DeliveryPassSummary>;
  list(customerId: string, limit: number): Promise<AlertWithDelivery[]>;
  stop(): Promise<void>;
}

export function startUsageAlerts(deps: UsageAlertsDeps): UsageAlerts {
  const { config, db, metrics, logger } = deps;
  const deliveries = new AlertDeliveryLog(db);
  const evaluator = new AlertEvaluator({ db, catalog: deps.catalog, clock: deps.clock, metrics, logger });
  const worker = new AlertDeliveryWorker({
    log: deliveries,
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
    webhooks: new AlertWebhooks(db),
    deliveries,
    evaluation,
    delivery,
    list: (customerId, limit) => listAlerts(db, customerId, limit),
    stop: async () => {
      await Promise.all([evaluation.stop(), delivery.stop()]);
    },
  };
}
