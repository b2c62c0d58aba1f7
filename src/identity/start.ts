import type { Config } from '../config/index.js';
import { type Clock, connectRedis, type Leadership, type Logger, type Scheduler } from '../kernel/index.js';
import type { Db } from '../store/index.js';
import type { Identities } from './identities.js';
import { IdentityCache, identityFullReloadMs, identitySnapshotIntervalMs } from './identity-cache.js';
import { IdentityPublisher } from './identity-publisher.js';
import { identityKeys } from './identity-records.js';
import { OnDemandIdentities } from './on-demand-identities.js';
import { SqlIdentityRows } from './sql-identity-rows.js';

/** How often the rebuild job looks for the complete marker of the identity records in Redis. */
export const identityRebuildCheckMs = 5_000;

export interface StartedIdentities {
  /** What the Check, metering and self-service read. */
  identities: Identities;
  /** AccountsService's afterWrite: after a committed change to a customer, the Checks of every replica see it. */
  changed(customerId: string): Promise<void>;
  close(): void;
}

/**
 * The Check's identities and their jobs. With Redis: identity on demand (a bounded cache in front of records in Redis,
 * written through by `changed` and rebuilt from PostgreSQL when incomplete; start-up loads nothing). Without Redis (one
 * process): the full mirror of PostgreSQL, polled, with a snapshot file when the database is PostgreSQL.
 */
export async function startIdentities(deps: {
  config: Pick<Config, 'redis' | 'identity' | 'syncIntervalMs'>;
  db: Db;
  clock: Clock;
  logger: Logger;
  scheduler: Scheduler;
  snapshotFile: string | undefined;
  /**
   * Whether this process writes accounts (the control role, or all): it then retries failed publications and rebuilds
   * the records in Redis. An edge only reads them.
   */
  publishes: boolean;
  /** The rebuild runs on the leader only. */
  leadership: Leadership;
}): Promise<StartedIdentities> {
  const { config, db, logger, scheduler } = deps;
  if (!config.redis.url) {
    const cache = new IdentityCache(db, logger, { snapshotFile: deps.snapshotFile });
    await cache.start();
    // The cache logs when its sync fails and when it recovers, not on every failed poll.
    scheduler.every('identity sync', config.syncIntervalMs, () => cache.refresh(), { onFailure: () => {} });
    scheduler.every('identity full reload', identityFullReloadMs, async () => cache.requestFullReload());
    scheduler.every('identity snapshot', identitySnapshotIntervalMs, () => cache.writeSnapshot(), {
      immediately: true,
      // A snapshot that cannot be written is a disk problem, not a failed sync.
      onFailure: (error) => logger.warn({ err: (error as Error).message }, 'identity snapshot not written'),
    });
    return { identities: cache, changed: async () => void cache.refresh().catch(() => {}), close: () => {} };
  }
  const redis = connectRedis(config.redis.url);
  const keys = identityKeys(config.redis.prefix);
  const identities = new OnDemandIdentities(redis, keys, deps.clock, logger, {
    ...config.identity,
    timeoutMs: config.redis.timeoutMs,
    readyWhileUnreachable: config.redis.failureMode !== 'closed',
  });
  await identities.start();
  scheduler.every('identity version poll', config.identity.pollMs, () => identities.refresh());
  // An edge only reads the records: it has nothing to publish.
  let changed = async (_customerId: string) => {};
  let stopRebuildOnGain = () => {};
  if (deps.publishes) {
    const publisher = new IdentityPublisher(redis, keys, new SqlIdentityRows(db), logger, identities);
    changed = (customerId) => publisher.customerChanged(customerId);
    scheduler.every('identity publish retry', config.identity.pollMs, () => publisher.retryPass());
    const rebuild = scheduler.every('identity rebuild', identityRebuildCheckMs, (signal) => publisher.rebuildPass(signal), { lead: deps.leadership });
    // At once but in the background, and again as this replica takes leadership (a follower's runOnce does nothing):
    // start-up never waits for it, whatever the number of keys, and never waits for the job's first interval either.
    const rebuildNow = () => void rebuild.runOnce().catch((error: unknown) => logger.warn({ err: (error as Error).message }, 'identity rebuild failed; retrying'));
    rebuildNow();
    stopRebuildOnGain = deps.leadership.onGained(rebuildNow);
  }
  return {
    identities,
    changed,
    close: () => {
      stopRebuildOnGain();
      identities.close();
      redis.disconnect();
    },
  };
}
