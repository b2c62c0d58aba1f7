import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { formatMoney } from '../src/kernel/money.js';
import { periodContaining, type BillingPeriod } from '../src/rating/period.js';
import { quote } from '../src/rating/quote.js';
import { ratePeriod, ratePlanChange, type Rating } from '../src/rating/rate.js';
import { ratePlanSchema, type RatePlan } from '../src/rating/schema.js';

/** The PetStore plans' `pricing:` sections, exactly as a catalog author writes them. */
const PETSTORE_PRICING = parse(`
free:
  currency: USD

pro:
  currency: USD
  recurring_fee: "49.00"

enterprise:
  currency: USD
  recurring_fee: "499.00"
  setup_fee: "250.00"
  revenue_share:
    partner: petstore-partners
    percent: 30

pay_per_call:
  currency: USD
  mode: prepaid
  endpoint_prices:
    read: "0.005"
    write: "0.02"
    image: "0.10"
    "*": "0.01"
  discounts:
    - { from_calls: 100000, percent: 20 }
    - { from_calls: 1000000, percent: 40 }

hybrid:
  currency: USD
  recurring_fee: "49.00"
  usage:
    model: per_unit
    included_units: 10000
    unit_price: "0.005"

metered:
  currency: USD
  usage:
    model: graduated
    tiers:
      - { up_to: 100000, unit_price: "0.01" }
      - { up_to: 1000000, unit_price: "0.005" }
      - { unit_price: "0.003" }
`) as Record<string, unknown>;

function plan(name: string): RatePlan {
  return ratePlanSchema.parse(PETSTORE_PRICING[name]);
}

function pricing(yaml: string): RatePlan {
  return ratePlanSchema.parse(parse(yaml));
}

const at = (iso: string) => Date.parse(iso);
/** April 2025, 30 days, on calendar-month billing (anchor on the 1st at midnight UTC). */
const APRIL_2025: BillingPeriod = periodContaining(at('2025-01-01T00:00:00Z'), at('2025-04-10T00:00:00Z'));
/** January 2025, 31 days. */
const JANUARY_2025: BillingPeriod = { start: at('2025-01-01T00:00:00Z'), end: at('2025-02-01T00:00:00Z') };

const amounts = (rating: Rating) => rating.lines.map((line) => [line.kind, line.amount]);

describe('PetStore plans', () => {
  it('metered graduated: 150,000 calls = $1,250.00 (100,000 × 0.01 + 50,000 × 0.005)', () => {
    const rating = ratePeriod({ plan: plan('metered'), period: APRIL_2025, usage: { units: 150_000 } });
    expect(rating.total).toBe(125_000n);
    expect(formatMoney(rating.total, rating.currency)).toBe('1250.00 USD');
    expect(rating.lines).toEqual([
      {
        kind: 'usage',
        description: '150000 units, graduated tiers',
        quantity: '150000',
        unit_price: null,
        amount: 125_000n,
        billed: 'in_arrears',
        tiers: [
          { up_to: 100_000, quantity: '100000', unit_price: '0.01', amount: '1000' },
          { up_to: 1_000_000, quantity: '50000', unit_price: '0.005', amount: '250' },
        ],
      },
    ]);
  });

  it('metered graduated: 1,500,000 calls reach the 0.3¢ tier = $7,000.00', () => {
    const rating = ratePeriod({ plan: plan('metered'), period: APRIL_2025, usage: { units: 1_500_000n } });
    // 100,000 × 0.01 + 900,000 × 0.005 + 500,000 × 0.003 = 1,000 + 4,500 + 1,500
    expect(rating.total).toBe(700_000n);
    expect(rating.lines[0]?.tiers?.map((tier) => tier.amount)).toEqual(['1000', '4500', '1500']);
  });

  it('hybrid: $49 including 10,000 calls, then $0.005: 128,000 calls = $639.00', () => {
    const rating = ratePeriod({ plan: plan('hybrid'), period: APRIL_2025, usage: { units: 128_000 } });
    // 49 + 118,000 × 0.005 = 49 + 590
    expect(rating.total).toBe(63_900n);
    expect(rating.lines.map((line) => [line.kind, line.description, line.amount, line.billed])).toEqual([
      ['recurring_fee', 'Recurring fee (monthly)', 4900n, 'in_advance'],
      ['usage', 'Included units: 10000 of 10000', 0n, 'in_arrears'],
      ['usage', '118000 units at 0.005 USD', 59_000n, 'in_arrears'],
    ]);
  });

  it('hybrid: usage within the included units costs only the base fee', () => {
    const rating = ratePeriod({ plan: plan('hybrid'), period: APRIL_2025, usage: { units: 9_999 } });
    expect(amounts(rating)).toEqual([
      ['recurring_fee', 4900n],
      ['usage', 0n],
    ]);
    expect(rating.lines[1]?.quantity).toBe('9999');
  });

  it('free: nothing to pay', () => {
    const rating = ratePeriod({ plan: plan('free'), period: APRIL_2025, usage: { units: 1000 } });
    expect(rating).toEqual({ currency: 'USD', lines: [], total: 0n, revenue_share: [] });
  });

  it('pay per call: per-endpoint prices with a 20% volume discount from 100,000 calls', () => {
    const rating = ratePeriod({
      plan: plan('pay_per_call'),
      period: APRIL_2025,
      usage: { calls_by_endpoint: { write: 15_000, image: 5_000, read: 80_000 } },
    });
    // read 80,000 × 0.005 = 400, write 15,000 × 0.02 = 300, image 5,000 × 0.10 = 500; 1,200 − 20% = 960
    expect(rating.lines.map((line) => [line.endpoint_id, line.description, line.amount])).toEqual([
      ['image', '5000 calls to image at 0.10 USD', 50_000n],
      ['read', '80000 calls to read at 0.005 USD', 40_000n],
      ['write', '15000 calls to write at 0.02 USD', 30_000n],
      [undefined, '20% volume discount on 1200.00 USD of usage (100000 calls, tier from 100000)', -24_000n],
    ]);
    expect(rating.lines[3]).toMatchObject({ kind: 'discount', unit_price: '-240', percent: 20 });
    expect(rating.total).toBe(96_000n);
  });

  it('pay per call: 40% from 1,000,000 calls, nothing below 100,000, $0.01 for other endpoints', () => {
    const rate = (calls_by_endpoint: Record<string, number>) =>
      ratePeriod({ plan: plan('pay_per_call'), period: APRIL_2025, usage: { calls_by_endpoint } }).total;
    // 1,000,000 × 0.005 + 150,000 × 0.02 + 50,000 × 0.10 = 5,000 + 3,000 + 5,000 = 13,000; − 40% = 7,800
    expect(rate({ read: 1_000_000, write: 150_000, image: 50_000 })).toBe(780_000n);
    // 99,999 calls: no discount; analytics is not listed so it costs the "*" price
    expect(rate({ read: 90_000, analytics: 9_999 })).toBe(45_000n + 9_999n);
  });

  it('enterprise: the setup fee in the first period only, and a 30% revenue share outside the total', () => {
    const first = ratePeriod({ plan: plan('enterprise'), period: APRIL_2025, subscription: { first_period: true } });
    expect(amounts(first)).toEqual([
      ['setup_fee', 25_000n],
      ['recurring_fee', 49_900n],
    ]);
    expect(first.total).toBe(74_900n);
    expect(first.revenue_share).toEqual([
      {
        kind: 'revenue_share',
        description: '30% revenue share of 749.00 USD owed to petstore-partners',
        quantity: '1',
        unit_price: '224.7',
        amount: 22_470n,
        billed: 'in_arrears',
        percent: 30,
        partner: 'petstore-partners',
      },
    ]);

    const later = ratePeriod({ plan: plan('enterprise'), period: APRIL_2025, subscription: { first_period: false } });
    expect(amounts(later)).toEqual([['recurring_fee', 49_900n]]);
    expect(later.revenue_share[0]?.amount).toBe(14_970n);
  });
});

describe('proration of the recurring fee (by elapsed time)', () => {
  it('Pro $49 subscribed on April 16 (day 16 of 30) pays exactly half: $24.50', () => {
    const rating = ratePeriod({
      plan: plan('pro'),
      period: APRIL_2025,
      subscription: { subscribed_at: at('2025-04-16T00:00:00Z'), first_period: true },
    });
    expect(rating.lines).toEqual([
      {
        kind: 'recurring_fee',
        description: 'Recurring fee (monthly), prorated 2025-04-16T00:00:00.000Z – 2025-05-01T00:00:00.000Z',
        quantity: '1',
        unit_price: '49.00',
        amount: 2450n,
        billed: 'in_advance',
        proration: { active_from: at('2025-04-16T00:00:00Z'), active_until: at('2025-05-01T00:00:00Z'), ratio: '0.5' },
      },
    ]);
  });

  it('Pro $49 subscribed on January 21 (11 of 31 days): 49 × 11 / 31 = 17.387… → $17.39', () => {
    const rating = ratePeriod({
      plan: plan('pro'),
      period: JANUARY_2025,
      subscription: { subscribed_at: at('2025-01-21T00:00:00Z') },
    });
    expect(rating.total).toBe(1739n);
    expect(rating.lines[0]?.proration?.ratio).toBe('0.354839');
  });

  it('a cancellation mid-period charges the time before it', () => {
    const rating = ratePeriod({
      plan: plan('pro'),
      period: APRIL_2025,
      subscription: { ended_at: at('2025-04-07T00:00:00Z') },
    });
    // 6 of 30 days: 49 × 0.2 = 9.80
    expect(rating.total).toBe(980n);
  });

  it('prorate: false charges the whole fee for any part of the period', () => {
    const rating = ratePeriod({
      plan: pricing('{ currency: USD, recurring_fee: "49.00", prorate: false }'),
      period: APRIL_2025,
      subscription: { subscribed_at: at('2025-04-30T00:00:00Z') },
    });
    expect(rating.lines[0]).not.toHaveProperty('proration');
    expect(rating.total).toBe(4900n);
  });

  it('rejects a subscription that is not active in the period', () => {
    expect(() =>
      ratePeriod({ plan: plan('pro'), period: APRIL_2025, subscription: { subscribed_at: APRIL_2025.end } }),
    ).toThrow(/not active/);
    expect(() => ratePeriod({ plan: plan('pro'), period: { start: 10, end: 10 } })).toThrow(/not a billing period/);
  });
});

describe('plan change mid-period', () => {
  it('Pro → Enterprise on April 16: credit $24.50 of Pro, charge $249.50 of Enterprise', () => {
    const rating = ratePlanChange({
      from_plan: plan('pro'),
      to_plan: plan('enterprise'),
      period: APRIL_2025,
      change_at: at('2025-04-16T00:00:00Z'),
    });
    expect(rating.lines.map((line) => [line.kind, line.unit_price, line.amount, line.proration?.ratio])).toEqual([
      ['proration_credit', '-49.00', -2450n, '0.5'],
      ['recurring_fee', '499.00', 24_950n, '0.5'],
    ]);
    expect(rating.total).toBe(22_500n);
    // The enterprise partner gets 30% of the enterprise charge; Pro has no revenue share.
    expect(rating.revenue_share.map((line) => line.amount)).toEqual([7485n]);
  });

  it("charges the new plan's setup fee when asked, unprorated, beside its prorated recurring fee", () => {
    const rating = ratePlanChange({
      from_plan: plan('pro'),
      to_plan: plan('enterprise'),
      period: APRIL_2025,
      change_at: at('2025-04-16T00:00:00Z'),
      charge_setup_fee: true,
    });
    expect(rating.lines.map((line) => [line.kind, line.amount])).toEqual([
      ['proration_credit', -2450n],
      ['setup_fee', 25_000n],
      ['recurring_fee', 24_950n],
    ]);
    expect(rating.total).toBe(47_500n);
    // The partner's share covers the setup fee too, as it does in a first period.
    expect(rating.revenue_share.map((line) => line.amount)).toEqual([14_985n]);
  });

  it('the new plan charge equals the in-advance line ratePeriod gives for the new segment', () => {
    const change_at = at('2025-04-09T13:00:00Z');
    const enterprise = plan('enterprise');
    const change = ratePlanChange({ from_plan: plan('hybrid'), to_plan: enterprise, period: APRIL_2025, change_at });
    const segment = ratePeriod({ plan: enterprise, period: APRIL_2025, subscription: { subscribed_at: change_at } });
    expect(change.lines[1]).toEqual(segment.lines.find((line) => line.billed === 'in_advance'));
  });

  it('no credit for a plan that does not prorate; other currencies and instants outside the period are errors', () => {
    const flat = pricing('{ currency: USD, recurring_fee: "49.00", prorate: false }');
    const change_at = at('2025-04-16T00:00:00Z');
    expect(ratePlanChange({ from_plan: flat, to_plan: plan('free'), period: APRIL_2025, change_at }).lines).toEqual([]);
    expect(() =>
      ratePlanChange({
        from_plan: plan('pro'),
        to_plan: pricing('{ currency: EUR, recurring_fee: "45.00" }'),
        period: APRIL_2025,
        change_at,
      }),
    ).toThrow(/currencies/);
    expect(() =>
      ratePlanChange({ from_plan: flat, to_plan: plan('pro'), period: APRIL_2025, change_at: APRIL_2025.end }),
    ).toThrow(/outside the period/);
  });
});

describe('price models', () => {
  it('package: $2.50 per started block of 1,000 units', () => {
    const packaged = pricing('{ currency: USD, usage: { model: package, package_size: 1000, package_price: "2.50" } }');
    const rate = (units: number) => ratePeriod({ plan: packaged, period: APRIL_2025, usage: { units } });
    expect(rate(2_500).lines[0]).toMatchObject({
      description: '3 packages of 1000 units (2500 units) at 2.50 USD',
      quantity: '3',
      amount: 750n,
    });
    expect(rate(3_000).total).toBe(750n);
    expect(rate(3_001).total).toBe(1000n);
    expect(rate(1).total).toBe(250n);
  });

  it('volume: every unit at the price of the tier the total reaches (up_to is inclusive)', () => {
    const volume = pricing(`
      currency: USD
      usage:
        model: volume
        tiers:
          - { up_to: 100000, unit_price: "0.01" }
          - { up_to: 1000000, unit_price: "0.005" }
          - { unit_price: "0.003" }
    `);
    const rate = (units: number) => ratePeriod({ plan: volume, period: APRIL_2025, usage: { units } });
    expect(rate(150_000).lines[0]).toMatchObject({
      description: '150000 units at 0.005 USD (volume tier up to 1000000)',
      unit_price: '0.005',
      amount: 75_000n,
    });
    expect(rate(100_000).total).toBe(100_000n);
    // 100,001 × 0.005 = 500.005 → 50,000.5 cents → half-even → 50,000 cents
    expect(rate(100_001).total).toBe(50_000n);
    expect(rate(2_000_000).lines[0]?.description).toBe('2000000 units at 0.003 USD (volume tier without limit)');
  });

  it('graduated tiers apply to the units beyond the included ones', () => {
    const graduated = pricing(`
      currency: USD
      usage:
        model: graduated
        included_units: 1000
        tiers: [{ up_to: 1000, unit_price: "0.02" }, { unit_price: "0.01" }]
    `);
    const rating = ratePeriod({ plan: graduated, period: APRIL_2025, usage: { units: 3_000 } });
    // 1,000 included; of the 2,000 beyond: 1,000 × 0.02 + 1,000 × 0.01 = 30
    expect(amounts(rating)).toEqual([
      ['usage', 0n],
      ['usage', 3000n],
    ]);
  });
});

describe('minimum commitment', () => {
  const committed = pricing(`
    currency: USD
    recurring_fee: "10.00"
    usage: { model: per_unit, unit_price: "0.01" }
    minimum_commitment: "100.00"
  `);

  it('trues up usage below the commitment; the recurring fee does not count toward it', () => {
    const rating = ratePeriod({ plan: committed, period: APRIL_2025, usage: { units: 3_000 } });
    expect(rating.lines.at(-1)).toEqual({
      kind: 'minimum_commitment_true_up',
      description: 'Minimum commitment of 100.00 USD, 30.00 USD used',
      quantity: '1',
      unit_price: '70.00',
      amount: 7000n,
      billed: 'in_arrears',
    });
    expect(rating.total).toBe(11_000n);
  });

  it('adds nothing when usage meets the commitment', () => {
    const rating = ratePeriod({ plan: committed, period: APRIL_2025, usage: { units: 20_000 } });
    expect(rating.lines.map((line) => line.kind)).toEqual(['recurring_fee', 'usage']);
    expect(rating.total).toBe(21_000n);
  });

  it('is prorated like the recurring fee in a partial period', () => {
    const rating = ratePeriod({
      plan: committed,
      period: APRIL_2025,
      subscription: { subscribed_at: at('2025-04-16T00:00:00Z') },
      usage: { units: 3_000 },
    });
    // fee 10 × 0.5 = 5; commitment 100 × 0.5 = 50, 30 used → 20
    expect(amounts(rating)).toEqual([
      ['recurring_fee', 500n],
      ['usage', 3000n],
      ['minimum_commitment_true_up', 2000n],
    ]);
  });

  it('counts usage after discounts', () => {
    const discounted = pricing(`
      currency: USD
      usage: { model: per_unit, unit_price: "0.001" }
      endpoint_prices: { "*": "0.001" }
      discounts: [{ from_calls: 10, percent: 50 }]
      minimum_commitment: "100.00"
    `);
    const rating = ratePeriod({
      plan: discounted,
      period: APRIL_2025,
      usage: { units: 50_000, calls_by_endpoint: { read: 50_000 } },
    });
    // usage 50 + endpoints 50 = 100, − 50% = 50 → true-up 50
    expect(amounts(rating)).toEqual([
      ['usage', 5000n],
      ['endpoint_usage', 5000n],
      ['discount', -5000n],
      ['minimum_commitment_true_up', 5000n],
    ]);
  });
});

describe('currencies and rounding (half-even, once per line item)', () => {
  it('half-cent unit prices: 1, 3, 5, 7 calls at $0.005 → 0, 2, 2, 4 cents', () => {
    const halfCent = pricing('{ currency: USD, usage: { model: per_unit, unit_price: "0.005" } }');
    const rate = (units: number) => ratePeriod({ plan: halfCent, period: APRIL_2025, usage: { units } }).total;
    expect([1, 3, 5, 7].map(rate)).toEqual([0n, 2n, 2n, 4n]);
  });

  it('zero-decimal JPY: ¥5,000 a month, ¥0.5 per unit', () => {
    const yen = pricing('{ currency: JPY, recurring_fee: "5000", usage: { model: per_unit, unit_price: "0.5" } }');
    const rate = (units: number) => ratePeriod({ plan: yen, period: APRIL_2025, usage: { units } });
    expect(amounts(rate(3))).toEqual([
      ['recurring_fee', 5000n],
      ['usage', 2n],
    ]);
    expect(rate(5).total).toBe(5002n);
    expect(formatMoney(rate(5).total, 'JPY')).toBe('5002 JPY');
    // Prorated by half: ¥2,500
    const subscription = { subscribed_at: at('2025-04-16T00:00:00Z') };
    expect(ratePeriod({ plan: yen, period: APRIL_2025, subscription }).total).toBe(2500n);
  });

  it('three-decimal BHD: 10.500 a month, 0.0005 per unit', () => {
    const dinar = pricing(`
      currency: BHD
      recurring_fee: "10.500"
      usage: { model: per_unit, unit_price: "0.0005" }
    `);
    const rating = ratePeriod({ plan: dinar, period: APRIL_2025, usage: { units: 3 } });
    // 3 × 0.0005 = 0.0015 BHD = 1.5 fils → 2 fils
    expect(amounts(rating)).toEqual([
      ['recurring_fee', 10_500n],
      ['usage', 2n],
    ]);
    expect(formatMoney(rating.total, 'BHD')).toBe('10.502 BHD');
  });

  it('captured amounts (e.g. a custom per-call price) are billed as usage, rounded per line', () => {
    const rating = ratePeriod({
      plan: plan('free'),
      period: APRIL_2025,
      usage: { captured_amounts: { translation_chars: '12.345', premium_lookups: '3.10' } },
    });
    expect(rating.lines.map((line) => [line.description, line.amount])).toEqual([
      ['Captured premium_lookups', 310n],
      ['Captured translation_chars', 1234n],
    ]);
  });
});

describe('input validation', () => {
  it('rejects counts that are not non-negative integers', () => {
    const metered = plan('metered');
    const rate = (units: number | bigint) => ratePeriod({ plan: metered, period: APRIL_2025, usage: { units } });
    expect(() => rate(-1)).toThrow(/non-negative integer/);
    expect(() => rate(-1n)).toThrow(/non-negative integer/);
    expect(() => rate(1.5)).toThrow(/non-negative integer/);
    expect(() => rate(Number.NaN)).toThrow(/non-negative integer/);
    expect(() =>
      ratePeriod({ plan: plan('pay_per_call'), period: APRIL_2025, usage: { calls_by_endpoint: { read: -3 } } }),
    ).toThrow(/calls_by_endpoint.read must be a non-negative integer/);
  });

  it('reports bad input as an invalid_request TollgateError naming the field', () => {
    expect(() => ratePeriod({ plan: plan('metered'), period: APRIL_2025, usage: { units: -1 } })).toThrow(
      expect.objectContaining({ name: 'TollgateError', code: 'invalid_request', field: 'units' }),
    );
    expect(() => quote(plan('metered'), { calls: 1, per_endpoint: { read: 2 } })).toThrow(
      expect.objectContaining({ code: 'invalid_request', field: 'per_endpoint' }),
    );
  });
});

describe('quote (pricing calculator)', () => {
  it('estimates a whole period from a call count', () => {
    expect(quote(plan('metered'), { calls: 150_000 }).total).toBe(125_000n);
    expect(quote(plan('hybrid'), { calls: 128_000 }).total).toBe(63_900n);
    expect(quote(plan('pro'), { calls: 40_000 }).total).toBe(4900n);
  });

  it('prices unlisted calls as calls to other endpoints', () => {
    const estimate = quote(plan('pay_per_call'), { calls: 120_000, per_endpoint: { read: 100_000, image: 10_000 } });
    // read 500 + image 1,000 + 10,000 other × 0.01 = 100 → 1,600; − 20% = 1,280
    expect(estimate.lines.map((line) => [line.description, line.amount])).toEqual([
      ['10000 calls to other endpoints at 0.01 USD', 10_000n],
      ['10000 calls to image at 0.10 USD', 100_000n],
      ['100000 calls to read at 0.005 USD', 50_000n],
      ['20% volume discount on 1600.00 USD of usage (120000 calls, tier from 100000)', -32_000n],
    ]);
    expect(estimate.total).toBe(128_000n);
  });

  it('includes the setup fee on request, and rejects more per-endpoint calls than calls', () => {
    expect(quote(plan('enterprise'), { calls: 0, include_setup_fee: true }).total).toBe(74_900n);
    expect(() => quote(plan('pay_per_call'), { calls: 10, per_endpoint: { read: 11 } })).toThrow(/exceed/);
  });
});

describe('ratePlanSchema', () => {
  it('applies defaults', () => {
    expect(plan('pro')).toEqual({
      currency: 'USD',
      mode: 'postpaid',
      billing_period: 'month',
      recurring_fee: '49.00',
      prorate: true,
    });
    expect(plan('hybrid').usage).toEqual({ model: 'per_unit', included_units: 10_000, unit_price: '0.005' });
  });

  it('accepts every PetStore plan', () => {
    for (const [name, section] of Object.entries(PETSTORE_PRICING)) {
      expect(ratePlanSchema.safeParse(section).success, name).toBe(true);
    }
  });

  const rejections: [string, string, RegExp][] = [
    ['unknown key', '{ currency: USD, recuring_fee: "49.00" }', /recuring_fee/],
    ['unknown currency', '{ currency: XYZ }', /currency/],
    ['fee with too many decimals', '{ currency: USD, recurring_fee: "49.001" }', /more decimals than USD/],
    ['JPY fee with decimals', '{ currency: JPY, setup_fee: "5000.5" }', /more decimals than JPY/],
    ['fee as a YAML number', '{ currency: USD, recurring_fee: 49.00 }', /recurring_fee/],
    ['negative price', '{ currency: USD, usage: { model: per_unit, unit_price: "-0.01" } }', /decimal string/],
    ['yearly period (not yet)', '{ currency: USD, billing_period: year }', /billing_period/],
    ['unknown model', '{ currency: USD, usage: { model: flat, unit_price: "1" } }', /model/],
    ['key of another model', '{ currency: USD, usage: { model: per_unit, unit_price: "1", tiers: [] } }', /tiers/],
    [
      'middle tier without up_to',
      '{ currency: USD, usage: { model: volume, tiers: [{ unit_price: "1" }, { unit_price: "2" }] } }',
      /only the last tier/,
    ],
    [
      'bounded last tier',
      '{ currency: USD, usage: { model: graduated, tiers: [{ up_to: 10, unit_price: "1" }] } }',
      /last tier has no up_to/,
    ],
    [
      'tiers out of order',
      '{ currency: USD, usage: { model: graduated, tiers: [{ up_to: 10, unit_price: "1" }, { up_to: 10, unit_price: "1" }, { unit_price: "1" }] } }',
      /increase/,
    ],
    [
      'discounts out of order',
      '{ currency: USD, discounts: [{ from_calls: 10, percent: 5 }, { from_calls: 5, percent: 10 }] }',
      /increase/,
    ],
    ['percent above 100', '{ currency: USD, discounts: [{ from_calls: 10, percent: 150 }] }', /percent/],
    ['revenue share without partner', '{ currency: USD, revenue_share: { percent: 30 } }', /partner/],
    [
      'fractional included units',
      '{ currency: USD, usage: { model: per_unit, included_units: 1.5, unit_price: "1" } }',
      /included_units/,
    ],
  ];

  it.each(rejections)('rejects %s', (_name, yaml, message) => {
    const result = ratePlanSchema.safeParse(parse(yaml));
    expect(result.success).toBe(false);
    const issues = result.error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('\n');
    expect(issues).toMatch(message);
  });
});
