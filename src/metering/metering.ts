import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { AccountsService, IdentityCache } from '../identity/index.js';
import type { UsageIdentity } from '../check/index.js';
import type { Catalog } from '../catalog/index.js';
import type { Config } from '../config/index.js';
import type { Clock, Logger } from '../kernel/index.js';
import { type Metrics, registerAccessLogStreamGauges, registerSpoolGauges } from '../metrics/index.js';
import type { CounterStore } from '../counters/index.js';
import { type BillingPeriod, periodContaining, periodContains } from '../rating/index.js';
import { type Db, withDomainErrors } from '../store/index.js';
import type { Tracing } from '../tracing/index.js';
import { AccessLogReceiver } from './als-receiver.js';
import { currentEventRow } from './event-rows.js';
import { encodeEntryRows } from './entry-rows.js';
import { UsageMeter } from './meter.js';
import { DbUsageSink, PostgresUsageSink } from './sink.js';
import { Spool } from './spool.js';
import { UsageService } from './usage.js';

export interface MeteringDependencies {
  config: Pick<Config, 'dataDir' | 'databaseUrl' | 'metering'>;
  db: Db;
  catalog: () => Catalog;
  identities: Pick<IdentityCache, 'subscription'>;
  accounts: Pick<AccountsService, 'listSubscriptions'>;
  counters: Pick<CounterStore, 'periodUsage'>;
  clock: Clock;
  /** Verifies the usage signatures the Check put in the access-log entries' metadata. */
  usage: Pick<UsageIdentity, 'verify' | 'verifiesBytes'>;
  metrics: Metrics;
  logger: Logger;
  /** Spans for received access-log messages and database writes. */
  tracing?: Tracing;
}

export interface Metering {
  receiver: AccessLogReceiver;
  meter: UsageMeter;
  usage: UsageService;
}

/** Sealed segments kept in memory beyond this are read back from the spool when written. */
const maxBufferedBytes = 64 * 1024 * 1024;

/** Wires ALS → usage events → spool → database (COPY on PostgreSQL, a JSON parameter on PGlite) and starts it. */
export function startMetering(deps: MeteringDependencies): Metering {
  const { config, logger, metrics } = deps;
  const spool = new Spool({
    dir: join(config.dataDir, 'spool'),
    fsyncIntervalMs: config.metering.spoolFsyncMs,
    maxBufferedBytes,
    currentRow: currentEventRow,
    logger,
  });
  registerSpoolGauges(metrics, spool);
  const sink = config.databaseUrl ? new PostgresUsageSink(config.databaseUrl, logger) : new DbUsageSink(deps.db);
  const meter = new UsageMeter(spool, sink, metrics, logger, {
    batchSize: config.metering.batchSize,
    flushIntervalMs: config.metering.flushIntervalMs,
    maxSpoolBytes: config.metering.spoolMaxBytes,
  }, deps.tracing);
  const periodStartOf = billingPeriodStarts(deps.identities);
  const receiver = new AccessLogReceiver({
    meter,
    toRows: (entries) => encodeEntryRows(entries, { catalog: deps.catalog(), periodStartOf, usage: deps.usage, now: deps.clock.now(), newUsageId: randomUUID }),
    metrics,
    logger,
    tracing: deps.tracing,
  });
  registerAccessLogStreamGauges(metrics, receiver);
  meter.start();
  const usage = new UsageService({
    // Usage queries answer the admin API in domain errors; the sink reads the database's own codes (duplicates).
    db: withDomainErrors(deps.db),
    accounts: deps.accounts,
    catalog: deps.catalog,
    clock: deps.clock,
    counters: deps.counters,
    pendingEvents: () => spool.pendingEvents,
  });
  return { receiver, meter, usage };
}

/**
 * The start of a subscription's billing period containing an instant, as the Check computes it (same anchor, same
 * period math), remembered per subscription since consecutive events almost always share it. A subscription the
 * identity cache does not know falls back to calendar months (UTC).
 */
function billingPeriodStarts(identities: Pick<IdentityCache, 'subscription'>): (subscriptionId: string, at: number) => number {
  const known = new Map<string, { anchor: number; period: BillingPeriod }>();
  return (subscriptionId, at) => {
    const anchor = identities.subscription(subscriptionId)?.periodAnchor ?? 0;
    const cached = known.get(subscriptionId);
    if (cached && cached.anchor === anchor && periodContains(cached.period, at)) return cached.period.start;
    const period = periodContaining(anchor, at);
    known.set(subscriptionId, { anchor, period });
    return period.start;
  };
}
