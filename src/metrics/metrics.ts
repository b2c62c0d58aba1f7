import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TalliedCounter, TalliedHistogram } from './tallies.js';

/**
 * prom-client's totals of its by-type gauges: gauges named like counters, which promtool refuses. Their sums over
 * `type` (tollgate_nodejs_active_handles and the like) say the same.
 */
const defaultGaugesNamedLikeCounters = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * Every metric Tollgate exports. Labels stay bounded: plan, reason and result come from the catalog and fixed
 * enums; customer ids and keys never become labels. Counters with a fixed set of label values start with each at 0,
 * so that rate() and increase() see their first events (a series born at 1 shows no increase).
 */
export function createMetrics(registry = new Registry()) {
  collectDefaultMetrics({ register: registry, prefix: 'tollgate_' });
  for (const name of defaultGaugesNamedLikeCounters) registry.removeSingleMetric(`tollgate_${name}`);
  const metrics = {
    registry,
    /** Business gauges (MRR, revenue, churn): served apart from the operational ones, to token holders only. */
    businessRegistry: new Registry(),
    // Updated on every Check: tallies, not prom-client's own inc() and observe() (see tallies.ts).
    checkDecisions: new TalliedCounter({
      name: 'tollgate_check_decisions_total',
      help: 'Check decisions by result (allow, deny), denial reason and plan.',
      labelNames: ['result', 'reason', 'plan'] as const,
      registers: [registry],
    }),
    checkDuration: new TalliedHistogram({
      name: 'tollgate_check_duration_seconds',
      help: 'Time to decide one Check, from request to response.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    }),
    quotaStoreDuration: new TalliedHistogram({
      name: 'tollgate_quota_store_duration_seconds',
      help: 'Latency of one quota (counter) store consume call.',
      labelNames: ['store'] as const,
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers: [registry],
    }),
    dbQueryDuration: new Histogram({
      name: 'tollgate_db_query_duration_seconds',
      help: 'Latency of one PostgreSQL (or PGlite) query.',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    dbQueryErrors: new Counter({
      name: 'tollgate_db_query_errors_total',
      help: 'PostgreSQL (or PGlite) queries that failed, including connection failures.',
      registers: [registry],
    }),
    quotaStoreFailures: new Counter({
      name: 'tollgate_quota_store_failures_total',
      help: 'Quota (counter) store calls that failed, by the failure mode then applied (closed, open, local).',
      labelNames: ['mode'] as const,
      registers: [registry],
    }),
    quotaStoreLateReplies: new Counter({
      name: 'tollgate_quota_store_late_replies_total',
      help: 'Redis consume calls that replied after they had timed out: discarded (Redis ran them past their deadline and counted nothing) or evaluated (run in time, reply late: their counts stand though the Checks were answered from the failure mode).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    grpcUnauthenticated: new Counter({
      name: 'tollgate_grpc_unauthenticated_calls_total',
      help: 'Check and access-log calls refused with UNAUTHENTICATED (no trusted client certificate or caller token), by method.',
      labelNames: ['method'] as const,
      registers: [registry],
    }),
    alsEntriesReceived: new Counter({
      name: 'tollgate_als_entries_received_total',
      help: 'HTTP access-log entries received from Envoy over ALS.',
      registers: [registry],
    }),
    alsStreamsEnded: new Counter({
      name: 'tollgate_als_streams_ended_total',
      help: 'ALS streams ended, by outcome: closed (by Envoy, or by Tollgate when draining), cancelled (reset by Envoy while messages were still unread; a reset stream with none may count as closed), malformed (a message did not decode) or spool_unavailable.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    usageEventsSpooled: new Counter({
      name: 'tollgate_usage_events_spooled_total',
      help: 'Usage events appended to the local spool (received entries the spool could not take are not counted).',
      registers: [registry],
    }),
    usageEventsStored: new Counter({
      name: 'tollgate_usage_events_stored_total',
      help: 'Usage events committed to the database (request ids seen for the first time).',
      registers: [registry],
    }),
    usageEventsDuplicate: new Counter({
      name: 'tollgate_usage_events_duplicate_total',
      help: 'Usage events skipped because their request id was already stored.',
      registers: [registry],
    }),
    usageEventsRejected: new Counter({
      name: 'tollgate_usage_events_rejected_total',
      help: 'Usage events set aside in the spool\'s rejected/ directory: those the database refused (a data error no retry can fix), and good ones left among refused rows once the search for them had spent its writes.',
      registers: [registry],
    }),
    usageEventsNotBillable: new Counter({
      name: 'tollgate_usage_events_not_billable_total',
      help: 'Access-log entries recorded but not billed, by reason: denied (the Check refused the call), unsigned or bad_signature (claimed allowed without a valid usage signature: forged or altered metadata, or a replica with another signing key), no_authz_metadata, unknown_plan, no_response or status_not_billable.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    usageFlushDuration: new Histogram({
      name: 'tollgate_usage_flush_duration_seconds',
      help: 'Time to write one batch of usage events and their rollups.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    usageFlushFailures: new Counter({
      name: 'tollgate_usage_flush_failures_total',
      help: 'Usage batches not written whole, by outcome: retried (database unavailable) or rejected (refused; its refused events set aside).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    stripeSyncAttempts: new Counter({
      name: 'tollgate_stripe_sync_attempts_total',
      help: 'Stripe outbox work attempts by kind and result: done, retry (backing off) or dead (dead letters).',
      labelNames: ['kind', 'result'] as const,
      registers: [registry],
    }),
    stripeWebhookEvents: new Counter({
      name: 'tollgate_stripe_webhook_events_total',
      help: 'Stripe webhook deliveries by event type and result: applied, duplicate, ignored or rejected (bad signature).',
      labelNames: ['type', 'result'] as const,
      registers: [registry],
    }),
    stripePaymentFailures: new Counter({
      name: 'tollgate_stripe_payment_failures_total',
      help: 'Failed invoice payments reported by Stripe for invoices not (yet) paid.',
      registers: [registry],
    }),
    stripeMeterErrors: new Counter({
      name: 'tollgate_stripe_meter_errors_total',
      help: "Meter events Stripe refused after accepting them (its asynchronous validation), by Stripe's error code.",
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    stripePaymentSuspensions: new Counter({
      name: 'tollgate_stripe_payment_suspensions_total',
      help: 'Customers suspended after the payment grace period, and suspensions lifted once paid, by action.',
      labelNames: ['action'] as const,
      registers: [registry],
    }),
    billingRuns: new Counter({
      name: 'tollgate_billing_runs_total',
      help: 'Rating loop passes by result: led (this replica rated), follower (another replica leads) or failed.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    billingRunDuration: new Histogram({
      name: 'tollgate_billing_run_duration_seconds',
      help: 'Time of one rating loop pass as leader: drafts refreshed, ended periods finalized, wallets settled.',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    invoicesFinalized: new Counter({
      name: 'tollgate_invoices_finalized_total',
      help: 'Invoices finalized at the end of their billing period, by mode (postpaid, prepaid).',
      labelNames: ['mode'] as const,
      registers: [registry],
    }),
    prepaidWallets: new Gauge({
      name: 'tollgate_prepaid_wallets',
      help: 'Prepaid wallets by currency and state at the last settlement: ok, low (at or under its threshold) or exhausted.',
      labelNames: ['currency', 'state'] as const,
      registers: [registry],
    }),
    alertsFired: new Counter({
      name: 'tollgate_alerts_fired_total',
      help: 'Usage alerts fired (each threshold once per subscription billing period) by type: quota.threshold_reached, wallet.balance_low, spend.threshold_exceeded.',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    alertDeliveries: new Counter({
      name: 'tollgate_alert_deliveries_total',
      help: 'Alert webhook delivery attempts by result: delivered, retry (backing off) or dead (gave up).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    eventsPublished: new Counter({
      name: 'tollgate_events_published_total',
      help: 'Events the event stream (NATS JetStream) acknowledged, by CloudEvents type; republished ones it de-duplicated included.',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    eventDuplicates: new Counter({
      name: 'tollgate_events_duplicates_total',
      help: 'Events republished (after a lost acknowledgement or a restart before they were marked) that the stream had already and dropped.',
      registers: [registry],
    }),
    eventsDeadLettered: new Counter({
      name: 'tollgate_events_dead_lettered_total',
      help: 'Events the broker refused for good (too large for the stream or the server), by CloudEvents type: moved to event_dead_letters and not published.',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    eventPublishFailures: new Counter({
      name: 'tollgate_events_publish_failures_total',
      help: 'Publisher passes that failed (broker unreachable, even with nothing to send; no acknowledgement in time; refused; or the database failed); the events wait in the outbox.',
      registers: [registry],
    }),
  };
  const start = <L extends string>(counter: Counter<L>, ...labelSets: Partial<Record<L, string>>[]) => startSeries(counter, labelSets);
  const each = <L extends string>(label: L, values: readonly string[]) => values.map((value) => ({ [label]: value }) as Record<L, string>);
  start(metrics.quotaStoreFailures, ...each('mode', ['closed', 'open', 'local']));
  start(metrics.quotaStoreLateReplies, ...each('outcome', ['discarded', 'evaluated']));
  start(metrics.grpcUnauthenticated, ...each('method', ['Check', 'StreamAccessLogs']));
  start(metrics.alsStreamsEnded, ...each('outcome', ['closed', 'cancelled', 'malformed', 'spool_unavailable']));
  start(metrics.usageFlushFailures, ...each('outcome', ['retried', 'rejected']));
  start(metrics.stripePaymentSuspensions, ...each('action', ['suspended', 'lifted']));
  start(metrics.billingRuns, ...each('result', ['led', 'follower', 'failed']));
  start(metrics.invoicesFinalized, ...each('mode', ['postpaid', 'prepaid']));
  start(metrics.alertsFired, ...each('type', ['quota.threshold_reached', 'wallet.balance_low', 'spend.threshold_exceeded']));
  start(metrics.alertDeliveries, ...each('result', ['delivered', 'retry', 'dead']));
  return metrics;
}

/**
 * Puts each label set's series at 0 on a counter, for the label values the owner of the counter knows (the stripe,
 * metering and check modules start theirs with it).
 */
export function startSeries<L extends string>(counter: Counter<L>, labelSets: Iterable<Partial<Record<L, string>>>): void {
  for (const labels of labelSets) counter.inc(labels, 0);
}

/** tollgate_build_info: 1, labelled with what runs, to join onto other series or to see a rollout progress. */
export function registerBuildInfo(metrics: Metrics, build: { version: string; commit: string | undefined; role: string }): void {
  new Gauge({
    name: 'tollgate_build_info',
    help: 'Always 1; the labels say which Tollgate version (and git commit, when the image build recorded it) runs on which Node.js, in which role (all, edge or control).',
    labelNames: ['version', 'node_version', 'commit', 'role'] as const,
    registers: [metrics.registry],
  }).set({ version: build.version, node_version: process.version, commit: build.commit ?? '', role: build.role }, 1);
}

/** The series only the edge updates: the Check, the gRPC port, access logs, the usage spool and its flush. */
const edgeMetricNames = [
  'tollgate_check_decisions_total',
  'tollgate_check_duration_seconds',
  'tollgate_grpc_unauthenticated_calls_total',
  'tollgate_als_entries_received_total',
  'tollgate_als_streams_ended_total',
  'tollgate_usage_events_spooled_total',
  'tollgate_usage_events_stored_total',
  'tollgate_usage_events_duplicate_total',
  'tollgate_usage_events_rejected_total',
  'tollgate_usage_events_not_billable_total',
  'tollgate_usage_flush_duration_seconds',
  'tollgate_usage_flush_failures_total',
];

/** The series only the control role updates: Stripe, rating, wallets, usage alerts, event publishing. */
const controlMetricNames = [
  'tollgate_stripe_sync_attempts_total',
  'tollgate_stripe_webhook_events_total',
  'tollgate_stripe_payment_failures_total',
  'tollgate_stripe_meter_errors_total',
  'tollgate_stripe_payment_suspensions_total',
  'tollgate_billing_runs_total',
  'tollgate_billing_run_duration_seconds',
  'tollgate_invoices_finalized_total',
  'tollgate_prepaid_wallets',
  'tollgate_alerts_fired_total',
  'tollgate_alert_deliveries_total',
  'tollgate_events_published_total',
  'tollgate_events_duplicates_total',
  'tollgate_events_publish_failures_total',
  'tollgate_events_dead_lettered_total',
];

/**
 * Takes the series of the parts a process does not run off /metrics, so that a dashboard summing over replicas sees
 * only the processes that do the work (a control process would otherwise report zero Checks forever).
 */
export function keepMetricsOfRunningParts(metrics: Metrics, runs: { edge: boolean; control: boolean }): void {
  const dropped = [...(runs.edge ? [] : edgeMetricNames), ...(runs.control ? [] : controlMetricNames)];
  for (const name of dropped) metrics.registry.removeSingleMetric(name);
}

/** The event outbox backlog, read from the database at scrape time, so every replica reports it. */
export function registerEventOutboxGauges(metrics: Metrics, backlog: () => Promise<{ pending: number; lagSeconds: number }>): void {
  // One read serves both gauges of a scrape: the registry collects them concurrently.
  let current: Promise<{ pending: number; lagSeconds: number } | undefined> | undefined;
  const read = () => (current ??= backlog().catch(() => undefined).finally(() => (current = undefined)));
  const outboxGauge = (name: string, help: string, value: (backlog: { pending: number; lagSeconds: number }) => number) =>
    new Gauge({
      name,
      help,
      registers: [metrics.registry],
      async collect() {
        // With the database unavailable the last value stays, rather than failing the whole scrape.
        const latest = await read();
        if (latest) this.set(value(latest));
      },
    });
  outboxGauge('tollgate_events_outbox_pending', 'Events queued in the outbox and not yet acknowledged by the event stream.', (latest) => latest.pending);
  outboxGauge(
    'tollgate_events_outbox_lag_seconds',
    'Age of the oldest event not yet acknowledged by the event stream; 0 when none waits.',
    (latest) => latest.lagSeconds,
  );
}

/** The Stripe outbox backlog, read from the database at scrape time, so every replica reports it. */
export function registerStripeOutboxGauge(metrics: Metrics, counts: () => Promise<{ pending: number; dead: number }>): void {
  new Gauge({
    name: 'tollgate_stripe_outbox_items',
    help: 'Stripe outbox work by status: pending (queued or backing off) and dead (dead letters waiting for an operator).',
    labelNames: ['status'] as const,
    registers: [metrics.registry],
    async collect() {
      // With the database unavailable the last values stay, rather than failing the whole scrape.
      const current = await counts().catch(() => undefined);
      if (!current) return;
      this.set({ status: 'pending' }, current.pending);
      this.set({ status: 'dead' }, current.dead);
    },
  });
}

/** A gauge without labels whose value is read at scrape time. */
function scrapedGauge(metrics: Metrics, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [metrics.registry],
    collect() {
      this.set(read());
    },
  });
}

export function registerIdentityCacheGauges(metrics: Metrics, cache: { size: number; synced: boolean }): void {
  scrapedGauge(metrics, 'tollgate_identity_cache_keys', 'API keys held in the Check identity cache.', () => cache.size);
  scrapedGauge(
    metrics,
    'tollgate_identity_cache_synced',
    '1 while the identity cache polls the database successfully, 0 while it serves stale data.',
    () => (cache.synced ? 1 : 0),
  );
}

/** Whether this replica leads the led jobs (rating, Stripe sync, alerts, event publishing), and under which epoch. */
export function registerLeadershipGauges(metrics: Metrics, leadership: { leading: boolean; epoch: number }): void {
  scrapedGauge(metrics, 'tollgate_leader', '1 while this replica is the leader that runs the led jobs, else 0.', () => (leadership.leading ? 1 : 0));
  scrapedGauge(metrics, 'tollgate_leader_epoch', 'The leadership epoch this replica holds or last held (0: never led); each takeover raises it.', () => leadership.epoch);
}

/** The usage spool's backlog: events appended and not yet committed to the database. */
export function registerSpoolGauges(metrics: Metrics, spool: { pendingEvents: number; lagSeconds(): number }): void {
  scrapedGauge(metrics, 'tollgate_spool_entries', 'Usage events in the local spool waiting to be committed to the database.', () => spool.pendingEvents);
  scrapedGauge(
    metrics,
    'tollgate_spool_lag_seconds',
    'Age of the oldest usage event not yet committed to the database; 0 when the spool is empty.',
    () => spool.lagSeconds(),
  );
}

/** ALS streams open now (one or a few per Envoy; zero means no access log reaches this replica), and their backlog. */
export function registerAccessLogStreamGauges(metrics: Metrics, receiver: { openStreamCount: number; heldMessages: number }): void {
  scrapedGauge(metrics, 'tollgate_als_streams_open', 'Access-log streams from Envoy open now.', () => receiver.openStreamCount);
  scrapedGauge(
    metrics,
    'tollgate_als_messages_held',
    'Access-log messages received and held unread while their streams are paused by backpressure.',
    () => receiver.heldMessages,
  );
}

/** Active subscriptions per plan (free plans included), read from the database at scrape time. */
export function registerSubscriptionGauge(metrics: Metrics, counts: () => Promise<{ plan: string; active: number }[]>): void {
  new Gauge({
    name: 'tollgate_active_subscriptions',
    help: 'Active subscriptions by plan.',
    labelNames: ['plan'] as const,
    registers: [metrics.registry],
    async collect() {
      // With the database unavailable the last values stay, rather than failing the whole scrape.
      const current = await counts().catch(() => undefined);
      if (!current) return;
      this.reset();
      for (const { plan, active } of current) this.set({ plan }, active);
    },
  });
}

export type Metrics = ReturnType<typeof createMetrics>;
