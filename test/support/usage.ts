import { signedFactsTail, UsageIdentity } from '../../src/check/usage-identity.js';
import type { Queryable } from '../../src/store/db.js';

/** The usage signing key test apps are started with (support/services.ts), so tests can sign entries of their own. */
export const testUsageSigningKey = 'test-usage-signing-key-0123456789abcdef';
export const testUsageIdentity = new UsageIdentity([testUsageSigningKey]);

export interface AllowFacts {
  customer_id: string;
  subscription_id: string;
  plan_id: string;
  endpoint_id: string;
  weight: number;
  period_start: number;
  [name: string]: string | number;
}

/**
 * An allowed call's ext_authz metadata as the Check sends it: its facts, a fresh usage id and the signature over
 * them (with `identity`'s first key; the test key unless given).
 */
export function signedAllow(facts: AllowFacts, identity: UsageIdentity = testUsageIdentity): Record<string, string | number> & { usage_id: string; usage_sig: string } {
  const metadata: Record<string, string | number> = { decision: 'allow', ...facts };
  identity.stamp(
    metadata,
    signedFactsTail({
      customerId: facts.customer_id,
      subscriptionId: facts.subscription_id,
      planId: facts.plan_id,
      periodStart: facts.period_start,
      endpointId: facts.endpoint_id,
      weight: facts.weight,
    }),
  );
  return metadata as Record<string, string | number> & { usage_id: string; usage_sig: string };
}

/**
 * Marks subscriptions for the next rating pass, as the usage insert does for those it adds billable usage to: for
 * tests that write usage_rollups themselves.
 */
export async function markForRating(db: Queryable, subscriptionIds: readonly string[]): Promise<void> {
  await db.query(
    `INSERT INTO rating_marks AS m (subscription_id) SELECT DISTINCT unnest($1::text[]) ON CONFLICT (subscription_id) DO UPDATE SET version = m.version + 1`,
    [subscriptionIds],
  );
}
