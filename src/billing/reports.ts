/**
 * Monetization reports, read from the invoices: revenue, usage and revenue share by product, plan, customer and
 * month, and monthly recurring revenue from the active subscriptions.
 */
import type { Catalog, Plan } from '../catalog/index.js';
import { type CurrencyCode, invalid, parseMajorAmount } from '../kernel/index.js';
import type { Queryable } from '../store/index.js';

/** Revenue and usage of one group (a product, a plan or a customer) in one currency. */
export interface RevenueGroup {
  id: string;
  currency: CurrencyCode;
  /** Billed, minor units. */
  revenue: bigint;
  /** Owed to partners out of the revenue. */
  revenueShare: bigint;
  calls: bigint;
  units: bigint;
}

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

export async function revenueReport(db: Queryable, month: string): Promise<RevenueReport> {
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(month);
  if (!match) throw invalid('period', `${month} is not a month such as 2026-11`);
  const from = Date.UTC(Number(match[1]), Number(match[2]) - 1, 1);
  const to = Date.UTC(Number(match[1]), Number(match[2]), 1);
  const range = [new Date(from), new Date(to)];
  const inMonth = 'i.period_start >= $1 AND i.period_start < $2';
  const [[counts], totals, byProduct, planRevenue, planUsage, byCustomer, partners] = await Promise.all([
    db.query<{ invoices: string; drafts: string }>(
      `SELECT count(*) AS invoices, count(*) FILTER (WHERE status = 'draft') AS drafts FROM invoices i WHERE ${inMonth}`,
      range,
    ),
    groupInvoices(db, `'all'`, inMonth, range),
    groupInvoices(db, 'i.product_id', inMonth, range),
    // Revenue follows the plan of each line (a period with a plan change pays both plans)...
    db.query<{ id: string; currency: CurrencyCode; revenue: string; revenue_share: string }>(
      `SELECT l.plan_id AS id, i.currency,
         coalesce(sum(l.amount) FILTER (WHERE l.kind <> 'revenue_share'), 0) AS revenue,
         coalesce(sum(l.amount) FILTER (WHERE l.kind = 'revenue_share'), 0) AS revenue_share
       FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
       WHERE ${inMonth} GROUP BY l.plan_id, i.currency ORDER BY l.plan_id, i.currency`,
      range,
    ),
    // ...usage the plan that rated it.
    groupInvoices(db, 'i.plan_id', inMonth, range),
    groupInvoices(db, 'i.customer_id', inMonth, range),
    db.query<{ id: string; currency: CurrencyCode; owed: string }>(
      `SELECT l.partner AS id, i.currency, sum(l.amount) AS owed FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
       WHERE ${inMonth} AND l.kind = 'revenue_share' GROUP BY l.partner, i.currency ORDER BY l.partner, i.currency`,
      range,
    ),
  ]);
  const usageOf = new Map(planUsage.map((row) => [`${row.id}@${row.currency}`, row]));
  const byPlan = planRevenue.map((row) => {
    const usage = usageOf.get(`${row.id}@${row.currency}`);
    return toGroup({ ...row, calls: usage?.calls ?? '0', units: usage?.units ?? '0' });
  });
  return {
    month,
    from,
    to,
    invoices: Number(counts!.invoices),
    drafts: Number(counts!.drafts),
    totals: totals.map(toGroup),
    byProduct: byProduct.map(toGroup),
    byPlan,
    byCustomer: byCustomer.map(toGroup),
    revenueShareByPartner: partners.map((row) => ({ id: row.id, currency: row.currency, owed: BigInt(row.owed) })),
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
export async function mrrReport(db: Queryable, catalog: Catalog, at: number): Promise<MrrReport> {
  const rows = await db.query<{ plan_id: string; subscriptions: string }>(
    `SELECT plan_id, count(*) AS subscriptions FROM subscriptions WHERE status = 'active' GROUP BY plan_id ORDER BY plan_id`,
  );
  const byPlan = rows.flatMap((row) => {
    const recurring = monthlyRecurringFee(catalog.plan(row.plan_id));
    if (!recurring) return [];
    const subscriptions = Number(row.subscriptions);
    return [{ planId: row.plan_id, currency: recurring.currency, subscriptions, recurringFee: recurring.fee, mrr: recurring.fee * BigInt(subscriptions) }];
  });
  const totals = new Map<CurrencyCode, { currency: CurrencyCode; mrr: bigint; subscriptions: number }>();
  for (const plan of byPlan) {
    const total = totals.get(plan.currency) ?? { currency: plan.currency, mrr: 0n, subscriptions: 0 };
    totals.set(plan.currency, { ...total, mrr: total.mrr + plan.mrr, subscriptions: total.subscriptions + plan.subscriptions });
  }
  return { at, totals: [...totals.values()], byPlan };
}

interface GroupRow {
  id: string;
  currency: CurrencyCode;
  revenue: string;
  revenue_share: string;
  calls: string;
  units: string;
}

function groupInvoices(db: Queryable, key: string, inMonth: string, range: Date[]): Promise<GroupRow[]> {
  return db.query<GroupRow>(
    `SELECT ${key} AS id, i.currency, sum(i.total) AS revenue, sum(i.revenue_share) AS revenue_share,
       sum(i.calls) AS calls, sum(i.units) AS units
     FROM invoices i WHERE ${inMonth} GROUP BY 1, i.currency ORDER BY 1, i.currency`,
    range,
  );
}

const toGroup = (row: GroupRow): RevenueGroup => ({
  id: row.id,
  currency: row.currency,
  revenue: BigInt(row.revenue),
  revenueShare: BigInt(row.revenue_share),
  calls: BigInt(row.calls),
  units: BigInt(row.units),
});
