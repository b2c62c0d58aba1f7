/**
 * Business metrics read from the records: MRR, paying customers, churn, free-to-paid conversion, activation, time
 * to first call and net revenue retention over a window of time. The subscription history (subscriptions and
 * subscription_changes) is replayed to know which plan each subscription was on at any instant, so a past period
 * reads the same whenever it is asked. Definitions: docs/OPERATIONS.md, "Business metrics".
 */
import { monthlyRecurringFee, planAt, type SubscriptionHistory } from '../billing/index.js';
import type { Catalog, Plan } from '../catalog/index.js';
import { type CurrencyCode, parseMajorAmount } from '../kernel/index.js';
import type { BusinessRecords, NewCustomerRecord } from './records.js';

/** [from, to) in epoch ms. */
export interface MetricsWindow {
  from: number;
  to: number;
}

export interface PlanMrr {
  planId: string;
  subscriptions: number;
  /** Minor units. */
  mrr: bigint;
}

export interface CurrencyMrr {
  currency: CurrencyCode;
  mrr: bigint;
  byPlan: PlanMrr[];
}

export interface BusinessMetrics {
  from: number;
  /** Where states "at the end" are read: the window's end, or now while it runs. */
  end: number;
  complete: boolean;
  /** At the end. */
  mrr: CurrencyMrr[];
  /** At the end: customers with an active subscription on a paid plan. */
  payingCustomers: number;
  churn: { payingAtStart: number; churned: number; rate: number | null };
  freeToPaid: { startedFree: number; converted: number; convertedInPeriod: number; rate: number | null };
  activation: {
    newCustomers: number;
    activated: number;
    rate: number | null;
    timeToFirstCall: { medianSeconds: number | null; p90Seconds: number | null };
  };
  netRevenueRetention: { currency: CurrencyCode; startingMrr: bigint; retainedMrr: bigint; rate: number | null }[];
}

export async function businessMetrics(records: BusinessRecords, catalog: Catalog, window: MetricsWindow, now: number): Promise<BusinessMetrics> {
  const end = Math.min(window.to, now);
  const [subscriptions, newCustomers] = await Promise.all([
    records.subscriptionsStartedBefore(end + 1), // started by the end, inclusive
    records.customersCreated(window.from, Math.min(window.to, now + 1)),
  ]);
  const paid = (planId: string) => isPaidPlan(catalog.plan(planId));
  const atStart = snapshot(subscriptions, catalog, window.from);
  const atEnd = snapshot(subscriptions, catalog, end);
  const payingAtStart = atStart.payingCustomers();
  const payingAtEnd = atEnd.payingCustomers();
  return {
    from: window.from,
    end,
    complete: window.to <= now,
    mrr: atEnd.mrrByCurrency(),
    payingCustomers: payingAtEnd.size,
    churn: ratioOf({ payingAtStart: payingAtStart.size, churned: [...payingAtStart].filter((id) => !payingAtEnd.has(id)).length }, 'churned', 'payingAtStart'),
    freeToPaid: freeToPaid(subscriptions, paid, window.from, end),
    activation: activation(newCustomers, end),
    netRevenueRetention: netRevenueRetention(atStart.mrrByCustomer(), atEnd.mrrByCustomer()),
  };
}

/**
 * A plan that charges: a fee or usage price in Tollgate's pricing, or billing by Stripe (meter mode, Stripe
 * prices). Plans no longer in the catalog count as free.
 */
function isPaidPlan(plan: Plan | undefined): boolean {
  if (plan?.stripe?.meter_event_name || plan?.stripe?.prices.length) return true;
  const pricing = plan?.pricing;
  if (!pricing) return false;
  const fee = (amount: string | undefined) => amount !== undefined && parseMajorAmount(amount, pricing.currency) > 0n;
  return fee(pricing.recurring_fee) || fee(pricing.setup_fee) || fee(pricing.minimum_commitment) || !!pricing.usage || !!pricing.endpoint_prices;
}

/** The plan a subscription is on at `at`; undefined before it started and from its cancellation on. */
function planInForce(subscription: SubscriptionHistory, at: number): string | undefined {
  if (subscription.startedAt > at) return undefined;
  const cancellation = subscription.changes.find((change) => change.kind === 'cancellation');
  if (cancellation && cancellation.effectiveAt <= at) return undefined;
  return planAt(subscription, at);
}

type CustomerSubscription = SubscriptionHistory & { customerId: string };

/** Who was on which plan at one instant, and what that was worth per month. */
function snapshot(subscriptions: readonly CustomerSubscription[], catalog: Catalog, at: number) {
  const inForce = subscriptions.flatMap((subscription) => {
    const planId = planInForce(subscription, at);
    return planId === undefined ? [] : [{ customerId: subscription.customerId, plan: catalog.plan(planId), planId }];
  });
  return {
    payingCustomers: () => new Set(inForce.filter(({ plan }) => isPaidPlan(plan)).map(({ customerId }) => customerId)),
    mrrByCurrency(): CurrencyMrr[] {
      const byCurrency = new Map<CurrencyCode, Map<string, PlanMrr>>();
      for (const { plan, planId } of inForce) {
        const recurring = monthlyRecurringFee(plan);
        if (!recurring) continue;
        const plans = byCurrency.get(recurring.currency) ?? byCurrency.set(recurring.currency, new Map()).get(recurring.currency)!;
        const entry = plans.get(planId) ?? { planId, subscriptions: 0, mrr: 0n };
        plans.set(planId, { planId, subscriptions: entry.subscriptions + 1, mrr: entry.mrr + recurring.fee });
      }
      return [...byCurrency]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([currency, plans]) => {
          const byPlan = [...plans.values()].sort((a, b) => a.planId.localeCompare(b.planId));
          return { currency, mrr: byPlan.reduce((sum, plan) => sum + plan.mrr, 0n), byPlan };
        });
    },
    /** currency → customer → MRR. */
    mrrByCustomer(): Map<CurrencyCode, Map<string, bigint>> {
      const byCurrency = new Map<CurrencyCode, Map<string, bigint>>();
      for (const { customerId, plan } of inForce) {
        const recurring = monthlyRecurringFee(plan);
        if (!recurring || recurring.fee === 0n) continue;
        const customers = byCurrency.get(recurring.currency) ?? byCurrency.set(recurring.currency, new Map()).get(recurring.currency)!;
        customers.set(customerId, (customers.get(customerId) ?? 0n) + recurring.fee);
      }
      return byCurrency;
    },
  };
}

/**
 * Customers whose first subscription started on a free plan (with no paid plan at that moment), and those of them
 * on a paid plan at some moment by the end; conversions in the window are those whose first paid moment is in it.
 */
function freeToPaid(subscriptions: readonly CustomerSubscription[], paid: (planId: string) => boolean, from: number, end: number): BusinessMetrics['freeToPaid'] {
  const byCustomer = new Map<string, CustomerSubscription[]>();
  for (const subscription of subscriptions) {
    const owned = byCustomer.get(subscription.customerId) ?? byCustomer.set(subscription.customerId, []).get(subscription.customerId)!;
    owned.push(subscription);
  }
  let startedFree = 0;
  let converted = 0;
  let convertedInPeriod = 0;
  for (const owned of byCustomer.values()) {
    const firstStart = Math.min(...owned.map((subscription) => subscription.startedAt));
    const firstPaid = firstPaidAt(owned, paid, end);
    if (firstPaid === firstStart) continue; // started paying right away
    startedFree += 1;
    if (firstPaid === undefined) continue;
    converted += 1;
    if (firstPaid > from) convertedInPeriod += 1;
  }
  return ratioOf({ startedFree, converted, convertedInPeriod }, 'converted', 'startedFree');
}

/** The first moment, by `end`, at which one of the subscriptions was on a paid plan. */
function firstPaidAt(subscriptions: readonly SubscriptionHistory[], paid: (planId: string) => boolean, end: number): number | undefined {
  let first: number | undefined;
  for (const subscription of subscriptions) {
    const planStarts = [subscription.startedAt, ...subscription.changes.filter((change) => change.kind === 'plan_change').map((change) => change.effectiveAt)];
    for (const at of planStarts) {
      const planId = at <= end ? planInForce(subscription, at) : undefined;
      if (planId !== undefined && paid(planId) && (first === undefined || at < first)) first = at;
    }
  }
  return first;
}

/** Customers created in the window who made their first allowed call by its end, and how long that took them. */
function activation(newCustomers: readonly NewCustomerRecord[], end: number): BusinessMetrics['activation'] {
  const waits = newCustomers
    .filter((customer) => customer.firstCallAt !== undefined && customer.firstCallAt <= end)
    .map((customer) => (customer.firstCallAt! - customer.createdAt) / 1000)
    .sort((a, b) => a - b);
  return {
    ...ratioOf({ newCustomers: newCustomers.length, activated: waits.length }, 'activated', 'newCustomers'),
    timeToFirstCall: { medianSeconds: nearestRank(waits, 50), p90Seconds: nearestRank(waits, 90) },
  };
}

/** Per currency: the MRR at the end of the customers paying a recurring fee at the start, over their MRR then. */
function netRevenueRetention(
  atStart: Map<CurrencyCode, Map<string, bigint>>,
  atEnd: Map<CurrencyCode, Map<string, bigint>>,
): BusinessMetrics['netRevenueRetention'] {
  return [...atStart]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([currency, customers]) => {
      const startingMrr = [...customers.values()].reduce((sum, mrr) => sum + mrr, 0n);
      const retainedMrr = [...customers.keys()].reduce((sum, id) => sum + (atEnd.get(currency)?.get(id) ?? 0n), 0n);
      return { currency, startingMrr, retainedMrr, rate: Number(retainedMrr) / Number(startingMrr) };
    });
}

/** Nearest-rank percentile: the smallest value with at least `percent`% of the values at or below it (no interpolation). */
function nearestRank(sorted: readonly number[], percent: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.ceil((percent * sorted.length) / 100) - 1]!;
}

/** Adds `rate`: numerator over denominator, null when there is nothing to divide by. */
function ratioOf<T extends Record<string, number>>(counts: T, numerator: keyof T, denominator: keyof T): T & { rate: number | null } {
  const divisor = counts[denominator]!;
  return { ...counts, rate: divisor === 0 ? null : counts[numerator]! / divisor };
}
