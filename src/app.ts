import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { adminRoutes, alertRoutes, billingRoutes, privacyRoutes, reportRoutes, type Route, type RunningHttpServer, startHttpServer, stripeRoutes, usageRoutes } from './admin/index.js';
import { createUsageAlerts, type DeliveryPassSummary, type UsageAlert, type UsageAlerts } from './alerts/index.js';
import { BillingQueries, RatingLoop, type RatingRun, RollupUsageSource, SqlInvoiceRecords, SqlRatingWork, SqlSubscriptionHistories, SqlWalletRecords, SubscriptionCharges, WalletService } from './billing/index.js';
import { type Catalog, loadCatalogFile } from './catalog/index.js';
import { checkMethod, createCheckHandler, memoizePeriods, startDecisionSeries, UsageIdentity } from './check/index.js';
import { type Config, minSigningKeyLength } from './config/index.js';
import { MemoryCounterStore, RedisCounterStore, ResilientCounterStore } from './counters/index.js';
import { createEventPublishing, type EventPublishing, eventsOff, eventsOn } from './events/index.js';
import { checkServiceName, grpcSecurity, type RunningGrpcServer, startGrpcServer } from './grpc/index.js';
import { AccountsService, type Identities, JwtVerifier, SqlAccountRecords, startIdentities } from './identity/index.js';
import { type Clock, type Job, lockDataDir, type Logger, readTlsFiles, Scheduler, stepWithin, systemClock, type Timers, version, watchTlsFiles } from './kernel/index.js';
import { createMetering, type Metering, SqlUsageRecords, usageFlushBackoff, UsageService } from './metering/index.js';
import { createMetrics, keepMetricsOfRunningParts, type Metrics, registerBuildInfo, registerIdentityCacheGauges, registerLeadershipGauges, registerSubscriptionGauge } from './metrics/index.js';
import { CustomerErasure, exportCustomer, SqlCustomerDataRecords } from './privacy/index.js';
import { periodContaining } from './rating/index.js';
import { businessMetrics, cachedBusinessMetrics, registerBusinessGauges, SqlBusinessRecords } from './reports/index.js';
import { createLeadership, type Db, instrumentDb, openDatabase, type ReplicaLeadership, withDomainErrors } from './store/index.js';
import { createStripeIntegration, type PassSummary, type StripeIntegration } from './stripe/index.js';
import { startTracing, type Tracing } from './tracing/index.js';
import { portalAdminRoutes, startPortal, type RunningPortal } from './portal/index.js';
import { runsControl, runsEdge } from './roles.js';


/** Expired in-memory counters read as 0 at once; sweeping them this often only bounds the memory they hold. */
const memoryCounterSweepMs = 60_000;

/** Business metrics move slowly: one computation serves the gauges for this long. */
const businessMetricsMaxAgeMs = 60_000;

/** What every role runs: the catalog, the stores, identities, the HTTP port (/metrics, /healthz, /readyz), the jobs. */
export interface AppCore {
  config: Config;
  catalog: Catalog;
  db: Db;
  identities: Identities;
  metrics: Metrics;
  http: RunningHttpServer;
  /** Every background job runs on it (docs/ARCHITECTURE.md, "Time and loops"). */
  scheduler: Scheduler;
  /** Spans over OTLP when the OTEL_* variables turn tracing on; noTracing otherwise. */
  tracing: Tracing;
  /** Drains and stops everything, after TOLLGATE_SHUTDOWN_DELAY_MS; safe to call twice. */
  stop(): Promise<void>;
  /** Ends the shutdown delay, so that a stop under way (or the next one) drains at once. */
  drainNow(): void;
}

/** The edge (beside Envoy): the gRPC port (Check, access logs, health) and the usage spool with its flush. */
export interface EdgeParts {
  grpc: RunningGrpcServer;
  metering: Metering;
}

/** The control role (back office): the admin API and its services, webhooks, the portal and the led loops. */
export interface ControlParts {
  accounts: AccountsService;
  /** Usage reports and their reconciliation with the counters, for the admin API and the portal. */
  usage: UsageService;
  stripe: StripeIntegration;
  wallets: WalletService;
  /** Whether this replica leads the led jobs (one replica at a time; docs/OPERATIONS.md, "Leadership"). */
  leadership: ReplicaLeadership;
  /** Rates a subscription's running period on demand (refreshCurrent); `ratingLoop` runs its passes. */
  rating: RatingLoop;
  ratingLoop: Job<RatingRun>;
  /** Undefined when Stripe is not configured at all. */
  stripeSync: Job<PassSummary> | undefined;
  alerts: UsageAlerts & { evaluation: Job<UsageAlert[]>; delivery: Job<DeliveryPassSummary> };
  /** The developer portal; undefined unless TOLLGATE_PORTAL_PORT is set. */
  portal: RunningPortal | undefined;
  /** Usage events, alerts and finalized invoices out to the event stream (off unless TOLLGATE_NATS_URL is set). */
  events: EventPublishing;
}

/** Everything: role `all`, one process (the default). */
export interface App extends AppCore, EdgeParts, ControlParts {}

/** One process of a role: the parts of the roles it does not run are undefined. */
export interface RunningRole extends AppCore {
  edge: EdgeParts | undefined;
  control: ControlParts | undefined;
}

export interface AppOverrides {
  /** The business time: periods, windows, invoices. */
  clock?: Clock;
  /** The time background jobs run on: a ManualClock in tests that run the jobs by advancing it. */
  timers?: Timers;
}

/** Starts every part (role `all`), as one process runs it; startRole starts the role the configuration names. */
export async function startApp(config: Config, logger: Logger, overrides: AppOverrides = {}): Promise<App> {
  if (config.role !== 'all') throw new Error(`startApp runs every part; TOLLGATE_ROLE=${config.role} is started by startRole`);
  const { edge, control, ...core } = await startRole(config, logger, overrides);
  return { ...core, ...edge!, ...control! };
}

/** What the parts of the roles share, built once per process. */
interface Shared {
  config: Config;
  logger: Logger;
  clock: Clock;
  scheduler: Scheduler;
  catalog: Catalog;
  db: Db;
  /** The database as the services write through it: failures as domain errors (conflict, invalid, unavailable). */
  records: Db;
  identities: Identities;
  /** After a committed change to a customer: every replica's Checks see it (AccountsService's afterWrite). */
  identityChanged: (customerId: string) => Promise<void>;
  leadership: ReplicaLeadership;
  counters: ResilientCounterStore;
  metrics: Metrics;
  tracing: Tracing;
}

/**
 * The composition root: builds the shared adapters from the configuration, then the edge parts, the control parts or
 * both (TOLLGATE_ROLE), and the HTTP server. `tollgate serve` checks the ports first (checkPortsFree), before this
 * opens anything.
 */
export async function startRole(config: Config, logger: Logger, overrides: AppOverrides = {}): Promise<RunningRole> {
  const clock = overrides.clock ?? systemClock;
  const scheduler = new Scheduler({ timers: overrides.timers ?? systemClock, logger });
  const catalog = loadCatalogFile(config.catalogPath);
  logger.info({ role: config.role, file: config.catalogPath, products: catalog.products.size, plans: catalog.plans.size }, 'catalog loaded');
  mkdirSync(config.dataDir, { recursive: true });
  const dataDirLock = lockDataDir(config.dataDir);
  const adminToken = config.adminToken ?? adminTokenFromDataDir(config.dataDir, logger);
  const metrics = createMetrics();
  registerBuildInfo(metrics, { version, commit: config.buildCommit, role: config.role });
  keepMetricsOfRunningParts(metrics, { edge: runsEdge(config.role), control: runsControl(config.role) });
  const tracing = startTracing(config.tracing, { version, logger });

  const opened = await openDatabase(config, logger);
  // Only the control role runs led jobs; an edge must not take leadership it would not use.
  const leadership = createLeadership({ databaseUrl: runsControl(config.role) ? config.databaseUrl : undefined }, logger);
  // Fenced at the bottom, so that every write a led pass makes, through whichever records, is refused once deposed.
  const db = instrumentDb(leadership.fence(opened.db), {
    observe: (seconds, failed) => {
      metrics.dbQueryDuration.observe(seconds);
      if (failed) metrics.dbQueryErrors.inc();
    },
  });
  const records = withDomainErrors(db);
  // Connecting to Redis for the counters while the identities start (which wait for Redis too, with Redis they read
  // from): with Redis down at start, the two waits overlap instead of adding up.
  const redisCounters = config.redis.url
    ? new RedisCounterStore({
        url: config.redis.url,
        prefix: config.redis.prefix,
        timeoutMs: config.redis.timeoutMs,
        onLateReply: (outcome) => metrics.quotaStoreLateReplies.inc({ outcome }),
      })
    : undefined;
  const redisCountersReady = redisCounters?.ready();
  const identity = await startIdentities({
    config,
    db,
    clock,
    logger,
    scheduler,
    snapshotFile: config.databaseUrl ? join(config.dataDir, 'identity-snapshot.json') : undefined,
    publishes: runsControl(config.role),
    leadership,
  });
  const { identities } = identity;

  const local = new MemoryCounterStore(clock, config.redis.prefix);
  scheduler.every('memory counter sweep', memoryCounterSweepMs, async () => local.sweep());
  let counters: ResilientCounterStore;
  if (redisCounters) {
    if (!(await redisCountersReady)) {
      logger.error({ failureMode: config.redis.failureMode }, 'Redis unreachable at start; serving in failure mode until it connects');
    }
    const redisLatency = metrics.quotaStoreDuration.bind({ store: 'redis' });
    counters = new ResilientCounterStore(
      redisCounters,
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
  const shared: Shared = { config, logger, clock, scheduler, catalog, db, records, identities, identityChanged: identity.changed, leadership, counters, metrics, tracing };
  const edge = runsEdge(config.role) ? await startEdge(shared) : undefined;
  const control = runsControl(config.role) ? await startControl(shared, () => edge?.parts.metering.spool.pendingEvents ?? 0) : undefined;
  registerIdentityCacheGauges(metrics, identities);

  let stopping = false;
  const http = await startHttpServer({
    host: config.http.host,
    port: config.http.port,
    tls: config.http.tls ? readTlsFiles(config.http.tls) : undefined,
    adminToken,
    // The edge answers only the system routes (/metrics, /healthz, /readyz): an admin route is a 404 there.
    routes: control?.routes ?? [],
    registry: metrics.registry,
    businessRegistry: metrics.businessRegistry,
    metricsToken: config.metricsToken,
    readiness: () => ({ catalog: true, identities: identities.ready, counters: counters.serving, accepting: !stopping }),
    version,
    logger,
  });
  const httpTlsWatch = config.http.tls ? watchTlsFiles('HTTP TLS files poll', config.http.tls, (tls) => http.setSecureContext(tls), logger, scheduler) : undefined;
  logger.info({ port: http.port, tls: config.http.tls ? 'on' : 'off (plaintext)' }, control ? 'HTTP listening (admin API, /metrics, /readyz)' : 'HTTP listening (/metrics, /readyz; no admin API in the edge role)');
  if (control) await control.startPortal();

  let stopped: Promise<void> | undefined;
  /** Aborted to end the shutdown delay early (a second signal). */
  const shutdownDelay = new AbortController();
  const stop = () =>
    (stopped ??= (async () => {
      stopping = true;
      edge?.reportNotServing();
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
      if (edge) await edge.drain(step, drainUntil);
      httpTlsWatch?.close();
      await step('HTTP drain', drainUntil, () => http.close(drainUntil));
      const portal = control?.parts.portal;
      if (portal) await step('portal drain', drainUntil, () => portal.close(drainUntil));
      await step('background jobs', drainUntil, () => scheduler.stop());
      // After the led passes, before the pool closes: another replica takes over at its next attempt.
      await step('leadership release', drainUntil, () => leadership.close());
      // After every writer. What is still queued stays in the outbox, for another replica or the next start.
      if (control) await step('event publishing', drainUntil, () => control.parts.events.stop());
      await step('counter store close', closeUntil, () => counters.close());
      identity.close();
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
    identities,
    metrics,
    http,
    scheduler,
    tracing,
    edge: edge?.parts,
    control: control?.parts,
    stop,
    drainNow: () => shutdownDelay.abort(),
  };
}

type Step = (name: string, until: number, work: () => unknown) => Promise<unknown>;

/** The edge: signs and checks calls on the gRPC port, receives their access logs and flushes them to the database. */
async function startEdge(shared: Shared) {
  const { config, logger, clock, scheduler, catalog, db, identities, counters, metrics, tracing } = shared;
  const usageIdentity = new UsageIdentity(config.usageSigningKeys.length > 0 ? config.usageSigningKeys : [usageSigningKeyFromDataDir(config.dataDir, logger)]);
  startDecisionSeries(metrics, catalog.plans.keys());
  // The usage insert queues each stored event for the publisher (the control role's job) when events are on.
  const events = config.events ? eventsOn : eventsOff;
  const metering = createMetering({ config, db, catalog: () => catalog, identities, clock, usage: usageIdentity, metrics, logger, tracing, events });
  // At once on start: it replays what a previous process left in the spool. The meter logs its own write failures.
  scheduler.every('usage flush', config.metering.flushIntervalMs, () => metering.meter.flushDue(), { immediately: true, backoff: usageFlushBackoff, onFailure: () => {} });
  scheduler.every('spool fsync', config.metering.spoolFsyncMs, async () => metering.spool.syncWritten());
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
  return {
    parts: { grpc, metering } satisfies EdgeParts,
    reportNotServing: () => {
      grpc.health.setStatus('', 'NOT_SERVING');
      grpc.health.setStatus(checkServiceName, 'NOT_SERVING');
    },
    /** Refuses new calls first, then ends the ALS streams (Envoy reopens them elsewhere) so draining need not wait. */
    drain: async (step: Step, drainUntil: number) => {
      await step('gRPC drain', drainUntil, () => {
        const grpcDrained = grpc.shutdown(drainUntil - Date.now());
        metering.receiver.endStreams();
        return grpcDrained;
      });
      grpcSecured.close();
      await step('usage flush', drainUntil, () => metering.meter.stop(drainUntil - Date.now()));
    },
  };
}

/**
 * The control role: accounts, billing, Stripe, alerts and reports behind the admin API, the led loops, the portal.
 * `pendingEvents` counts the usage events received in this process and not yet stored (none without an edge).
 */
async function startControl(shared: Shared, pendingEvents: () => number) {
  const { config, logger, clock, scheduler, catalog, db, records, identities, identityChanged, leadership, counters, metrics, tracing } = shared;
  const invoiceRecords = new SqlInvoiceRecords(db);
  const subscriptionHistories = new SqlSubscriptionHistories(db);
  const billing = new BillingQueries(invoiceRecords, subscriptionHistories);
  const wallet = new WalletService(new SqlWalletRecords(db), counters, () => catalog, clock, logger);
  const accountRecords = new SqlAccountRecords(db);
  const accounts = new AccountsService(accountRecords, () => catalog, clock, identityChanged, new SubscriptionCharges(wallet, subscriptionHistories, () => catalog));
  // Usage queries answer the admin API in domain errors (the adapters'); the sink reads the database's own codes (duplicates).
  const usage = new UsageService({ records: new SqlUsageRecords(db), histories: subscriptionHistories, accounts, catalog: () => catalog, clock, counters, pendingEvents });

  const events = createEventPublishing({ config: config.events, db: records, clock, metrics, logger });
  if (events.job) scheduler.every('event publishing', events.job.intervalMs, events.job.pass, { ...events.job.options, lead: leadership });
  const rating = new RatingLoop(
    { invoices: invoiceRecords, histories: subscriptionHistories, catalog: () => catalog, clock, usage: new RollupUsageSource(db), work: new SqlRatingWork(db), wallets: wallet, metrics, logger, tracing, events: events.outbox },
    config.billing,
  );
  // At once on start: it catches up on the periods that ended while the service was down.
  const ratingLoop = scheduler.every('rating', config.billing.intervalMs, () => rating.pass(), { lead: rating.ledBy(leadership), immediately: true });
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
  const stripeSync = stripe.sync && scheduler.every('Stripe sync', config.stripe.syncIntervalMs, (signal) => stripe.sync!.pass(signal), { lead: leadership });
  if (stripe.sync) scheduler.every('Stripe usage scan', config.stripe.usageReportIntervalMs, async () => stripe.sync!.requestUsageScan());
  const usageAlerts = createUsageAlerts({ config: config.alerts, db: records, catalog: () => catalog, clock, version, metrics, logger, events: events.outbox });
  const alerts = {
    ...usageAlerts,
    evaluation: scheduler.every('usage alert evaluation', config.alerts.evaluationIntervalMs, () => usageAlerts.evaluate(), { lead: leadership }),
    delivery: scheduler.every('usage alert delivery', config.alerts.deliveryIntervalMs, () => usageAlerts.deliverDue(), { lead: leadership }),
  };
  // After the led jobs: the first leader's gain runs each of them at once.
  await leadership.start(scheduler);
  registerLeadershipGauges(metrics, leadership);

  registerSubscriptionGauge(metrics, async () => (await accountRecords.activeSubscriptionsByPlan()).map(({ planId, active }) => ({ plan: planId, active })));
  const businessRecords = new SqlBusinessRecords(db);
  const customerData = new SqlCustomerDataRecords(db);
  registerBusinessGauges(metrics, cachedBusinessMetrics({ records: businessRecords, catalog: () => catalog, clock, logger }, businessMetricsMaxAgeMs));
  const parts: ControlParts = { accounts, usage, stripe, wallets: wallet, leadership, rating, ratingLoop, stripeSync, alerts, portal: undefined, events };
  const routes: Route[] = [
    ...adminRoutes(accounts, () => catalog),
    ...usageRoutes(usage, { identities, keyHeader: config.keys.header, keyFromBearer: config.keys.fromBearer }),
    ...stripeRoutes(stripe),
    ...billingRoutes({ accounts, wallets: wallet, ratingLoop: rating, ratingJob: ratingLoop, billing, catalog: () => catalog, clock }),
    ...alertRoutes(alerts),
    ...reportRoutes({ businessMetrics: (current, window, now) => businessMetrics(businessRecords, current, window, now), catalog: () => catalog, clock }),
    ...privacyRoutes({ exportCustomer: (customerId, now) => exportCustomer(customerData, customerId, now), erasure: new CustomerErasure(customerData, accounts, clock), clock }),
    ...portalAdminRoutes(() => parts.portal, () => config.portal?.linkTtlMs ?? 0),
  ];
  return {
    parts,
    routes,
    /** After the HTTP server, on its own port when TOLLGATE_PORTAL_PORT is set. */
    startPortal: async () => {
      if (!config.portal) return;
      parts.portal = await startPortal({
        settings: config.portal,
        db,
        catalog: () => catalog,
        accounts,
        wallets: wallet,
        billing,
        histories: subscriptionHistories,
        usage,
        ratingLoop: rating,
        topUps: stripe.topUps,
        stripeConfigured: config.stripe.secretKey !== undefined,
        alerts,
        keyHeader: config.keys.header,
        clock,
        logger,
      });
    },
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
