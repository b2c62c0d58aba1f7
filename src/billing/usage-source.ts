/** Where rating reads usage from: aggregates per subscription period and endpoint, never single events. */
import type { Queryable } from '../store/index.js';
import type { SubscriptionPeriodUsage } from './period-invoice.js';

export interface UsageQuery {
  customerId: string;
  subscriptionId: string;
  periodStart: number;
}

export interface UsageSource {
  /** The same source read in the caller's open transaction (a rating batch). */
  within(tx: Queryable): UsageSource;
  /** Billable usage of each queried subscription period, by usageKey; periods without usage are left out. */
  usage(queries: readonly UsageQuery[]): Promise<Map<string, SubscriptionPeriodUsage>>;
}

export const usageKey = (subscriptionId: string, periodStart: number) => `${subscriptionId}@${periodStart}`;
