import type { Identity, SubscriptionState } from './types.js';

/**
 * Where the Check finds who a key belongs to: the full mirror of PostgreSQL (IdentityCache, without Redis) or the
 * bounded cache in front of Redis (OnDemandIdentities).
 */
export interface Identities {
  /**
   * The key's identity, undefined for an unknown key: synchronously when held in memory, else a promise (rejected
   * with IdentityUnavailable when the store cannot say).
   */
  lookup(keyHash: string): Identity | undefined | Promise<Identity | undefined>;
  /** A subscription held in memory, e.g. for metering to find its billing period anchor. */
  subscription(id: string): SubscriptionState | undefined;
  /** Catches up now with every committed change. */
  refresh(): Promise<void>;
  /** Keys held in memory. */
  readonly size: number;
  /** Up to date with the store (the gauge tollgate_identity_cache_synced). */
  readonly synced: boolean;
  /** Able to answer Checks (/readyz). */
  readonly ready: boolean;
}
