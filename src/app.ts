import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { adminRoutes, alertRoutes, billingRoutes, privacyRoutes, reportRoutes, type RunningHttpServer, startHttpServer, stripeRoutes, usageRoutes } from './admin/index.js';
import { alertDeliveryLockId, alertEvaluationLockId, createUsageAlerts, type DeliveryPassSummary, type UsageAlert, type UsageAlerts } from './alerts/index.js';
import { BillingQueries, RatingLoop, type RatingRun, RollupUsageSource, SqlInvoiceRecords, SqlRatingWork, SqlSubscriptionHistories, SqlWalletRecords, SubscriptionCharges, WalletService } from './billing/index.js';
import { type Catalog, loadCatalogFile } from './catalog/index.js';
import { checkMethod, createCheckHandler, memoizePeriods, startDecisionSeries, UsageIdentity } from './check/index.js';
import { type Config, minSigningKeyLength } from './config/index.js';
import { MemoryCounterStore, RedisCounterStore, ResilientCounterStore } from './counters/index.js';
import { createEventPublishing, type EventPublishing } from './events/index.js';
import { checkServiceName, grpcSecurity, type RunningGrpcServer, startGrpcServer } from './grpc/index.js';
import { AccountsService, IdentityCache, identityFullReloadMs, identitySnapshotIntervalMs, JwtVerifier, SqlAccountRecords } from './identity/index.js';
import { type Clock, type Job, lockDataDir, type Logger, readTlsFiles, Scheduler, stepWithin, systemClock, type Timers, version, type WantedPort, watchTlsFiles } from './kernel/index.js';
import { createMetering, type Metering, usageFlushBackoff } from './metering/index.js';
import { createMetrics, type Metrics, registerBuildInfo, registerIdentityCacheGauges, registerSubscriptionGauge } from './metrics/index.js';
import { CustomerErasure, exportCustomer, SqlCustomerDataRecords } from './privacy/index.js';
import { periodContaining } from './rating/index.js';
import { businessMetrics, cachedBusinessMetrics, registerBusinessGauges, SqlBusinessRecords } from './reports/index.js';
import { advisoryLock, type Db, instrumentDb, openDatabase, withDomainErrors } from './store/index.js';
import { createStripeIntegration, type PassSummary, type StripeIntegration, stripeSyncLockId } from './stripe/index.js';
import { startTracing, type Tracing } from './tracing/index.js';
import { portalAdminRoutes, startPortal, type RunningPortal } from './portal/index.js';


/** Expired in-memory counters read as 0 at once; sweeping them this often only bounds the memory they hold. */
const memoryCounterSweepMs = 60_000;

/** Business metrics move slowly: one computation serves the gauges for this long. */
const businessMetricsMaxAgeMs = 60_000;

export interface App {
  config: Config;
  catalog: Catalog;
  db: Db;
  accounts: AccountsService;
  identities: IdentityCache;
  metrics: Metrics;
  grpc: RunningGrpcServer;
  http: RunningHttpServer;
  metering: Metering;
  stripe: StripeIntegration;
  wallets: WalletService;
  /** Every background job runs on it (docs/ARCHITECTURE.md, "Time and loops"). */
  scheduler: Scheduler;
  /** Rates a subscription's running period on demand (refreshCurrent); `ratingLoop` runs its passes. */
  rating: RatingLoop;
  ratingLoop: Job<RatingRun>;
  /** Undefined when Stripe is not configured at all. */
  stripeSync: Job<PassSummary> | undefined;
  alerts: UsageAlerts & { evaluation: Job<UsageAlert[]>; delivery: Job<DeliveryPassSummary> };
  /** Spans over OTLP when the OTEL_* variables turn tracing on; noTracing otherwise. */
  tracing: Tracing;
  /** The developer portal; undefined unless TOLLGATE_PORTAL_PORT is set. */
  portal: RunningPortal | undefined;
  /** Usage events, alerts and finalized invoices out to the event stream (off unless TOLLGATE_NATS_URL is set). */
  events: EventPublishing;
  /** Drains and stops everything, after TOLLGATE_SHUTDOWN_DELAY_MS; safe to call twice. */
  stop(): Promise<void>;
  /** Ends the shutdown delay, so that a stop under way (or the next one) drains at once. */
  drainNow(): void;
}

export interface AppOverrides {
  /** The business time: periods, windows, invoices. */
  clock?: Clock;
  /** The time background jobs run on: a ManualClock in tests that run the jobs by advancing it. */
  timers?: Timers;
}

/** The ports the servers listen on, named by the settings that chose them. */
export function listenPorts(config: Config): WantedPort[] {
  return [
    { name: 'gRPC', variable: 'TOLLGATE_GRPC_PORT', host: config.grpc.host, port: config.grpc.port },
    { name: 'HTTP', variable: 'TOLLGATE_HTTP_PORT', host: config.http.host, port: config.http.port },
    ...(config.portal ? [{ name: 'portal', variable: 'TOLLGATE_PORTAL_PORT', host: config.portal.host, port: config.portal.port }] : []),
  ];
}

/**
 * The composition root: builds every adapter from the configuration and starts both servers. `tollgate serve` checks
 * the ports first (checkPortsFree), before this opens anything.
 */
export async function startApp(config: Config, logger: Logger, overrides: AppOverrides = {}): Promise<App> {
  const clock = overrides.clock ?? systemClock;
  const scheduler = new Scheduler({ timers: overrides.timers ?? systemClock, logger });
  const catalog = loadCatalogFile(config.catalogPath);
  logger.info({ file: config.catalogPath, products: catalog.products.size, plans: catalog.plans.size }, 'catalog loaded');
  mkdirSync(config.dataDir, { recursive: true });
  const dataDirLock = lockDataDir(config.dataDir);
  const adminToken = config.adminToken ?? adminTokenFromDataDir(config.dataDir, logger);
  const usageIdentity = new UsageIdentity(config.usageSigningKeys.length > 0 ? config.usageSigningKeys : [usageSigningKeyFromDataDir(config.dataDir, logger)]);
  const metrics = createMetrics();
  registerBuildInfo(metrics, { version, commit: config.buildCommit });
  startDecisionSeries(metrics, catalog.plans.keys());
  const tracing = startTracing(config.tracing, { version, logger });

  const opened = await openDatabase(config, logger);
  const db = instrumentDb(opened.db, {
    observe: (seconds, failed) => {
      metrics.dbQueryDuration.observe(seconds);
      if (failed) metrics.dbQueryErrors.inc();
    },
  });
  // What the services and the admin API write through: its failures are domain errors (conflict, invalid, unavailable).
  const records = withDomainErrors(db);
  const identities = new IdentityCache(db, logger, { snapshotFile: config.databaseUrl ? join(config.dataDir, 'identity-snapshot.json') : undefined });
  await identities.start();
  // The cache logs when its sync fails and when it recovers, not on every failed poll.
  scheduler.every('identity sync', config.syncIntervalMs, () => identities.refresh(), { onFailure: () => {} });
  scheduler.every('identity full reload', identityFullReloadMs, async () => identities.requestFullReload());
  scheduler.every('identity snapshot', identitySnapshotIntervalMs, () => identities.writeSnapshot(), {
    immediately: true,
    // A snapshot that cannot be written is a disk problem, not a failed sync.
    onFailure: (error) => logger.warn({ err: (error as Error).message }, 'identity snapshot not written'),
  });

  const local = new MemoryCounterStore(clock, config.redis.prefix);
  scheduler.every('memory counter sweep', memoryCounterSweepMs, async () => local.sweep());
  let counters: ResilientCounterStore;
  if (config.redis.url) {
    const redis = new RedisCounterStore({
      url: config.redis.url,
      prefix: config.redis.prefix,
      timeoutMs: config.redis.timeoutMs,
      onLateReply: (outcome) => metrics.quotaStoreLateReplies.inc({ outcome }),
    });
    if (!(await redis.ready())) {
      logger.error({ failureMode: config.redis.failureMode }, 'Redis unreachable at start; serving in failure mode until it connects');
    }
    const redisLatency = metrics.quotaStoreDuration.bind({ store: 'redis' });
    counters = new ResilientCounterStore(
      redis,
      config.redis.failureMode,
      local,
      logger,
      (mode) => metrics.quotaStoreFailures.inc({ mode }),
      (seconds) => redisLatency.observe(seconds),
    );
  } else {
    const memoryLatency = metrics.quotaStoreDuration.bind({ store: 'memory' });
    counters = new ResilientCounterStore(local, 'closed', local, logger, undefined, (seconds) => memoryLatency.observe(seconds));
  }
  const invoiceRecords = new SqlInvoiceRecords(db);
  const subscriptionHistories = new SqlSubscriptionHistories(db);
  const billing = new BillingQueries(invoiceRecords, subscriptionHistories);
  const wallet = new WalletService(new SqlWalletRecords(db), counters, () => catalog, clock, logger);
  const accountRecords = new SqlAccountRecords(db);
  const accounts = new AccountsService(accountRecords, () => catalog, clock, () => void identities.refresh().catch(() => {}), new SubscriptionCharges(wallet, subscriptionHistories, () => catalog));

  const events = createEventPublishing({ config: config.events, db: records, clock, metrics, logger });
  if (events.job) scheduler.every('event publishing', events.job.intervalMs, events.job.pass, events.job.options);
  const metering = createMetering({ config, db, catalog: () => catalog, identities, accounts, counters, clock, usage: usageIdentity, metrics, logger, tracing, events: events.outbox });
  // At once on start: it replays what a previous process left in the spool. The meter logs its own write failures.
  scheduler.every('usage flush', config.metering.flushIntervalMs, () => metering.meter.flushDue(), { immediately: true, backoff: usageFlushBackoff, onFailure: () => {} });
  scheduler.every('spool fsync', config.metering.spoolFsyncMs, async () => metering.spool.syncWritten());
  const rating = new RatingLoop(
    { db: records, invoices: invoiceRecords, histories: subscriptionHistories, catalog: () => catalog, clock, usage: new RollupUsageSource(db), work: new SqlRatingWork(db), wallets: wallet, metrics, logger, tracing, events: events.outbox },
    config.billing,
  );
  // At once on start: it catches up on the periods that ended while the service was down.
  const ratingLoop = scheduler.every('rating', config.billing.intervalMs, () => rating.pass(), { lead: rating.leadership, immediately: true });
  const stripe = createStripeIntegration({
    config: config.stripe,
    version,
    db: records,
    accounts,
    catalog: () => catalog,
    clock,
    creditWallet: async (credit) => void (await wallet.topUp(credit)),
    metrics,
    logger,
    tracing,
  });
  const stripeSync = stripe.sync && scheduler.every('Stripe sync', config.stripe.syncIntervalMs, (signal) => stripe.sync!.pass(signal), { lead: advisoryLock(db, stripeSyncLockId) });
  if (stripe.sync) scheduler.every('Stripe usage scan', config.stripe.usageReportIntervalMs, async () => stripe.sync!.requestUsageScan());
  const usageAlerts = createUsageAlerts({ config: config.alerts, db: records, catalog: () => catalog, clock, version, metrics, logger, events: events.outbox });
  const alerts = {
    ...usageAlerts,
    evaluation: scheduler.every('usage alert evaluation', config.alerts.evaluationIntervalMs, () => usageAlerts.evaluate(), { lead: advisoryLock(db, alertEvaluationLockId) }),
    delivery: scheduler.every('usage alert delivery', config.alerts.deliveryIntervalMs, () => usageAlerts.deliverDue(), { lead: advisoryLock(db, alertDeliveryLockId) }),
  };
  const grpcSecured = grpcSecurity(config.grpc, (path) => metrics.grpcUnauthenticated.inc({ method: path.slice(path.lastIndexOf('/') + 1) }), logger);
  const grpc = await startGrpcServer({
    host: config.grpc.host,
    port: config.grpc.port,
    tls: grpcSecured.tls,
    authenticate: grpcSecured.authenticate,
    onUnauthenticated: grpcSecured.onUnauthenticated,
    check: checkMethod(createCheckHandler({
      jwt: config.jwt ? await JwtVerifier.create(config.jwt, () => clock.now()) : undefined,
      catalog: () => catalog,
      identities,
      counters,
      clock,
      options: { keyHeader: config.keys.header, keyFromBearer: config.keys.fromBearer, headerPrefix: config.headerPrefix },
      periodOf: memoizePeriods(periodContaining),
      usage: usageIdentity,
      metrics,
      logger,
      tracing,
    })),
    streamAccessLogs: metering.receiver.handle,
  });
  grpcSecured.watch((tls) => grpc.setSecureContext(tls), scheduler);
  grpc.health.setStatus('', 'SERVING');
  grpc.health.setStatus(checkServiceName, 'SERVING');
  logger.info({ port: grpc.port, ...grpcSecured.describe() }, 'gRPC listening (ext_authz Check, ALS, health)');

  registerIdentityCacheGauges(metrics, identities);
  registerSubscriptionGauge(metrics, async () => (await accountRecords.activeSubscriptionsByPlan()).map(({ planId, active }) => ({ plan: planId, active })));
  const businessRecords = new SqlBusinessRecords(db);
  const customerData = new SqlCustomerDataRecords(db);
  registerBusinessGauges(metrics, cachedBusinessMetrics({ records: businessRecords, catalog: () => catalog, clock, logger }, businessMetricsMaxAgeMs));
  let stopping = false;
  let portal: RunningPortal | undefined;
  const http = await startHttpServer({
    host: config.http.host,
    port: config.http.port,
    tls: config.http.tls ? readTlsFiles(config.http.tls) : undefined,
    adminToken,
    routes: [
      ...adminRoutes(accounts, () => catalog),
      ...usageRoutes(metering.usage, { identities, keyHeader: config.keys.header, keyFromBearer: config.keys.fromBearer }),
      ...stripeRoutes(stripe),
      ...billingRoutes({ accounts, wallets: wallet, ratingLoop: rating, ratingJob: ratingLoop, billing, catalog: () => catalog, clock }),
      ...alertRoutes(alerts),
      ...reportRoutes({ businessMetrics: (current, window, now) => businessMetrics(businessRecords, current, window, now), catalog: () => catalog, clock }),
      ...privacyRoutes({ exportCustomer: (customerId, now) => exportCustomer(customerData, customerId, now), erasure: new CustomerErasure(customerData, accounts, clock), clock }),
      ...portalAdminRoutes(() => portal, () => config.portal?.linkTtlMs ?? 0),
    ],
    registry: metrics.registry,
    businessRegistry: metrics.businessRegistry,
    metricsToken: config.metricsToken,
    readiness: () => ({ catalog: true, identities: identities.synced || identities.size > 0, counters: counters.serving, accepting: !stopping }),
    version,
    logger,
  });
  const httpTlsWatch = config.http.tls ? watchTlsFiles('HTTP TLS files poll', config.http.tls, (tls) => http.setSecureContext(tls), logger, scheduler) : undefined;
  logger.info({ port: http.port, tls: config.http.tls ? 'on' : 'off (plaintext)' }, 'HTTP listening (admin API, /metrics, /readyz)');
  if (config.portal) {
    portal = await startPortal({
      settings: config.portal,
      db,
      catalog: () => catalog,
      accounts,
      wallets: wallet,
      billing,
      histories: subscriptionHistories,
      usage: metering.usage,
      ratingLoop: rating,
      topUps: stripe.topUps,
      stripeConfigured: config.stripe.secretKey !== undefined,
      alerts,
      keyHeader: config.keys.header,
      clock,
      logger,
    });
  }

  let stopped: Promise<void> | undefined;
  /** Aborted to end the shutdown delay early (a second signal). */
  const shutdownDelay = new AbortController();
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      grpc.health.setStatus('', 'NOT_SERVING');
      grpc.health.setStatus(checkServiceName, 'NOT_SERVING');
      if (config.shutdownDelayMs > 0) {
        // Not ready, still serving: until Kubernetes and the proxies have taken this replica out of their endpoints,
        // Checks and access logs keep arriving, and refusing them would fail requests.
        logger.info({ delayMs: config.shutdownDelayMs }, 'not ready; still serving until the delay is over');
        await sleep(config.shutdownDelayMs, undefined, { signal: shutdownDelay.signal }).catch(() => {});
      }
      // Every step is bounded, so the stop ends within the grace whatever a step does; the closes at the end
      // (PGlite writes its files on close) keep a share of the grace that the draining steps cannot use up.
      const start = Date.now();
      const drainUntil = start + config.shutdownGraceMs * 0.75;
      const closeUntil = start + config.shutdownGraceMs * 0.95;
      const step = (name: string, until: number, work: () => unknown) => stepWithin(name, until, work, logger);
      // Refuse new calls first, then end the ALS streams (Envoy reopens them elsewhere) so draining need not wait.
      await step('gRPC drain', drainUntil, () => {
        const grpcDrained = grpc.shutdown(drainUntil - Date.now());
        metering.receiver.endStreams();
        return grpcDrained;
      });
      grpcSecured.close();
      await step('usage flush', drainUntil, () => metering.meter.stop(drainUntil - Date.now()));
      httpTlsWatch?.close();
      await step('HTTP drain', drainUntil, () => http.close(drainUntil));
      if (portal) await step('portal drain', drainUntil, () => portal!.close(drainUntil));
      await step('background jobs', drainUntil, () => scheduler.stop());
      // After every writer. What is still queued stays in the outbox, for another replica or the next start.
      await step('event publishing', drainUntil, () => events.stop());
      await step('counter store close', closeUntil, () => counters.close());
      await step('database close', closeUntil, () => db.close());
      // Last and best effort: the spans of everything above, in whatever the grace leaves.
      await step('trace flush', closeUntil, () => tracing.shutdown());
      dataDirLock.release();
      logger.info('stopped');
    })());

  return {
    config,
    catalog,
    db,
    accounts,
    identities,
    metrics,
    grpc,
    http,
    metering,
    stripe,
    wallets: wallet,
    scheduler,
    rating,
    ratingLoop,
    stripeSync,
    alerts,
    tracing,
    portal,
    events,
    stop,
    drainNow: () => shutdownDelay.abort(),
  };
}

/** Without TOLLGATE_ADMIN_TOKEN, a random token is kept in the data directory (mode 0600) for the local CLI. */
export function adminTokenFromDataDir(dataDir: string, logger: Logger): string {
  return secretFromDataDir(dataDir, 'admin-token', 16, 24, logger, 'generated an admin token (TOLLGATE_ADMIN_TOKEN not set)');
}

/**
 * Without TOLLGATE_USAGE_SIGNING_KEY, a random key is kept in the data directory (mode 0600). That suits one process;
 * replicas sharing a database must be given the same key, or each bills only the calls it checked itself.
 */
export function usageSigningKeyFromDataDir(dataDir: string, logger: Logger): string {
  return secretFromDataDir(dataDir, 'usage-signing-key', minSigningKeyLength, 32, logger, 'generated a usage signing key (TOLLGATE_USAGE_SIGNING_KEY not set); replicas need the same key');
}

/** A secret kept in a file of the data directory, generated (`bytes` random bytes, base64url) when absent or too short. */
function secretFromDataDir(dataDir: string, name: string, minLength: number, bytes: number, logger: Logger, generated: string): string {
  const file = join(dataDir, name);
  try {
    const stored = readFileSync(file, 'utf8').trim();
    // A truncated file (e.g. a full disk at first start) must not become an empty or guessable secret.
    if (stored.length >= minLength) return stored;
    throw new Error(`${name} file too short`);
  } catch {
    const secret = randomBytes(bytes).toString('base64url');
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    logger.info({ file }, generated);
    return secret;
  }
}
