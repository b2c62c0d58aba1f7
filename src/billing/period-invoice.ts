/**
 * One subscription's invoice for one billing period, composed from the pure rating core. Pure: no I/O, no clock.
 *
 * The invoice follows the subscription through the period:
 * - opening fees, in advance: the setup fee in the first period and the recurring fee of the plan in force when the
 *   period (or the subscription) starts, for the rest of the period (ratePeriod);
 * - each plan change: a credit for the old plan's unused time and the new plan's fee for the rest (ratePlanChange),
 *   and the new plan's setup fee if the subscription was never on that plan before;
 * - a cancellation: the credit for the unused time (ratePlanChange to a plan without fees);
 * - usage, in arrears: the period's aggregates rated on the plan in force at the period's end or cancellation
 *   (usage aggregates are per period, not per plan), with its minimum commitment prorated over that plan's time.
 * Fees and usage are rated apart (a fees-only and a usage-only view of the plan), so each is counted once.
 */
import type { SubscriptionChange } from '../identity/index.js';
import type { Catalog, EndpointDocument } from '../catalog/index.js';
import type { CurrencyCode } from '../kernel/index.js';
import { type BillingPeriod, type LineItem, nextPeriod, periodContaining, periodContains, type PeriodUsage, ratePeriod, type RatePlan, ratePlanChange, ratePlanSchema, type Rating } from '../rating/index.js';
import { priceKeyOf } from './call-price.js';

export interface SubscriptionHistory {
  id: string;
  /** The plan in force now, after every change. */
  planId: string;
  startedAt: number;
  periodAnchor: number;
  /** Plan changes and the cancellation, in effect order. */
  changes: readonly SubscriptionChange[];
}

/** Billable usage of one subscription period, from the metering aggregates. */
export interface SubscriptionPeriodUsage {
  endpoints: readonly { endpointId: string; calls: bigint; units: bigint }[];
  /** Amounts captured from requests, summed per name, in major units. */
  capturedAmounts?: Readonly<Record<string, string>>;
}

/** What the invoice needs from the catalog, for the subscription's product. */
export interface PricingContext {
  pricingOf(planId: string): RatePlan | undefined;
  endpointOf(endpointId: string): Pick<EndpointDocument, 'id' | 'tags'> | undefined;
  /**
   * The names of the plan's captured facts that are prices: its `type: decimal` captures (the product's, then the
   * plan's by name). Only those captured amounts are billed (an integer capture is a count, not money); without
   * this, every captured amount is.
   */
  capturedPricesOf?(planId: string): ReadonlySet<string>;
}

export interface InvoiceLine extends LineItem {
  plan_id: string;
}

/** A fee billed when it happens, which a prepaid wallet pays at once. */
export interface AdvanceCharge {
  kind: 'setup_fee' | 'recurring_fee' | 'plan_change' | 'cancellation';
  /** The wallet entry's idempotency reference: unique per customer. */
  reference: string;
  /** Minor units; negative for a credit. */
  amount: bigint;
  /** The plan it is for; its mode says whether a wallet pays it. */
  planId: string;
}

export interface PeriodInvoice {
  currency: CurrencyCode;
  /** The plan in force at the period's end (or cancellation): it rates the usage and decides the mode. */
  planId: string;
  mode: 'postpaid' | 'prepaid';
  lines: InvoiceLine[];
  total: bigint;
  /** Owed to partners out of the total; not billed. */
  revenueShare: InvoiceLine[];
  advanceCharges: AdvanceCharge[];
  calls: bigint;
  units: bigint;
}

const NO_USAGE: SubscriptionPeriodUsage = { endpoints: [] };

/** The invoice of `period`, or undefined if the subscription was not active in it or none of its plans is priced. */
export function ratePeriodInvoice(
  history: SubscriptionHistory,
  period: BillingPeriod,
  context: PricingContext,
  usage: SubscriptionPeriodUsage = NO_USAGE,
): PeriodInvoice | undefined {
  const window = activeWindow(history, period);
  if (!window) return undefined;
  const changes = history.changes.filter(
    (change) => change.kind === 'plan_change' && window.from < change.effectiveAt && change.effectiveAt < window.until,
  );
  const openingPlanId = planAt(history, window.from);
  const closingPlanId = changes.at(-1)?.toPlanId ?? openingPlanId;
  const currency = [openingPlanId, ...changes.map((change) => change.toPlanId!)]
    .map((planId) => context.pricingOf(planId))
    .find((pricing) => pricing !== undefined)?.currency;
  if (!currency) return undefined;
  const priced = (planId: string) => context.pricingOf(planId) ?? withoutFees(currency);

  const lines: InvoiceLine[] = [];
  const revenueShare: InvoiceLine[] = [];
  const advanceCharges: AdvanceCharge[] = [];
  const add = (rating: Rating, planOf: (line: LineItem) => string) => {
    lines.push(...rating.lines.map((line) => ({ ...line, plan_id: planOf(line) })));
    revenueShare.push(...rating.revenue_share.map((line) => ({ ...line, plan_id: planOf(line) })));
  };

  const opening = ratePeriod({
    plan: feesOnly(priced(openingPlanId)),
    period,
    subscription: { subscribed_at: window.from, first_period: periodContains(period, history.startedAt) },
  });
  add(opening, () => openingPlanId);
  for (const kind of ['setup_fee', 'recurring_fee'] as const) {
    const charged = opening.lines.filter((line) => line.kind === kind);
    if (charged.length === 0) continue;
    const amount = charged.reduce((sum, line) => sum + line.amount, 0n);
    advanceCharges.push({ kind, reference: `${kind}:${history.id}:${period.start}`, amount, planId: openingPlanId });
  }

  for (const change of changes) {
    const toPlanId = change.toPlanId!;
    const rating = ratePlanChangeIn(history, change, period, priced);
    add(rating, (line) => (line.kind === 'proration_credit' ? change.fromPlanId : toPlanId));
    advanceCharges.push({ kind: 'plan_change', reference: `plan_change:${change.id}`, amount: rating.total, planId: toPlanId });
  }

  const cancellation = history.changes.find((change) => change.kind === 'cancellation');
  if (cancellation && cancellation.effectiveAt === window.until && window.until < period.end) {
    const rating = ratePlanChange({
      from_plan: priced(closingPlanId),
      to_plan: withoutFees(currency),
      period,
      change_at: cancellation.effectiveAt,
    });
    add(rating, () => closingPlanId);
    advanceCharges.push({ kind: 'cancellation', reference: `cancellation:${cancellation.id}`, amount: rating.total, planId: closingPlanId });
  }

  const closingPricing = priced(closingPlanId);
  add(
    ratePeriod({
      plan: usageOnly(closingPricing),
      period,
      subscription: { subscribed_at: changes.at(-1)?.effectiveAt ?? window.from, ended_at: window.until },
      usage: toPeriodUsage(closingPricing, usage, context, closingPlanId),
    }),
    () => closingPlanId,
  );

  return {
    currency,
    planId: closingPlanId,
    mode: closingPricing.mode,
    lines,
    total: lines.reduce((sum, line) => sum + line.amount, 0n),
    revenueShare,
    advanceCharges,
    calls: usage.endpoints.reduce((sum, endpoint) => sum + endpoint.calls, 0n),
    units: usage.endpoints.reduce((sum, endpoint) => sum + endpoint.units, 0n),
  };
}

/**
 * What a plan change bills: the old plan's unused time credited, the new plan's fee for the rest of the period and its
 * setup fee if the subscription was never on that plan before (so switching back and forth charges it once).
 */
function ratePlanChangeIn(history: SubscriptionHistory, change: SubscriptionChange, period: BillingPeriod, priced: (planId: string) => RatePlan): Rating {
  const held = new Set([history.changes[0]?.fromPlanId ?? history.planId]);
  for (const earlier of history.changes) {
    if (earlier === change) break;
    if (earlier.kind === 'plan_change') held.add(earlier.toPlanId!);
  }
  return ratePlanChange({
    from_plan: priced(change.fromPlanId),
    to_plan: priced(change.toPlanId!),
    period,
    change_at: change.effectiveAt,
    charge_setup_fee: !held.has(change.toPlanId!),
  });
}

export interface PlanChangePreview {
  fromPlanId: string;
  toPlanId: string;
  /** The period the change falls in: its fees are prorated over what is left of it. */
  period: BillingPeriod;
  currency: CurrencyCode;
  lines: InvoiceLine[];
  /** Minor units; negative when the change credits more than it charges. */
  total: bigint;
  /** Prepaid: the wallet pays the total at once (and must hold it). Postpaid: it joins the period's invoice. */
  paidFrom: 'wallet' | 'invoice';
}

/**
 * What changing the subscription to `toPlanId` at `at` would bill, computed exactly as the change itself bills it
 * (the same history with the change appended, rated by the same function), so a preview shown before confirming is
 * what the change charges when it takes effect at the same instant. Undefined when neither plan is priced.
 */
export function previewPlanChange(history: SubscriptionHistory, toPlanId: string, at: number, context: PricingContext): PlanChangePreview | undefined {
  const fromPlanId = history.planId;
  const change: SubscriptionChange = { id: 'preview', subscriptionId: history.id, kind: 'plan_change', fromPlanId, toPlanId, effectiveAt: at };
  const currency = (context.pricingOf(fromPlanId) ?? context.pricingOf(toPlanId))?.currency;
  if (!currency) return undefined;
  const priced = (planId: string) => context.pricingOf(planId) ?? withoutFees(currency);
  const period = periodContaining(history.periodAnchor, at);
  const rating = ratePlanChangeIn({ ...history, changes: [...history.changes, change] }, change, period, priced);
  return {
    fromPlanId,
    toPlanId,
    period,
    currency: rating.currency,
    lines: rating.lines.map((line) => ({ ...line, plan_id: line.kind === 'proration_credit' ? fromPlanId : toPlanId })),
    total: rating.total,
    paidFrom: priced(toPlanId).mode === 'prepaid' ? 'wallet' : 'invoice',
  };
}

/** The plan in force at `at` (whether or not the subscription had started or was canceled then). */
export function planAt(history: SubscriptionHistory, at: number): string {
  let planId = history.changes[0]?.fromPlanId ?? history.planId;
  for (const change of history.changes) {
    if (change.kind === 'plan_change' && change.effectiveAt <= at) planId = change.toPlanId!;
  }
  return planId;
}

/**
 * The periods to rate: from the one containing `from` (the subscription's first by default) through the one
 * containing `now`, skipping none in between (catch-up after downtime), ending at the cancellation.
 */
export function periodsToRate(history: SubscriptionHistory, now: number, from = history.startedAt): BillingPeriod[] {
  const periods: BillingPeriod[] = [];
  for (let period = periodContaining(history.periodAnchor, from); period.start <= now; period = nextPeriod(history.periodAnchor, period)) {
    if (!activeWindow(history, period)) break; // canceled before it
    periods.push(period);
  }
  return periods;
}

/**
 * When a subscription rated at `now` (its periods from `from` on) next needs rating though nothing about it changes:
 * when its next period starts (a new draft, prepaid fees in advance) or when an ended period's finalization falls due,
 * whichever is first. Undefined when neither will happen (canceled, every period over).
 */
export function nextRatingAt(history: SubscriptionHistory, now: number, finalizeAfterMs: number, from = history.startedAt): number | undefined {
  const periods = periodsToRate(history, now, from);
  const last = periods.at(-1);
  const next = last ? nextPeriod(history.periodAnchor, last) : periodContaining(history.periodAnchor, Math.max(from, now));
  const candidates = periods.map((period) => period.end + finalizeAfterMs).filter((finalizeAt) => finalizeAt > now);
  if (activeWindow(history, next)) candidates.push(next.start);
  return candidates.length > 0 ? Math.min(...candidates) : undefined;
}

function activeWindow(history: SubscriptionHistory, period: BillingPeriod): { from: number; until: number } | undefined {
  const canceledAt = history.changes.find((change) => change.kind === 'cancellation')?.effectiveAt ?? Infinity;
  const from = Math.max(period.start, history.startedAt);
  const until = Math.min(period.end, canceledAt);
  return from < until ? { from, until } : undefined;
}

function toPeriodUsage(pricing: RatePlan, usage: SubscriptionPeriodUsage, context: PricingContext, planId: string): PeriodUsage {
  const callsByPriceKey: Record<string, bigint> = {};
  let units = 0n;
  for (const { endpointId, calls, units: endpointUnits } of usage.endpoints) {
    const key = priceKeyOf(pricing, context.endpointOf(endpointId) ?? { id: endpointId, tags: [] });
    callsByPriceKey[key] = (callsByPriceKey[key] ?? 0n) + calls;
    units += endpointUnits;
  }
  const prices = context.capturedPricesOf?.(planId);
  const captured = Object.entries(usage.capturedAmounts ?? {}).filter(([name]) => !prices || prices.has(name));
  return { units, calls_by_endpoint: callsByPriceKey, ...(captured.length > 0 && { captured_amounts: Object.fromEntries(captured) }) };
}

/** Stands in for an unpriced plan next to priced ones: no fees, no usage prices. */
function withoutFees(currency: CurrencyCode): RatePlan {
  return ratePlanSchema.parse({ currency });
}

function feesOnly(pricing: RatePlan): RatePlan {
  return { ...pricing, usage: undefined, endpoint_prices: undefined, discounts: undefined, minimum_commitment: undefined };
}

function usageOnly(pricing: RatePlan): RatePlan {
  return { ...pricing, setup_fee: undefined, recurring_fee: undefined };
}

/** The pricing context of a product's subscriptions, from the catalog. */
export function catalogPricing(catalog: Catalog, productId: string): PricingContext {
  return {
    pricingOf: (planId) => catalog.plan(planId)?.pricing,
    endpointOf: (endpointId) => catalog.endpoint(productId, endpointId),
    capturedPricesOf: (planId) => {
      const plan = catalog.plan(planId);
      if (!plan) return new Set();
      const rules = new Map([...(catalog.products.get(plan.product)?.capture ?? []), ...(plan.capture ?? [])].map((rule) => [rule.name, rule]));
      return new Set([...rules.values()].filter((rule) => rule.type === 'decimal').map((rule) => rule.name));
    },
  };
}
