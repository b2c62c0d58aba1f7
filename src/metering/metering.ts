import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Identities } from '../identity/index.js';
import type { UsageIdentity } from '../check/index.js';
import type { Catalog } from '../catalog/index.js';
import type { Config } from '../config/index.js';
import { BoundedCache, type Clock, type Logger } from '../kernel/index.js';
import { type Metrics, registerAccessLogStreamGauges, registerSpoolGauges, startSeries } from '../metrics/index.js';
import { type BillingPeriod, periodContaining, periodContains } from '../rating/index.js';
import type { Db } from '../store/index.js';
import type { Tracing } from '../tracing/index.js';
import type { EventOutbox } from '../events/index.js';
import { AccessLogReceiver } from './als-receiver.js';
import type { NotBillableReason } from './event.js';
import { currentEventRow } from './event-rows.js';
import { encodeEntryRows } from './entry-rows.js';
import { UsageMeter } from './meter.js';
import { DbUsageSink, PostgresUsageSink } from './sink.js';
import { Spool } from './spool.js';

export interface MeteringDependencies {
  config: Pick<Config, 'dataDir' | 'databaseUrl' | 'metering'>;
  db: Db;
  catalog: () => Catalog;
  identities: Pick<Identities, 'subscription'>;
  clock: Clock;
  /** Verifies the usage signatures the Check put in the access-log entries' metadata. */
  usage: Pick<UsageIdentity, 'verify' | 'verifiesBytes'>;
  metrics: Metrics;
  logger: Logger;
  /** Spans for received access-log messages and database writes. */
  tracing?: Tracing;
  /** Where stored usage events are queued for the event stream; off unless given. */
  events?: EventOutbox;
}

export interface Metering {
  receiver: AccessLogReceiver;
  /** Its flushDue() is the usage flush job's pass. */
  meter: UsageMeter;
  /** Its syncWritten() is the spool fsync job's pass. */
  spool: Spool;
}

/** Sealed segments kept in memory beyond this are read back from the spool when written. */
const maxBufferedBytes = 64 * 1024 * 1024;

/**
 * Wires ALS → usage events → spool → database (COPY on PostgreSQL, a JSON parameter on PGlite); src/app.ts schedules its
 * jobs. The usage queries (UsageService) are the control role's, built apart.
 */
export function createMetering(deps: MeteringDependencies): Metering {
  const { config, logger, metrics } = deps;
  const spool = new Spool({
    dir: join(config.dataDir, 'spool'),
    maxBufferedBytes,
    currentRow: currentEventRow,
    logger,
  });
  registerSpoolGauges(metrics, spool);
  const sinkOptions = { queueEvents: deps.events?.enabled ?? false };
  const sink = config.databaseUrl ? new PostgresUsageSink(config.databaseUrl, logger, sinkOptions) : new DbUsageSink(deps.db, sinkOptions);
  const meter = new UsageMeter(spool, sink, metrics, logger, {
    batchSize: config.metering.batchSize,
    maxSpoolBytes: config.metering.spoolMaxBytes,
  }, deps.tracing);
  startSeries(metrics.usageEventsNotBillable, notBillableReasons.map((reason) => ({ reason })));
  const periodStartOf = billingPeriodStarts(deps.identities);
  const receiver = new AccessLogReceiver({
    meter,
    toRows: (entries) => {
      const notBillable = new Map<string, number>();
      const rows = encodeEntryRows(entries, { catalog: deps.catalog(), periodStartOf, usage: deps.usage, now: deps.clock.now(), newUsageId: randomUUID }, (reason) =>
        notBillable.set(reason, (notBillable.get(reason) ?? 0) + 1),
      );
      for (const [reason, count] of notBillable) metrics.usageEventsNotBillable.inc({ reason }, count);
      return rows;
    },
    metrics,
    logger,
    tracing: deps.tracing,
  });
  registerAccessLogStreamGauges(metrics, receiver);
  return { receiver, meter, spool };
}

/** The reason label of tollgate_usage_events_not_billable_total: an unbilled event's reason, all denials as one. */
const notBillableReasons = [
  'denied',
  'unsigned',
  'bad_signature',
  'no_authz_metadata',
  'unknown_plan',
  'no_response',
  'status_not_billable',
] as const satisfies readonly ('denied' | NotBillableReason)[];

/**
 * The start of a subscription's billing period containing an instant, as the Check computes it (same anchor, same
 * period math), remembered per subscription since consecutive events almost always share it. A subscription the
 * identity cache does not know falls back to calendar months (UTC).
 */
function billingPeriodStarts(identities: Pick<Identities, 'subscription'>): (subscriptionId: string, at: number) => number {
  // Bounded: an unsigned entry may name any subscription id, so the ids are the sender's to choose.
  const known = new BoundedCache<{ anchor: number; period: BillingPeriod }>(100_000);
  return (subscriptionId, at) => {
    const anchor = identities.subscription(subscriptionId)?.periodAnchor ?? 0;
    const cached = known.get(subscriptionId);
    if (cached && cached.anchor === anchor && periodContains(cached.period, at)) return cached.period.start;
    const period = periodContaining(anchor, at);
    known.set(subscriptionId, { anchor, period });
    return period.start;
  };
}
