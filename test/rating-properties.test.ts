import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Decimal,
  formatMajor,
  minorToMajor,
  parseMajorAmount,
  roundToMinorUnits,
  type CurrencyCode,
} from '../src/kernel/money.js';
import { periodContaining, type BillingPeriod } from '../src/rating/period.js';
import { quote } from '../src/rating/quote.js';
import { ratePeriod, ratePlanChange, type RatePeriodInput } from '../src/rating/rate.js';
import { ratePlanSchema, type RatePlan } from '../src/rating/schema.js';

const currency = fc.constantFrom<CurrencyCode>('USD', 'EUR', 'JPY', 'BHD');

/** Non-negative decimal strings with up to 6 decimals, e.g. "0.005". */
const price = fc
  .tuple(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 6 }))
  .map(([digits, scale]) => new Decimal(digits).div(new Decimal(10).pow(scale)).toFixed());

function fee(code: CurrencyCode) {
  return fc.bigInt({ min: 0n, max: 10_000_000n }).map((minor) => formatMajor(minor, code));
}

const percent = fc.integer({ min: 1, max: 1000 }).map((tenths) => tenths / 10);

/** Ascending, unique tier bounds and one more price than bounds (the last tier is unbounded). */
function tiers(order: 'any' | 'non-increasing' | 'non-decreasing' = 'any') {
  return fc
    .uniqueArray(fc.integer({ min: 1, max: 2_000_000 }), { maxLength: 4 })
    .chain((bounds) =>
      fc.array(price, { minLength: bounds.length + 1, maxLength: bounds.length + 1 }).map((prices) => {
        const ordered = order === 'any' ? prices : [...prices].sort((a, b) => new Decimal(a).cmp(b));
        if (order === 'non-increasing') ordered.reverse();
        const upTos = [...bounds].sort((a, b) => a - b);
        return ordered.map((unit_price, index) => ({
          unit_price,
          ...(index < upTos.length && { up_to: upTos[index] }),
        }));
      }),
    );
}

const includedUnits = fc.integer({ min: 0, max: 200_000 });

const usagePricing = fc.oneof(
  fc.record({ model: fc.constant('per_unit' as const), included_units: includedUnits, unit_price: price }),
  fc.record({
    model: fc.constant('package' as const),
    included_units: includedUnits,
    package_size: fc.integer({ min: 1, max: 10_000 }),
    package_price: price,
  }),
  fc.record({ model: fc.constant('graduated' as const), included_units: includedUnits, tiers: tiers() }),
  fc.record({ model: fc.constant('volume' as const), included_units: includedUnits, tiers: tiers() }),
);

const discounts = fc
  .uniqueArray(fc.integer({ min: 1, max: 2_000_000 }), { minLength: 1, maxLength: 3 })
  .chain((thresholds) =>
    fc.array(percent, { minLength: thresholds.length, maxLength: thresholds.length }).map((percents) =>
      [...thresholds].sort((a, b) => a - b).map((from_calls, index) => ({ from_calls, percent: percents[index] })),
    ),
  );

const ENDPOINTS = ['read', 'write', 'image', 'analytics'];

const ratePlan: fc.Arbitrary<RatePlan> = currency.chain((code) =>
  fc
    .record(
      {
        currency: fc.constant(code),
        mode: fc.constantFrom('postpaid', 'prepaid'),
        setup_fee: fee(code),
        recurring_fee: fee(code),
        prorate: fc.boolean(),
        usage: usagePricing,
        endpoint_prices: fc.dictionary(fc.constantFrom(...ENDPOINTS.slice(0, 3), '*'), price),
        discounts,
        minimum_commitment: fee(code),
        revenue_share: fc.record({ partner: fc.constant('partner'), percent }),
      },
      { requiredKeys: ['currency'] },
    )
    .map((section) => ratePlanSchema.parse(section)),
);

const instant = fc.integer({ min: Date.parse('2000-01-01T00:00:00Z'), max: Date.parse('2100-01-01T00:00:00Z') });

const period: fc.Arbitrary<BillingPeriod> = fc
  .tuple(instant, instant)
  .map(([anchor, at]) => periodContaining(anchor, at));

/** A period and an instant inside it. */
const periodAndInstant = period.chain((billing) =>
  fc.tuple(fc.constant(billing), fc.integer({ min: billing.start, max: billing.end - 1 })),
);

/** A period and an active window inside it: [subscribed_at, ended_at), either end possibly left open. */
const periodWithWindow = period.chain((billing) =>
  fc
    .uniqueArray(fc.integer({ min: billing.start, max: billing.end }), { minLength: 2, maxLength: 2 })
    .chain(([a = billing.start, b = billing.end]) =>
      fc.record({
        period: fc.constant(billing),
        subscribed_at: fc.option(fc.constant(Math.min(a, b)), { nil: undefined }),
        ended_at: fc.option(fc.constant(Math.max(a, b)), { nil: undefined }),
      }),
    ),
);

const count = fc.oneof(fc.integer({ min: 0, max: 3_000_000 }), fc.bigInt({ min: 0n, max: 3_000_000n }));

const usage = fc.record(
  {
    units: count,
    calls_by_endpoint: fc.dictionary(fc.constantFrom(...ENDPOINTS), count),
    captured_amounts: fc.dictionary(fc.constantFrom('custom_price', 'bytes'), price),
  },
  { requiredKeys: [] },
);

const ratePeriodInput: fc.Arbitrary<RatePeriodInput> = fc
  .tuple(ratePlan, periodWithWindow, fc.boolean(), usage)
  .map(([plan, { period: billing, subscribed_at, ended_at }, first_period, periodUsage]) => ({
    plan,
    period: billing,
    subscription: {
      first_period,
      ...(subscribed_at !== undefined && { subscribed_at }),
      ...(ended_at !== undefined && { ended_at }),
    },
    usage: periodUsage,
  }));

function chargeFor(plan: RatePlan, units: number): bigint {
  return ratePeriod({ plan, period: periodContaining(0, 0), usage: { units } }).total;
}

function tieredCharge(code: CurrencyCode, model: 'graduated' | 'volume', priceTiers: unknown, units: number): bigint {
  return chargeFor(ratePlanSchema.parse({ currency: code, usage: { model, tiers: priceTiers } }), units);
}

describe('rating properties', () => {
  it('line items sum to the total; revenue share stays outside it', () => {
    fc.assert(
      fc.property(ratePeriodInput, (input) => {
        const rating = ratePeriod(input);
        expect(rating.total).toBe(rating.lines.reduce((sum, line) => sum + line.amount, 0n));
        expect(rating.currency).toBe(input.plan.currency);
        const share = input.plan.revenue_share;
        const owed = share && minorToMajor(rating.total, rating.currency).times(share.percent).div(100);
        expect(rating.revenue_share.map((line) => line.amount)).toEqual(
          owed && rating.total !== 0n ? [roundToMinorUnits(owed, rating.currency)] : [],
        );
      }),
    );
  });

  it('every line is its exact charge rounded once, half-even', () => {
    fc.assert(
      fc.property(ratePeriodInput, (input) => {
        for (const line of ratePeriod(input).lines) {
          if (line.proration) continue; // the displayed ratio is rounded; proration has its own properties below
          const exact =
            line.unit_price === null
              ? (line.tiers ?? []).reduce((sum, tier) => sum.plus(tier.amount), new Decimal(0))
              : new Decimal(line.quantity).times(line.unit_price);
          expect(line.amount).toBe(roundToMinorUnits(exact, input.plan.currency));
        }
      }),
    );
  });

  it('rating is deterministic: equal inputs give deep-equal outputs', () => {
    fc.assert(
      fc.property(ratePeriodInput, (input) => {
        expect(ratePeriod(structuredClone(input))).toStrictEqual(ratePeriod(structuredClone(input)));
      }),
    );
  });

  it('a period rated twice yields identical output and leaves its input untouched', () => {
    fc.assert(
      fc.property(ratePeriodInput, (input) => {
        const before = structuredClone(input);
        const first = ratePeriod(input);
        const second = ratePeriod(input);
        expect(second).toStrictEqual(first);
        expect(input).toEqual(before); // toEqual: structuredClone drops the null prototypes fast-check generates
      }),
    );
  });

  it('volume ≤ graduated for non-increasing tier prices, graduated ≤ volume for non-decreasing ones', () => {
    const compare = (order: 'non-increasing' | 'non-decreasing') =>
      fc.property(currency, tiers(order), fc.integer({ min: 0, max: 3_000_000 }), (code, priceTiers, units) => {
        const graduated = tieredCharge(code, 'graduated', priceTiers, units);
        const volume = tieredCharge(code, 'volume', priceTiers, units);
        if (order === 'non-increasing') expect(volume).toBeLessThanOrEqual(graduated);
        else expect(graduated).toBeLessThanOrEqual(volume);
      });
    fc.assert(compare('non-increasing'));
    fc.assert(compare('non-decreasing'));
  });

  it('per-unit, package and graduated charges never decrease as usage grows', () => {
    const monotoneModels = usagePricing.filter((pricing) => pricing.model !== 'volume');
    fc.assert(
      fc.property(currency, monotoneModels, fc.nat(3_000_000), fc.nat(3_000_000), (code, pricing, a, b) => {
        const plan = ratePlanSchema.parse({ currency: code, usage: pricing });
        expect(chargeFor(plan, Math.min(a, b))).toBeLessThanOrEqual(chargeFor(plan, Math.max(a, b)));
      }),
    );
  });

  it('proration over a whole period equals the full fee', () => {
    fc.assert(
      fc.property(
        currency.chain((code) => fc.tuple(fc.constant(code), fee(code))),
        period,
        fc.boolean(),
        fc.nat(1_000_000_000),
        ([code, recurring_fee], billing, prorate, slack) => {
          const plan = ratePlanSchema.parse({ currency: code, recurring_fee, prorate });
          const rating = ratePeriod({
            plan,
            period: billing,
            subscription: { subscribed_at: billing.start - slack, ended_at: billing.end + slack },
          });
          expect(rating.lines).toHaveLength(1);
          expect(rating.lines[0]).not.toHaveProperty('proration');
          expect(rating.total).toBe(parseMajorAmount(recurring_fee, code));
        },
      ),
    );
  });

  it('the two prorated parts of a split period add up to the full fee within one minor unit', () => {
    fc.assert(
      fc.property(
        currency.chain((code) => fc.tuple(fc.constant(code), fee(code))),
        periodAndInstant.filter(([billing, split]) => split > billing.start),
        ([code, recurring_fee], [billing, split]) => {
          const plan = ratePlanSchema.parse({ currency: code, recurring_fee });
          const before = ratePeriod({ plan, period: billing, subscription: { ended_at: split } }).total;
          const after = ratePeriod({ plan, period: billing, subscription: { subscribed_at: split } }).total;
          const full = parseMajorAmount(recurring_fee, code);
          expect(before + after - full).toBeGreaterThanOrEqual(-1n);
          expect(before + after - full).toBeLessThanOrEqual(1n);
        },
      ),
    );
  });

  it('changing to the same prorated plan mid-period nets to zero', () => {
    fc.assert(
      fc.property(
        ratePlan,
        periodAndInstant,
        (plan, [billing, change_at]) => {
          const change = ratePlanChange({ from_plan: plan, to_plan: plan, period: billing, change_at });
          // A plan that does not prorate gives no credit and charges its whole fee again.
          const fee = plan.recurring_fee === undefined ? 0n : parseMajorAmount(plan.recurring_fee, plan.currency);
          expect(change.total).toBe(plan.prorate ? 0n : fee);
        },
      ),
    );
  });

  it('a quote is the rating of a whole period with one unit per call', () => {
    fc.assert(
      fc.property(ratePlan, fc.nat(3_000_000), period, (plan, calls, billing) => {
        const rated = ratePeriod({ plan, period: billing, usage: { units: calls, calls_by_endpoint: { '*': calls } } });
        expect(quote(plan, { calls })).toStrictEqual(rated);
      }),
    );
  });
});
