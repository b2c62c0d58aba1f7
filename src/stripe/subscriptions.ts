import type Stripe from 'stripe';
import type { AccountsService } from '../identity/index.js';
import type { Catalog, Plan } from '../catalog/index.js';

/** Metadata key, on a Stripe subscription or price, naming our plan outright. */
const planMetadataKey = 'tollgate_plan';

/**
 * What a Stripe subscription status means for the customer's account at the Check:
 * - `paid_plan`: the subscription's plan applies (and a non-payment suspension is lifted once nothing is overdue);
 * - `grace`: the plan still applies, and the latest invoice is under dunning: unpaid when the payment grace period
 *   ends, the customer is suspended (402);
 * - `suspended`: the plan stays, the customer is suspended now (402) until the invoices are paid;
 * - `pending`: nothing changes yet (the first payment is still being attempted);
 * - `default_plan`: the plan no longer applies: back to the catalog's default plan (or no subscription).
 */
export type SubscriptionAccountState = 'paid_plan' | 'grace' | 'suspended' | 'pending' | 'default_plan';

/** Every status of the pinned API version; the type of the package's own Status also admits any string. */
type KnownStatus = 'active' | 'trialing' | 'past_due' | 'unpaid' | 'incomplete' | 'incomplete_expired' | 'canceled' | 'paused';

const accountStates: Record<KnownStatus, SubscriptionAccountState> = {
  active: 'paid_plan',
  trialing: 'paid_plan',
  past_due: 'grace',
  unpaid: 'suspended',
  incomplete: 'pending',
  incomplete_expired: 'default_plan',
  canceled: 'default_plan',
  paused: 'default_plan',
};

/** The account state for a Stripe status; undefined for a status this version does not know (changes nothing). */
export function accountStateOf(status: Stripe.Subscription.Status): SubscriptionAccountState | undefined {
  return Object.hasOwn(accountStates, status) ? accountStates[status as KnownStatus] : undefined;
}

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
  state: SubscriptionAccountState,
): Promise<SubscriptionOutcome> {
  const current = (await accounts.listSubscriptions(customerId)).find((s) => s.status === 'active' && s.productId === plan.product);
  if (state === 'default_plan') {
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
  if (state === 'pending') return 'unchanged';
  if (!current) {
    await accounts.subscribe(customerId, plan.id);
    return 'subscribed';
  }
  if (current.planId === plan.id) return 'unchanged';
  await accounts.changePlan(current.id, plan.id);
  return 'changed';
}
