/**
 * Usage alert thresholds: the `alerts:` list of a plan in the catalog, and the form the evaluator works with.
 * Money thresholds are decimal strings in major units of the plan's currency, checked against it like fees.
 */
import { z } from 'zod';
import { type CurrencyCode, formatMajor, NON_NEGATIVE_DECIMAL, parseMajorAmount } from '../kernel/index.js';

const thresholdKinds = ['quota_percent', 'wallet_below', 'spend_above'] as const;
type ThresholdKind = (typeof thresholdKinds)[number];

const money = z.string().regex(NON_NEGATIVE_DECIMAL, 'expected a non-negative decimal string such as "5.00"');

/** One entry of a plan's `alerts:`, naming exactly one threshold. */
const alertThresholdSchema = z
  .strictObject({
    /** The period's metered units reach this percent of the plan's quota (over 100 for plans allowing overage). */
    quota_percent: z.int().min(1).max(1000).optional(),
    /** The prepaid wallet's balance falls under this amount. */
    wallet_below: money.optional(),
    /** The period's running invoice total goes over this amount. */
    spend_above: money.optional(),
  })
  .superRefine((alert, ctx) => {
    const named = thresholdKinds.filter((kind) => alert[kind] !== undefined);
    if (named.length !== 1) {
      ctx.addIssue({ code: 'custom', message: `an alert names exactly one of ${thresholdKinds.join(', ')}; this one names ${named.length}` });
    }
  });

export const alertsSchema = z.array(alertThresholdSchema).min(1);

type AlertThresholdDocument = z.infer<typeof alertThresholdSchema>;

/** The event type each kind of threshold sends. */
export const alertTypes = {
  quota_percent: 'quota.threshold_reached',
  wallet_below: 'wallet.balance_low',
  spend_above: 'spend.threshold_exceeded',
} as const satisfies Record<ThresholdKind, string>;
export type AlertType = (typeof alertTypes)[ThresholdKind];

export type AlertThreshold =
  | { kind: 'quota_percent'; percent: number; quotaUnits: number }
  | { kind: 'wallet_below' | 'spend_above'; amount: bigint; currency: CurrencyCode };

/** What a plan needs for its alerts to be checked: its quota and its pricing's currency and mode. */
interface AlertingPlan {
  quota?: { units: number } | undefined;
  pricing?: { currency: CurrencyCode; mode: 'postpaid' | 'prepaid' } | undefined;
  alerts?: AlertThresholdDocument[] | undefined;
}

/**
 * The catalog's cross-field rules for a plan's alerts, reported at the offending field: a quota threshold needs a
 * quota, a wallet threshold a prepaid plan, a money threshold a currency it fits; no threshold twice.
 */
export function checkPlanAlerts<T>(ctx: z.RefinementCtx<T>, plan: AlertingPlan, planPath: (string | number)[]): void {
  const seen = new Set<string>();
  plan.alerts?.forEach((alert, index) => {
    const kind = thresholdKinds.find((candidate) => alert[candidate] !== undefined);
    if (!kind) return;
    const path = [...planPath, 'alerts', index, kind];
    const problem = thresholdProblem(kind, alert, plan);
    if (problem) {
      ctx.addIssue({ code: 'custom', path, message: problem });
      return;
    }
    const key = JSON.stringify(thresholdJson(toThreshold(kind, alert, plan)));
    if (seen.has(key)) ctx.addIssue({ code: 'custom', path, message: 'duplicate alert threshold' });
    seen.add(key);
  });
}

function thresholdProblem(kind: ThresholdKind, alert: AlertThresholdDocument, plan: AlertingPlan): string | undefined {
  if (kind === 'quota_percent') return plan.quota ? undefined : 'the plan has no quota to take a percentage of';
  if (kind === 'wallet_below' && plan.pricing?.mode !== 'prepaid') return 'wallet_below needs a prepaid plan (pricing.mode: prepaid)';
  if (!plan.pricing) return `${kind} needs the plan's pricing, whose currency it is in`;
  try {
    parseMajorAmount(alert[kind]!, plan.pricing.currency);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** A validated plan's thresholds, money parsed in its currency. */
export function planThresholds(plan: AlertingPlan): AlertThreshold[] {
  return (plan.alerts ?? []).map((alert) => toThreshold(thresholdKinds.find((kind) => alert[kind] !== undefined)!, alert, plan));
}

function toThreshold(kind: ThresholdKind, alert: AlertThresholdDocument, plan: AlertingPlan): AlertThreshold {
  if (kind === 'quota_percent') return { kind, percent: alert.quota_percent!, quotaUnits: plan.quota!.units };
  const currency = plan.pricing!.currency;
  return { kind, amount: parseMajorAmount(alert[kind]!, currency), currency };
}

/**
 * The threshold as events show it and the database keys it: `{"quota_percent": 80}`,
 * `{"wallet_below": "5.00", "currency": "USD"}`. Amounts are normalized, so "5" and "5.00" are one threshold.
 */
export function thresholdJson(threshold: AlertThreshold): Record<string, string | number> {
  if (threshold.kind === 'quota_percent') return { quota_percent: threshold.percent };
  return { [threshold.kind]: formatMajor(threshold.amount, threshold.currency), currency: threshold.currency };
}
