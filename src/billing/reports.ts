/**
 * Monetization reports, read from the invoices: revenue, usage and revenue share by product, plan, customer and
 * month, and monthly recurring revenue from the active subscriptions.
 */
import type { Catalog, Plan } from '../catalog/index.js';
import { type CurrencyCode, invalid, parseMajorAmount } from '../kernel/index.js';
import type { InvoiceRecords, RevenueGroup, SubscriptionHistories } from './records.js';

export interface RevenueReport {
  /** Invoices of the billing periods that start in this calendar month (UTC). */
  month: string;
  from: number;
  to: number;
  invoices: number;
  /** Drafts among them: their periods are still running, so their amounts can still grow. */
  drafts: number;
  totals: RevenueGroup[];
  byProduct: RevenueGroup[];
  byPlan: RevenueGroup[];
  byCustomer: RevenueGroup[];
  revenueShareByPartner: { id: string; currency: CurrencyCode; owed: bigint }[];
}

export interface MrrReport {
  at: number;
  totals: { currency: CurrencyCode; mrr: bigint; subscriptions: number }[];
  byPlan: { planId: string; currency: CurrencyCode; subscriptions: number; recurringFee: bigint; mrr: bigint }[];
}

export async function revenueReport(invoices: InvoiceRecords, month: string): Promise<RevenueReport> {
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!match) throw invalid('period', `${month} is not a month such as 2026-11`);
  const from = Date.UTC(Number(match[1]), Number(match[2]) - 1, 1);
  const to = Date.UTC(Number(match[1]), Number(match[2]), 1);
  const figures = await invoices.revenueFigures(from, to);
  // Revenue follows the plan of each line (a period with a plan change pays both plans), usage the plan that rated it.
  const usageOf = new Map(figures.byInvoicePlan.map((group) => [`${group.id}@${group.currency}`, group]));
  const byPlan = figures.revenueByLinePlan.map((group) => {
    const usage = usageOf.get(`${group.id}@${group.currency}`);
    return { ...group, calls: usage?.calls ?? 0n, units: usage?.units ?? 0n };
  });
  return {
    month,
    from,
    to,
    invoices: figures.invoices,
    drafts: figures.drafts,
    totals: figures.totals,
    byProduct: figures.byProduct,
    byPlan,
    byCustomer: figures.byCustomer,
    revenueShareByPartner: figures.revenueShareByPartner,
  };
}

/**
 * A plan's recurring fee per month in minor units, or undefined for a plan without one (or not in the catalog).
 * Every billing period is a month today (`billing_period: month`), so the fee is its own monthly value.
 */
export function monthlyRecurringFee(plan: Plan | undefined): { currency: CurrencyCode; fee: bigint } | undefined {
  const pricing = plan?.pricing;
  if (!pricing?.recurring_fee) return undefined;
  return { currency: pricing.currency, fee: parseMajorAmount(pricing.recurring_fee, pricing.currency) };
}

/** Monthly recurring revenue: the recurring fees of the active subscriptions' plans (usage revenue is not recurring). */
export async function mrrReport(histories: SubscriptionHistories, catalog: Catalog, at: number): Promise<MrrReport> {
  const byPlan = (await histories.activeByPlan()).flatMap(({ planId, subscriptions }) => {
    const recurring = monthlyRecurringFee(catalog.plan(planId));
    if (!recurring) return [];
    return [{ planId, currency: recurring.currency, subscriptions, recurringFee: recurring.fee, mrr: recurring.fee * BigInt(subscriptions) }];
  });
  const totals = new Map<CurrencyCode, { currency: CurrencyCode; mrr: bigint; subscriptions: number }>();
  for (const plan of byPlan) {
    const total = totals.get(plan.currency) ?? { currency: plan.currency, mrr: 0n, subscriptions: 0 };
    totals.set(plan.currency, { ...total, mrr: total.mrr + plan.mrr, subscriptions: total.subscriptions + plan.subscriptions });
  }
  return { at, totals: [...totals.values()], byPlan };
}
