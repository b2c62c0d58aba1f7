import type { Catalog, EndpointDocument, Plan, RouteMatch } from '../catalog/index.js';
import type { CustomerState, KeyState, SubscriptionState } from '../identity/index.js';
import type { Limit } from '../counters/index.js';
import { prepaidWalletLimit } from '../billing/index.js';
import { BoundedCache } from '../kernel/index.js';
import { preEncodeAllowParts } from './check-response-encoder.js';
import type { DecisionMetadata, PreEncodedAllowParts } from './decision.js';
import { signedFactsTail } from './usage-identity.js';

/**
 * Compiled plans: what a Check on one endpoint under one plan needs, built when the catalog loads (and again on each
 * reload, as a new CheckPlans) rather than worked out on every Check. Two levels:
 * - a CheckPlan per (endpoint × entitled plan): the rules to count, in order, and what the headers say of them;
 * - a KeyCheckPlan: a CheckPlan bound to one key, its subscription and billing period, holding the counter names, the
 *   allowed call's metadata and identity headers, and (from its second Check) their protobuf bytes. It is built on a
 *   key's first Check of the endpoint in a period and shared by its later ones, until the subscription, customer or
 *   period changes.
 */

export interface Period {
  start: number;
  end: number;
}

type RateLimitDocument = Plan['rate_limits'][number];

/** What one counted limit enforces: a rate limit of the plan, its quota, or its prepaid wallet. */
export type LimitRule = { kind: 'rate'; rateLimit: RateLimitDocument } | { kind: 'quota' } | { kind: 'wallet' };

/** The upstream identity headers' names under the configured prefix. */
export interface IdentityHeaderNames {
  prefix: string;
  customer: string;
  subscription: string;
  plan: string;
  key: string;
  all: ReadonlySet<string>;
}

export interface CheckPlan {
  /** Unique in the process (a reloaded catalog's plans get new ids): part of each bound limit set's id. */
  readonly id: number;
  readonly plan: Plan;
  readonly route: RouteMatch;
  /** One per counted limit, in counting order: the plan's rate limits as listed, then its quota, then a prepaid wallet. */
  readonly rules: readonly LimitRule[];
  /** The RateLimit-Policy header: every rate limit of the plan. */
  readonly rateLimitPolicy: string;
  readonly headerNames: IdentityHeaderNames;
}

/** A CheckPlan bound to one key, subscription and billing period: what that key's allowed calls share. */
export interface KeyCheckPlan {
  readonly checkPlan: CheckPlan;
  readonly subscriptionId: string;
  readonly customerId: string;
  readonly period: Period;
  /** Counted in one store call; `limits[i]` enforces `checkPlan.rules[i]`, and the store answers `outcomes[i]` for it. */
  readonly limits: readonly Limit[];
  /**
   * Names exactly these limits (counter names, sizes, costs) for as long as this process runs: the Redis store sends a
   * repeated set once per batch (ConsumeRequest.limitSetId).
   */
  readonly limitSetId: string;
  /** An allowed call's shared metadata: customer, subscription, plan, product, endpoint, weight, key, period. */
  readonly metadata: Readonly<DecisionMetadata>;
  /** Set on the upstream request, overwriting any client-sent value. */
  readonly upstreamHeaders: Readonly<Record<string, string>>;
  /**
   * `upstreamHeaders` and `metadata` as protobuf bytes, which the response encoder copies: made on the binding's second
   * Check, so that a key seen once (traffic spread over millions of keys) pays for no bytes it would not reuse.
   */
  encoded?: PreEncodedAllowParts;
  /** The facts an allowed call's usage signature covers besides its id (usage-identity.ts). */
  readonly usageFacts: string;
}

let lastPlanId = 0;

/** Bindings held (each key calling each endpoint has one): about 20 MB at most. */
const heldBindings = 20_000;

/** Every (endpoint × plan) of one catalog compiled, and each key's binding of the ones it has called. */
export class CheckPlans {
  readonly headerNames: IdentityHeaderNames;
  private readonly byEndpoint = new Map<EndpointDocument, Map<string, CheckPlan>>();
  /**
   * Bindings of the keys in use, by compiled plan and key id: the least recently used go first, so traffic over
   * millions of keys cannot grow memory (a binding is about 1 KB with its encoded parts). A binding found is used only
   * while its subscription, customer and period still hold.
   */
  private readonly bound = new BoundedCache<KeyCheckPlan>(heldBindings);

  constructor(
    readonly catalog: Catalog,
    headerPrefix: string,
  ) {
    this.headerNames = identityHeaderNames(headerPrefix);
    for (const plan of catalog.plans.values()) {
      const product = catalog.products.get(plan.product);
      if (!product) continue;
      const rateLimitPolicy = plan.rate_limits.map((limit) => `${limit.requests};w=${Math.round(limit.window / 1000)}`).join(', ');
      for (const endpoint of product.endpoints) {
        if (!plan.allowedEndpoints.has(endpoint.id)) continue;
        const rules: LimitRule[] = plan.rate_limits.map((rateLimit) => ({ kind: 'rate', rateLimit }));
        if (plan.quota) rules.push({ kind: 'quota' });
        if (plan.pricing?.mode === 'prepaid') rules.push({ kind: 'wallet' });
        let byPlan = this.byEndpoint.get(endpoint);
        if (!byPlan) this.byEndpoint.set(endpoint, (byPlan = new Map()));
        byPlan.set(plan.id, { id: ++lastPlanId, plan, route: { product, endpoint }, rules, rateLimitPolicy, headerNames: this.headerNames });
      }
    }
  }

  /** The compiled plan for a call `plan` makes to the matched route; undefined when the plan does not include it. */
  planFor(route: RouteMatch, plan: Plan): CheckPlan | undefined {
    return this.byEndpoint.get(route.endpoint)?.get(plan.id);
  }

  /** `checkPlan` bound to a key in a billing period: the key's earlier binding while it still holds, else a new one. */
  bind(checkPlan: CheckPlan, key: KeyState, subscription: SubscriptionState, customer: CustomerState, period: Period): KeyCheckPlan {
    const id = `${checkPlan.id}:${key.id}`;
    const known = this.bound.get(id);
    if (known && known.subscriptionId === subscription.id && known.customerId === customer.id && known.period.start === period.start && known.period.end === period.end) {
      known.encoded ??= preEncodeAllowParts(known.upstreamHeaders, known.metadata);
      return known;
    }
    const bound = bindPlan(checkPlan, key, subscription, customer, period);
    this.bound.set(id, bound);
    return bound;
  }
}

export const quotaCounterName = (subscriptionId: string) => `q:${subscriptionId}`;

function bindPlan(checkPlan: CheckPlan, key: KeyState, subscription: SubscriptionState, customer: CustomerState, period: Period): KeyCheckPlan {
  const { plan, route, rules, headerNames } = checkPlan;
  const { product, endpoint } = route;
  const limits = rules.map((rule): Limit => {
    if (rule.kind === 'rate') {
      const { rateLimit } = rule;
      return { kind: 'sliding', name: `rl:${rateLimit.scope === 'key' ? key.id : subscription.id}:${rateLimit.window}`, limit: rateLimit.requests, windowMs: rateLimit.window, cost: 1 };
    }
    if (rule.kind === 'quota') {
      const quota = plan.quota!;
      return {
        kind: 'period',
        name: quotaCounterName(subscription.id),
        limit: quota.units,
        periodStart: period.start,
        periodEnd: period.end,
        cost: endpoint.weight,
        enforce: quota.when_exhausted !== 'allow_overage',
      };
    }
    return prepaidWalletLimit(plan.pricing, endpoint, subscription.id, period)!;
  });
  // period_start: the billing period this call is counted in, which metering follows rather than the log's clock.
  const metadata: Readonly<DecisionMetadata> = Object.freeze({
    product_id: product.id,
    endpoint_id: endpoint.id,
    weight: endpoint.weight,
    key_id: key.id,
    customer_id: key.customerId,
    subscription_id: key.subscriptionId,
    plan_id: plan.id,
    period_start: period.start,
    decision: 'allow',
  });
  const upstreamHeaders: Readonly<Record<string, string>> = Object.freeze({
    [headerNames.customer]: customer.id,
    [headerNames.subscription]: subscription.id,
    [headerNames.plan]: plan.id,
    [headerNames.key]: key.id,
  });
  const usageFacts = signedFactsTail({
    customerId: key.customerId,
    subscriptionId: key.subscriptionId,
    planId: plan.id,
    periodStart: period.start,
    endpointId: endpoint.id,
    weight: endpoint.weight,
  });
  return {
    checkPlan,
    subscriptionId: subscription.id,
    customerId: customer.id,
    period,
    limits,
    limitSetId: `${checkPlan.id}:${key.id}:${subscription.id}:${period.start}`,
    metadata,
    upstreamHeaders,
    usageFacts,
  };
}

function identityHeaderNames(prefix: string): IdentityHeaderNames {
  const customer = `${prefix}customer-id`;
  const subscription = `${prefix}subscription-id`;
  const plan = `${prefix}plan-id`;
  const key = `${prefix}key-id`;
  return { prefix, customer, subscription, plan, key, all: new Set([customer, subscription, plan, key]) };
}
