import type { AccountsService } from '../identity/index.js';
import type { Catalog } from '../catalog/index.js';
import type { StripeConfig } from '../config/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import { type Metrics, registerStripeOutboxGauge } from '../metrics/index.js';
import type { Db } from '../store/index.js';
import type { Tracing } from '../tracing/index.js';
import { createStripeClient } from './client.js';
import { StripeCustomers } from './customers.js';
import { Dunning } from './dunning.js';
import { StripeInvoicePush } from './invoices.js';
import { StripeOutbox, type StripeWorkKind } from './outbox.js';
import { StripeReconciler } from './reconcile.js';
import { StripeSync, type WorkHandler } from './sync.js';
import { StripeTopUps, type CreditWallet } from './topups.js';
import { StripeUsageReports } from './usage.js';
import { StripeWebhooks } from './webhooks.js';

export interface StripeIntegrationDeps {
  config: StripeConfig;
  version: string;
  db: Db;
  accounts: AccountsService;
  catalog: () => Catalog;
  clock: Clock;
  creditWallet: CreditWallet;
  metrics: Metrics;
  logger: Logger;
  /** Spans for the sync loop's passes and work items. */
  tracing?: Tracing;
}

export interface StripeIntegration {
  outbox: StripeOutbox;
  topUps: StripeTopUps;
  /** Undefined without TOLLGATE_STRIPE_WEBHOOK_SECRET. */
  webhooks: StripeWebhooks | undefined;
  /** Undefined without TOLLGATE_STRIPE_SECRET_KEY. */
  reconciler: StripeReconciler | undefined;
  /** Undefined when Stripe is not configured at all. */
  sync: StripeSync | undefined;
  stop(): Promise<void>;
}

/** Builds the Stripe side from the configuration and starts its sync loop. */
export function startStripeIntegration(deps: StripeIntegrationDeps): StripeIntegration {
  const { config, db, accounts, catalog, clock, metrics, logger } = deps;
  const stripe = config.secretKey ? createStripeClient(config, config.secretKey, deps.version) : undefined;
  const outbox = new StripeOutbox(db);
  const customers = new StripeCustomers(db, stripe);
  const dunning = new Dunning(db, accounts, clock, config.paymentGraceMs, metrics, logger);
  const topUps = new StripeTopUps(db, stripe, customers, deps.creditWallet, logger);
  let usage: StripeUsageReports | undefined;
  let handlers: Record<StripeWorkKind, WorkHandler> | undefined;
  if (stripe) {
    const reports = new StripeUsageReports(db, stripe, customers, catalog, clock);
    const invoices = new StripeInvoicePush(db, stripe, customers, catalog);
    handlers = {
      'customer.sync': (work) => customers.sync(work),
      'invoice.finalized': (work) => invoices.push(work),
      'usage.report': (work) => reports.report(work),
      'topup.checkout': (work) => topUps.openCheckout(work),
    };
    usage = reports;
  }
  const webhooks =
    config.webhookSecrets.length === 0
      ? undefined
      : new StripeWebhooks({ secrets: config.webhookSecrets, stripe, db, accounts, catalog, clock, customers, dunning, topUps, metrics, logger });
  const sync =
    stripe || webhooks
      ? new StripeSync({
          db,
          outbox,
          handlers,
          dunning,
          usage,
          policy: config.retry,
          intervalMs: config.syncIntervalMs,
          concurrency: config.concurrency,
          usageReportIntervalMs: config.usageReportIntervalMs,
          metrics,
          logger,
          tracing: deps.tracing,
        })
      : undefined;
  sync?.start();
  registerStripeOutboxGauge(metrics, () => outbox.backlog());
  if (!stripe) logger.info('Stripe sync off (TOLLGATE_STRIPE_SECRET_KEY not set); Stripe work waits in the outbox');
  return {
    outbox,
    topUps,
    webhooks,
    reconciler: stripe && new StripeReconciler(db, stripe, accounts, customers, dunning, outbox, catalog, clock),
    sync,
    stop: async () => sync?.stop(),
  };
}
