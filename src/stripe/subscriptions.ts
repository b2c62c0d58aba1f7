import type Stripe from 'stripe';
import type { AccountsService } from '../accounts/service.js';
import type { Catalog, Plan } from '../catalog/catalog.js';

/** Metadata key, on a Stripe subscription or price, naming our plan outright. */
const planMetadataKey = 'tollgate_plan';

/** Stripe statuses in which the subscription's plan applies; `past_due` keeps it while dunning runs its course. */
const grantingStatuses: ReadonlySet<Stripe.Subscription.Status> = new Set(['active', 'trialing', 'past_due']);
const endedStatuses: ReadonlySet<Stripe.Subscription.Status> = new Set(['canceled', 'incomplete_expired']);

/**
 * Our plan for a Stripe subscription: `tollgate_plan` metadata on the subscription, else on one of its prices, else
 * the plan whose `stripe.prices` lists one of its prices by id or lookup key.
 */
export function planOfStripeSubscription(catalog: Catalog, subscription: Stripe.Subscription): Plan | undefined {
  const named = subscription.metadata[planMetadataKey];
  if (named) return catalog.plan(named);
  for (const { price } of subscription.items.data) {
    const byMetadata = price.metadata[planMetadataKey];
    if (byMetadata) return catalog.plan(byMetadata);
    const listed = [...catalog.plans.values()].find(
      (plan) => plan.stripe?.prices.includes(price.id) || (price.lookup_key !== null && plan.stripe?.prices.includes(price.lookup_key)),
    );
    if (listed) return listed;
  }
  return undefined;
}

export type SubscriptionOutcome = 'subscribed' | 'changed' | 'downgraded' | 'canceled' | 'unchanged';

/**
 * Makes the customer's subscription to the plan's product follow the Stripe subscription's current state: on the
 * plan while it is live; when it ended, back to the catalog's default plan (or canceled if the product has none).
 * Applying the same state twice changes nothing, so the outcome does not depend on event order.
 */
export async function followStripeSubscription(
  accounts: AccountsService,
  catalog: Catalog,
  customerId: string,
  plan: Plan,
  status: Stripe.Subscription.Status,
): Promise<SubscriptionOutcome> {
  const current = (await accounts.listSubscriptions(customerId)).find((s) => s.status === 'active' && s.productId === plan.product);
  if (endedStatuses.has(status)) {
    // Only the plan this Stripe subscription granted is taken away; a plan from elsewhere stays.
    if (!current || current.planId !== plan.id) return 'unchanged';
    const fallback = catalog.defaultPlan ? catalog.plan(catalog.defaultPlan) : undefined;
    if (fallback && fallback.product === plan.product && fallback.id !== plan.id) {
      await accounts.changePlan(current.id, fallback.id);
      return 'downgraded';
    }
    await accounts.cancelSubscription(current.id);
    return 'canceled';
  }
  if (!grantingStatuses.has(status)) return 'unchanged';
  if (!current) {
    await accounts.subscribe(customerId, plan.id);
    return 'subscribed';
  }
  if (current.planId === plan.id) return 'unchanged';
  await accounts.changePlan(current.id, plan.id);
  return 'changed';
}
