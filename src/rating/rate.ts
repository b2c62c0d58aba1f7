/**
 * The rating core: turns a rate plan, a billing period, the subscription's lifecycle in it and the period's usage into
 * priced line items. Pure: no I/O, no clock, no randomness; the same input always gives the same output.
 *
 * Instants are epoch milliseconds. Rounding follows the money kernel: exact decimals, rounded once per line item,
 * half-even. Proration is by elapsed time: a fee is multiplied by (active ms) / (period ms), exactly.
 */
import { type CurrencyCode, Decimal, formatMajor, formatMoney, invalid, minorToMajor, parseMajorAmount, parseUnitPrice, roundToMinorUnits } from '../kernel/index.js';
import type { BillingPeriod } from './period.js';
import { OTHER_ENDPOINTS, type PriceTier, type RatePlan, type UsagePricing } from './schema.js';

/** A count of units or calls: a non-negative safe integer or a bigint. */
export type Count = number | bigint;

export interface SubscriptionFacts {
  /** When the subscription (or, after a plan change, this plan) started; defaults to the period start. */
  subscribed_at?: number;
  /** Exclusive end: cancellation or plan-change boundary; defaults to the period end. */
  ended_at?: number;
  /** The subscription's first period, in which the one-time setup fee is charged. */
  first_period?: boolean;
}

export interface PeriodUsage {
  /** Weighted units on the plan's usage counter, priced by `usage`. */
  units?: Count;
  /** Calls per endpoint id, priced by `endpoint_prices`; their sum is the call count `discounts` look at. */
  calls_by_endpoint?: Readonly<Record<string, Count>>;
  /** Amounts captured from requests (e.g. a custom per-call price), summed per name, in major units. */
  captured_amounts?: Readonly<Record<string, string>>;
}

export interface RatePeriodInput {
  plan: RatePlan;
  period: BillingPeriod;
  subscription?: SubscriptionFacts;
  usage?: PeriodUsage;
}

export interface PlanChangeInput {
  from_plan: RatePlan;
  to_plan: RatePlan;
  period: BillingPeriod;
  /** The instant the new plan takes over, inside the period. */
  change_at: number;
  /** Charge the new plan's one-time setup fee: the subscription has not been on that plan before. */
  charge_setup_fee?: boolean;
}

export type LineKind =
  | 'setup_fee'
  | 'recurring_fee'
  | 'proration_credit'
  | 'usage'
  | 'endpoint_usage'
  | 'captured_usage'
  | 'discount'
  | 'minimum_commitment_true_up'
  | 'revenue_share';

export interface Proration {
  active_from: number;
  active_until: number;
  /** Share of the period, to 6 decimals for display; the amount uses the exact ratio. */
  ratio: string;
}

export interface TierCharge {
  /** Inclusive upper bound of the tier, null for the last one. */
  up_to: number | null;
  quantity: string;
  unit_price: string;
  /** Exact, in major units, before the line's rounding. */
  amount: string;
}

export interface LineItem {
  kind: LineKind;
  description: string;
  quantity: string;
  /** Major units; null for graduated pricing, whose prices are in `tiers`. */
  unit_price: string | null;
  /** Minor units: quantity × unit_price (× proration ratio), or the sum of `tiers`, rounded half-even. */
  amount: bigint;
  /** Fees are billed at the start of the period they cover, usage at its end. */
  billed: 'in_advance' | 'in_arrears';
  proration?: Proration;
  tiers?: TierCharge[];
  endpoint_id?: string;
  percent?: number;
  partner?: string;
}

export interface Rating {
  currency: CurrencyCode;
  lines: LineItem[];
  /** Sum of `lines`, in minor units: what the customer owes. */
  total: bigint;
  /** Owed to partners out of the billed total; neither billed nor part of `total`. */
  revenue_share: LineItem[];
}

interface ActiveWindow {
  from: number;
  until: number;
}

/** Rates one billing period of one subscription on one plan. */
export function ratePeriod({ plan, period, subscription = {}, usage = {} }: RatePeriodInput): Rating {
  const window = activeWindow(period, subscription.subscribed_at ?? period.start, subscription.ended_at ?? period.end);
  const callsByEndpoint = sortedEntries(usage.calls_by_endpoint ?? {}).map(
    ([endpointId, calls]) => [endpointId, toCount(calls, `calls_by_endpoint.${endpointId}`)] as const,
  );
  const fees = [
    ...(subscription.first_period ? setupFeeLines(plan) : []),
    ...recurringFeeLines(plan, period, window),
  ];
  const usageLines = [
    ...meteredLines(plan, toCount(usage.units ?? 0, 'units')),
    ...endpointLines(plan, callsByEndpoint),
    ...capturedLines(plan.currency, usage.captured_amounts ?? {}),
  ];
  const totalCalls = callsByEndpoint.reduce((sum, [, calls]) => sum + calls, 0n);
  const discounts = discountLines(plan, totalCalls, sumAmounts(usageLines));
  const trueUps = trueUpLines(plan, period, window, sumAmounts([...usageLines, ...discounts]));
  const lines = [...fees, ...usageLines, ...discounts, ...trueUps];
  const total = sumAmounts(lines);
  return { currency: plan.currency, lines, total, revenue_share: revenueShareLines(plan, total) };
}

/**
 * The fee adjustments of a mid-period plan change: a credit for the unused part of the old plan's recurring fee
 * (which was billed in advance), the new plan's recurring fee for the rest of the period and, with
 * `charge_setup_fee`, the new plan's setup fee. Fees are prorated only if their plan says `prorate`. Usage is rated
 * per plan segment with ratePeriod, whose in-advance recurring line for the new segment equals the charge here.
 */
export function ratePlanChange({ from_plan, to_plan, period, change_at, charge_setup_fee = false }: PlanChangeInput): Rating {
  if (from_plan.currency !== to_plan.currency) {
    throw invalid('to_plan', `cannot change plans across currencies (${from_plan.currency} → ${to_plan.currency})`);
  }
  if (!(period.start <= change_at && change_at < period.end)) {
    throw invalid('change_at', `plan change at ${change_at} is outside the period [${period.start}, ${period.end})`);
  }
  const rest = activeWindow(period, change_at, period.end);
  const credits = unusedTimeCreditLines(from_plan, period, rest);
  const charges = [...(charge_setup_fee ? setupFeeLines(to_plan) : []), ...recurringFeeLines(to_plan, period, rest)];
  const lines = [...credits, ...charges];
  return {
    currency: to_plan.currency,
    lines,
    total: sumAmounts(lines),
    revenue_share: [
      ...revenueShareLines(from_plan, sumAmounts(credits)),
      ...revenueShareLines(to_plan, sumAmounts(charges)),
    ],
  };
}

/** Validates the count in `field` and returns it as a bigint. */
export function toCount(value: Count, field: string): bigint {
  if (typeof value === 'bigint' ? value < 0n : !Number.isSafeInteger(value) || value < 0) {
    throw invalid(field, `${field} must be a non-negative integer, got ${value}`);
  }
  return BigInt(value);
}

function activeWindow(period: BillingPeriod, subscribedAt: number, endedAt: number): ActiveWindow {
  if (!Number.isSafeInteger(period.start) || !Number.isSafeInteger(period.end) || period.start >= period.end) {
    throw invalid('period', `[${period.start}, ${period.end}) is not a billing period in epoch ms`);
  }
  const from = Math.max(period.start, subscribedAt);
  const until = Math.min(period.end, endedAt);
  if (!(from < until)) throw invalid('subscription', 'the subscription is not active during the period');
  return { from, until };
}

function setupFeeLines(plan: RatePlan): LineItem[] {
  if (plan.setup_fee === undefined) return [];
  return [
    {
      kind: 'setup_fee',
      description: 'Setup fee',
      quantity: '1',
      unit_price: plan.setup_fee,
      amount: parseMajorAmount(plan.setup_fee, plan.currency),
      billed: 'in_advance',
    },
  ];
}

const PERIOD_ADJECTIVES = { month: 'monthly' } as const satisfies Record<RatePlan['billing_period'], string>;

function recurringFeeLines(plan: RatePlan, period: BillingPeriod, window: ActiveWindow): LineItem[] {
  if (plan.recurring_fee === undefined) return [];
  const description = `Recurring fee (${PERIOD_ADJECTIVES[plan.billing_period]})`;
  return [proratedFeeLine('recurring_fee', description, plan.recurring_fee, plan, period, window)];
}

/** Reverses the old plan's fee, billed in advance, for the part of the period it no longer covers. */
function unusedTimeCreditLines(plan: RatePlan, period: BillingPeriod, unused: ActiveWindow): LineItem[] {
  if (plan.recurring_fee === undefined || !plan.prorate) return [];
  const reversedFee = `-${plan.recurring_fee}`;
  return [proratedFeeLine('proration_credit', 'Credit for unused time', reversedFee, plan, period, unused)];
}

function proratedFeeLine(
  kind: LineKind,
  description: string,
  fee: string,
  plan: RatePlan,
  period: BillingPeriod,
  window: ActiveWindow,
): LineItem {
  const { ratio, proration } = prorationOf(plan, period, window);
  return {
    kind,
    description: proration ? `${description}, prorated ${isoRange(window)}` : description,
    quantity: '1',
    unit_price: fee,
    amount: roundToMinorUnits(new Decimal(fee).times(ratio), plan.currency),
    billed: 'in_advance',
    ...(proration && { proration }),
  };
}

/** The share of the period a fee or commitment covers: the active time, unless the plan does not prorate. */
function prorationOf(
  plan: RatePlan,
  period: BillingPeriod,
  window: ActiveWindow,
): { ratio: Decimal; proration?: Proration } {
  const isWholePeriod = window.from === period.start && window.until === period.end;
  if (!plan.prorate || isWholePeriod) return { ratio: new Decimal(1) };
  const ratio = new Decimal(window.until - window.from).div(period.end - period.start);
  return {
    ratio,
    proration: { active_from: window.from, active_until: window.until, ratio: ratio.toDecimalPlaces(6).toFixed() },
  };
}

function meteredLines(plan: RatePlan, units: bigint): LineItem[] {
  const pricing = plan.usage;
  if (!pricing || units === 0n) return [];
  const includedAllowance = BigInt(pricing.included_units);
  const included = units < includedAllowance ? units : includedAllowance;
  const billable = units - included;
  return [
    ...(included > 0n ? [includedUnitsLine(included, includedAllowance)] : []),
    ...(billable > 0n ? [usageLine(pricing, billable, plan.currency)] : []),
  ];
}

function includedUnitsLine(included: bigint, allowance: bigint): LineItem {
  return {
    kind: 'usage',
    description: `Included units: ${included} of ${allowance}`,
    quantity: included.toString(),
    unit_price: '0',
    amount: 0n,
    billed: 'in_arrears',
  };
}

function usageLine(pricing: UsagePricing, units: bigint, currency: CurrencyCode): LineItem {
  const line = { kind: 'usage', billed: 'in_arrears' } as const;
  switch (pricing.model) {
    case 'per_unit':
      return {
        ...line,
        description: `${units} units at ${pricing.unit_price} ${currency}`,
        quantity: units.toString(),
        unit_price: pricing.unit_price,
        amount: roundToMinorUnits(parseUnitPrice(pricing.unit_price).times(units), currency),
      };
    case 'package': {
      const size = BigInt(pricing.package_size);
      const packages = (units + size - 1n) / size; // a started package is charged in full
      return {
        ...line,
        description: `${packages} packages of ${size} units (${units} units) at ${pricing.package_price} ${currency}`,
        quantity: packages.toString(),
        unit_price: pricing.package_price,
        amount: roundToMinorUnits(parseUnitPrice(pricing.package_price).times(packages), currency),
      };
    }
    case 'graduated': {
      const tiers = graduatedTierCharges(pricing.tiers, units);
      const exact = tiers.reduce((sum, tier) => sum.plus(tier.amount), new Decimal(0));
      return {
        ...line,
        description: `${units} units, graduated tiers`,
        quantity: units.toString(),
        unit_price: null,
        amount: roundToMinorUnits(exact, currency),
        tiers,
      };
    }
    case 'volume': {
      const tier = pricing.tiers.find((candidate) => candidate.up_to === undefined || units <= BigInt(candidate.up_to));
      if (!tier) throw invalid('usage.tiers', 'volume tiers must end with a tier without up_to');
      const tierName = tier.up_to === undefined ? 'without limit' : `up to ${tier.up_to}`;
      return {
        ...line,
        description: `${units} units at ${tier.unit_price} ${currency} (volume tier ${tierName})`,
        quantity: units.toString(),
        unit_price: tier.unit_price,
        amount: roundToMinorUnits(parseUnitPrice(tier.unit_price).times(units), currency),
      };
    }
  }
}

function graduatedTierCharges(tiers: readonly PriceTier[], units: bigint): TierCharge[] {
  const charges: TierCharge[] = [];
  let tierStart = 0n;
  for (const tier of tiers) {
    if (units <= tierStart) break;
    const tierEnd = tier.up_to === undefined ? units : BigInt(tier.up_to);
    const quantity = (units < tierEnd ? units : tierEnd) - tierStart;
    charges.push({
      up_to: tier.up_to ?? null,
      quantity: quantity.toString(),
      unit_price: tier.unit_price,
      amount: parseUnitPrice(tier.unit_price).times(quantity).toFixed(),
    });
    tierStart = tierEnd;
  }
  return charges;
}

function endpointLines(plan: RatePlan, callsByEndpoint: readonly (readonly [string, bigint])[]): LineItem[] {
  const prices = plan.endpoint_prices ?? {};
  return callsByEndpoint.flatMap(([endpointId, calls]) => {
    const price = Object.hasOwn(prices, endpointId) ? prices[endpointId] : prices[OTHER_ENDPOINTS];
    if (price === undefined || calls === 0n) return [];
    const target = endpointId === OTHER_ENDPOINTS ? 'other endpoints' : endpointId;
    return [
      {
        kind: 'endpoint_usage',
        description: `${calls} calls to ${target} at ${price} ${plan.currency}`,
        quantity: calls.toString(),
        unit_price: price,
        amount: roundToMinorUnits(parseUnitPrice(price).times(calls), plan.currency),
        billed: 'in_arrears',
        endpoint_id: endpointId,
      } satisfies LineItem,
    ];
  });
}

function capturedLines(currency: CurrencyCode, capturedAmounts: Readonly<Record<string, string>>): LineItem[] {
  return sortedEntries(capturedAmounts).map(([name, captured]) => ({
    kind: 'captured_usage',
    description: `Captured ${name}`,
    quantity: '1',
    unit_price: captured,
    amount: roundToMinorUnits(parseUnitPrice(captured), currency),
    billed: 'in_arrears',
  }));
}

function discountLines(plan: RatePlan, calls: bigint, usageCharge: bigint): LineItem[] {
  const tier = plan.discounts?.findLast((discount) => BigInt(discount.from_calls) <= calls);
  if (!tier || usageCharge === 0n) return [];
  const discount = minorToMajor(usageCharge, plan.currency).times(tier.percent).div(100).neg();
  const usage = formatMoney(usageCharge, plan.currency);
  const reached = `${calls} calls, tier from ${tier.from_calls}`;
  return [
    {
      kind: 'discount',
      description: `${tier.percent}% volume discount on ${usage} of usage (${reached})`,
      quantity: '1',
      unit_price: discount.toFixed(),
      amount: roundToMinorUnits(discount, plan.currency),
      billed: 'in_arrears',
      percent: tier.percent,
    },
  ];
}

function trueUpLines(plan: RatePlan, period: BillingPeriod, window: ActiveWindow, usageCharge: bigint): LineItem[] {
  if (plan.minimum_commitment === undefined) return [];
  const { ratio, proration } = prorationOf(plan, period, window);
  const commitment = roundToMinorUnits(new Decimal(plan.minimum_commitment).times(ratio), plan.currency);
  const shortfall = commitment - usageCharge;
  if (shortfall <= 0n) return [];
  const used = formatMoney(usageCharge, plan.currency);
  return [
    {
      kind: 'minimum_commitment_true_up',
      description: `Minimum commitment of ${formatMoney(commitment, plan.currency)}, ${used} used`,
      quantity: '1',
      unit_price: formatMajor(shortfall, plan.currency),
      amount: shortfall,
      billed: 'in_arrears',
      ...(proration && { proration }),
    },
  ];
}

function revenueShareLines(plan: RatePlan, billed: bigint): LineItem[] {
  const share = plan.revenue_share;
  if (!share || billed === 0n) return [];
  const owed = minorToMajor(billed, plan.currency).times(share.percent).div(100);
  return [
    {
      kind: 'revenue_share',
      description: `${share.percent}% revenue share of ${formatMoney(billed, plan.currency)} owed to ${share.partner}`,
      quantity: '1',
      unit_price: owed.toFixed(),
      amount: roundToMinorUnits(owed, plan.currency),
      billed: 'in_arrears',
      percent: share.percent,
      partner: share.partner,
    },
  ];
}

/** Entries by key in code-unit order, so line order does not depend on how a record was built. */
function sortedEntries<T>(record: Readonly<Record<string, T>>): [string, T][] {
  return Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function sumAmounts(lines: readonly LineItem[]): bigint {
  return lines.reduce((sum, line) => sum + line.amount, 0n);
}

function isoRange(window: ActiveWindow): string {
  return `${new Date(window.from).toISOString()} – ${new Date(window.until).toISOString()}`;
}
