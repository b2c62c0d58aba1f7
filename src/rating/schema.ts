/**
 * The `pricing:` section of a plan in the catalog YAML. Money is written as decimal strings in MAJOR units: fees
 * ("49.00") may not have more decimals than the currency, unit prices ("0.005") may. Unknown keys are errors.
 */
import { z } from 'zod';
import { CURRENCY_CODES, NON_NEGATIVE_DECIMAL, parseMajorAmount } from '../kernel/index.js';

function decimalString(example: string) {
  return z.string().regex(NON_NEGATIVE_DECIMAL, `expected a non-negative decimal string such as "${example}"`);
}

/** The `endpoint_prices` key that prices calls to every endpoint not listed. */
export const OTHER_ENDPOINTS = '*';

const unitPrice = decimalString('0.005');
/** A fee in major units; its decimals are checked against the plan's currency below. */
const fee = decimalString('49.00');
const percent = z.number().gt(0).lte(100);

function addIssue<T>(ctx: z.RefinementCtx<T>, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message });
}

const tierSchema = z.strictObject({
  /** Inclusive upper bound in units; omitted on the last tier, which prices everything beyond. */
  up_to: z.int().positive().optional(),
  unit_price: unitPrice,
});

const tiersSchema = z
  .array(tierSchema)
  .min(1)
  .superRefine((tiers, ctx) => {
    tiers.forEach((tier, index) => {
      const isLast = index === tiers.length - 1;
      const previousUpTo = tiers[index - 1]?.up_to;
      if (isLast && tier.up_to !== undefined) {
        addIssue(ctx, [index, 'up_to'], 'the last tier has no up_to: it prices every unit beyond');
      } else if (!isLast && tier.up_to === undefined) {
        addIssue(ctx, [index, 'up_to'], 'only the last tier may omit up_to');
      } else if (tier.up_to !== undefined && previousUpTo !== undefined && tier.up_to <= previousUpTo) {
        addIssue(ctx, [index, 'up_to'], 'up_to must increase from tier to tier');
      }
    });
  });

/** Units of the plan's usage counter that the recurring fee covers; the price model applies to the units beyond. */
const includedUnits = { included_units: z.int().nonnegative().default(0) };

const usagePricingSchema = z.discriminatedUnion('model', [
  /** Every unit at one price. */
  z.strictObject({ model: z.literal('per_unit'), ...includedUnits, unit_price: unitPrice }),
  /** A price per started block of `package_size` units. */
  z.strictObject({
    model: z.literal('package'),
    ...includedUnits,
    package_size: z.int().positive(),
    package_price: unitPrice,
  }),
  /** Each unit at the price of the tier it falls in. */
  z.strictObject({ model: z.literal('graduated'), ...includedUnits, tiers: tiersSchema }),
  /** Every unit at the price of the tier the total falls in. */
  z.strictObject({ model: z.literal('volume'), ...includedUnits, tiers: tiersSchema }),
]);

const discountsSchema = z
  .array(z.strictObject({ from_calls: z.int().positive(), percent }))
  .min(1)
  .superRefine((discounts, ctx) => {
    discounts.forEach((discount, index) => {
      const previous = discounts[index - 1];
      if (previous && discount.from_calls <= previous.from_calls) {
        addIssue(ctx, [index, 'from_calls'], 'from_calls must increase from tier to tier');
      }
    });
  });

export const ratePlanSchema = z
  .strictObject({
    currency: z.enum(CURRENCY_CODES),
    /** postpaid: invoiced after use; prepaid: charges are deducted from a wallet funded in advance. */
    mode: z.enum(['postpaid', 'prepaid']).default('postpaid'),
    billing_period: z.enum(['month']).default('month'),
    /** One-time, charged in the subscription's first period. */
    setup_fee: fee.optional(),
    /** Charged per period, in advance. */
    recurring_fee: fee.optional(),
    /** Prorate the recurring fee (and minimum commitment) over the part of a period the subscription is active. */
    prorate: z.boolean().default(true),
    /** Metered charge over the plan's usage counter (weighted units). */
    usage: usagePricingSchema.optional(),
    /** Price per call by endpoint id; the key "*" (OTHER_ENDPOINTS) prices calls to every endpoint not listed. */
    endpoint_prices: z.record(z.string().min(1), unitPrice).optional(),
    /** The percent of the highest tier reached by the period's total calls comes off the whole usage charge. */
    discounts: discountsSchema.optional(),
    /** Least the period's usage charges (after discounts) may add up to; a true-up line makes up the difference. */
    minimum_commitment: fee.optional(),
    /** Percent of the period's billed total owed to a partner; reported, never billed. */
    revenue_share: z.strictObject({ partner: z.string().min(1), percent }).optional(),
  })
  .superRefine((plan, ctx) => {
    for (const field of ['setup_fee', 'recurring_fee', 'minimum_commitment'] as const) {
      const amount = plan[field];
      if (amount === undefined) continue;
      try {
        parseMajorAmount(amount, plan.currency);
      } catch (error) {
        addIssue(ctx, [field], error instanceof Error ? error.message : String(error));
      }
    }
  });

export type RatePlan = z.infer<typeof ratePlanSchema>;
export type UsagePricing = z.infer<typeof usagePricingSchema>;
export type PriceTier = z.infer<typeof tierSchema>;
