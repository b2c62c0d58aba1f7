/**
 * Admin routes for the purchase flow, prepaid wallets, invoices, the pricing calculator and monetization reports.
 * Money goes out as exact decimal strings in major units with its currency ("639.00" USD).
 */
import { z } from 'zod';
import type { AccountsService } from '../identity/index.js';
import { type BillingQueries, formatMicros, type InvoiceLine, type RatingLoop, type RevenueGroup, type StoredInvoice, type StoredInvoiceDetail, type WalletEntry, type WalletService, type WalletSummary } from '../billing/index.js';
import type { Catalog } from '../catalog/index.js';
import { type Clock, CURRENCY_CODES, type CurrencyCode, formatDecimal, formatMajor, invalid, notFound, parseMajorAmount } from '../kernel/index.js';
import { quote } from '../rating/index.js';
import { afterRowIdSchema, route, type Route } from './router.js';

export interface BillingRouteDependencies {
  accounts: AccountsService;
  wallets: WalletService;
  ratingLoop: RatingLoop;
  billing: BillingQueries;
  catalog: () => Catalog;
  clock: Clock;
}

const money = z.string().describe('decimal amount in major units, e.g. "49.00"');
const lineSchema = z.object({
  planId: z.string(),
  kind: z.string(),
  description: z.string(),
  quantity: z.string(),
  unitPrice: z.string().nullable(),
  amount: money,
  billed: z.enum(['in_advance', 'in_arrears']),
  endpointId: z.string().optional(),
  partner: z.string().optional(),
  percent: z.number().optional(),
  proration: z.object({ activeFrom: z.string(), activeUntil: z.string(), ratio: z.string() }).optional(),
  tiers: z.array(z.object({ upTo: z.number().nullable(), quantity: z.string(), unitPrice: z.string(), amount: z.string() })).optional(),
});
const invoiceSchema = z.object({
  id: z.string(),
  customerId: z.string(),
  subscriptionId: z.string(),
  productId: z.string(),
  planId: z.string(),
  periodStart: z.string(),
  periodEnd: z.string(),
  currency: z.string(),
  mode: z.enum(['postpaid', 'prepaid']),
  status: z.enum(['draft', 'finalized']),
  total: money,
  revenueShare: money,
  calls: z.number(),
  units: z.number(),
  ratedAt: z.string(),
  finalizedAt: z.string().nullable(),
});
const invoiceDetailSchema = invoiceSchema.extend({
  lines: z.array(lineSchema),
  revenueShareLines: z.array(lineSchema),
  usage: z.array(z.object({ endpointId: z.string(), calls: z.number(), units: z.number() })),
});
const walletSchema = z.object({
  currency: z.string(),
  balance: money,
  available: money.nullable().describe('what calls can still spend: the balance less spend not yet settled; null while unknown'),
  lowBalanceThreshold: money,
  lowBalance: z.boolean(),
  exhausted: z.boolean(),
});
const entrySchema = z.object({
  id: z.string(),
  currency: z.string(),
  kind: z.string(),
  amount: money,
  balanceAfter: money,
  reference: z.string(),
  description: z.string(),
  subscriptionId: z.string().nullable(),
  periodStart: z.string().nullable(),
  occurredAt: z.string(),
});
const groupSchema = z.object({ id: z.string(), currency: z.string(), revenue: money, revenueShare: money, calls: z.number(), units: z.number() });
const currencySchema = z.enum(CURRENCY_CODES);
const monthSchema = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month, YYYY-MM');

export function billingRoutes(deps: BillingRouteDependencies): Route[] {
  const { accounts, wallets, ratingLoop, billing, catalog, clock } = deps;

  /** A request without a currency means the customer's only wallet's, else the catalog's only one. */
  async function currencyFor(customerId: string, given: CurrencyCode | undefined): Promise<CurrencyCode> {
    if (given) return given;
    const held = (await wallets.summaries(customerId)).map((wallet) => wallet.currency);
    const priced = [...new Set([...catalog().plans.values()].flatMap((plan) => (plan.pricing ? [plan.pricing.currency] : [])))];
    const only = held.length === 1 ? held : priced.length === 1 ? priced : [];
    if (!only[0]) throw invalid('currency', 'currency is required: the customer or the catalog has several');
    return only[0];
  }

  return [
    route({
      method: 'POST',
      path: '/v1/customers/:id/purchases',
      operationId: 'purchasePlan',
      summary: 'Purchase a plan: subscribes the customer; a prepaid plan charges its setup fee and first recurring fee to the wallet (402 insufficient_funds if it cannot)',
      tag: 'billing',
      auth: 'admin',
      body: z
        .object({
          plan: z.string().min(1),
          periodAnchor: z.iso.datetime().optional().describe('billing day of month, e.g. the 1st for calendar months (prorates the first period)'),
        })
        .strict(),
      response: z.object({ subscription: z.record(z.string(), z.unknown()), invoice: invoiceDetailSchema.nullable(), wallets: z.array(walletSchema) }),
      successStatus: 201,
      handle: async ({ params, body }) => {
        const subscription = await accounts.subscribe(params.id!, body.plan, body.periodAnchor === undefined ? undefined : Date.parse(body.periodAnchor));
        const invoice = await ratingLoop.refreshCurrent(subscription.id);
        return {
          status: 201,
          body: { subscription, invoice: invoice ? invoiceDetailView(invoice) : null, wallets: (await wallets.summaries(params.id!)).map(walletView) },
        };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id/wallet',
      operationId: 'listWallets',
      summary: "A customer's prepaid wallets: ledger balance, what calls can still spend, low-balance state",
      tag: 'wallets',
      auth: 'admin',
      response: z.object({ data: z.array(walletSchema) }),
      handle: async ({ params }) => ({ status: 200, body: { data: (await wallets.summaries(params.id!)).map(walletView) } }),
    }),
    route({
      method: 'PATCH',
      path: '/v1/customers/:id/wallet',
      operationId: 'updateWallet',
      summary: 'Set the balance under which a wallet reports low',
      tag: 'wallets',
      auth: 'admin',
      body: z.object({ currency: currencySchema.optional(), lowBalanceThreshold: z.string() }).strict(),
      response: walletSchema,
      handle: async ({ params, body }) => {
        const currency = await currencyFor(params.id!, body.currency);
        const threshold = parseMajorAmount(body.lowBalanceThreshold, currency, 'lowBalanceThreshold');
        return { status: 200, body: walletView(await wallets.setLowBalanceThreshold(params.id!, currency, threshold)) };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/customers/:id/wallet/top-ups',
      operationId: 'topUpWallet',
      summary: 'Top up a prepaid wallet, once per client reference (the same reference again answers 200 with the first entry)',
      tag: 'wallets',
      auth: 'admin',
      body: z
        .object({ amount: z.string(), currency: currencySchema.optional(), reference: z.string().min(1).max(200) })
        .strict(),
      response: z.object({ entry: entrySchema, wallet: walletSchema }),
      successStatus: 201,
      handle: async ({ params, body }) => {
        const currency = await currencyFor(params.id!, body.currency);
        const { entry, created } = await wallets.topUp({
          customerId: params.id!,
          currency,
          amount: parseMajorAmount(body.amount, currency),
          reference: body.reference,
        });
        const wallet = (await wallets.summaries(params.id!)).find((summary) => summary.currency === currency)!;
        return { status: created ? 201 : 200, body: { entry: entryView(entry), wallet: walletView(wallet) } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id/wallet/ledger',
      operationId: 'listWalletLedger',
      summary: "A customer's wallet ledger, oldest first, with the balance after each entry",
      tag: 'wallets',
      auth: 'admin',
      query: z
        .object({
          currency: currencySchema.optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          after: afterRowIdSchema,
        })
        .strict(),
      response: z.object({ data: z.array(entrySchema) }),
      handle: async ({ params, query }) => ({ status: 200, body: { data: (await wallets.ledger(params.id!, query)).map(entryView) } }),
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id/invoices',
      operationId: 'listInvoices',
      summary: "A customer's invoices, newest period first",
      tag: 'invoices',
      auth: 'admin',
      query: z.object({ status: z.enum(['draft', 'finalized']).optional(), limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
      response: z.object({ data: z.array(invoiceSchema) }),
      handle: async ({ params, query }) => {
        await accounts.getCustomer(params.id!);
        return { status: 200, body: { data: (await billing.listInvoices(params.id!, query)).map(invoiceView) } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/invoices/:id',
      operationId: 'getInvoice',
      summary: 'An invoice with its lines and the usage it was rated on',
      tag: 'invoices',
      auth: 'admin',
      response: invoiceDetailSchema,
      handle: async ({ params }) => ({ status: 200, body: invoiceDetailView(await billing.getInvoice(params.id!)) }),
    }),
    route({
      method: 'GET',
      path: '/v1/subscriptions/:id/invoices/current',
      operationId: 'getCurrentInvoice',
      summary: "The running period's draft invoice, rated now: what the customer owes so far",
      tag: 'invoices',
      auth: 'admin',
      response: invoiceDetailSchema,
      handle: async ({ params }) => {
        await accounts.getSubscription(params.id!);
        const invoice = await ratingLoop.refreshCurrent(params.id!);
        if (!invoice) throw notFound('current invoice of subscription', params.id!);
        return { status: 200, body: invoiceDetailView(invoice) };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/plans/:id/quote',
      operationId: 'quotePlan',
      summary: 'Pricing calculator: the bill of one whole period with this many calls',
      tag: 'catalog',
      auth: 'admin',
      query: z.object({ calls: z.coerce.number().int().min(0), include_setup_fee: z.stringbool().default(false) }).strict(),
      response: z.object({ planId: z.string(), currency: z.string(), calls: z.number(), total: money, lines: z.array(lineSchema), revenueShareLines: z.array(lineSchema) }),
      handle: async ({ params, query }) => {
        const plan = catalog().plan(params.id!);
        if (!plan?.public) throw notFound('plan', params.id!);
        if (!plan.pricing) throw invalid('plan', `plan ${plan.id} has no pricing`);
        const rating = quote(plan.pricing, { calls: query.calls, include_setup_fee: query.include_setup_fee });
        const lineOf = (line: (typeof rating.lines)[number]) => lineView({ ...line, plan_id: plan.id }, rating.currency);
        return {
          status: 200,
          body: {
            planId: plan.id,
            currency: rating.currency,
            calls: query.calls,
            total: formatMajor(rating.total, rating.currency),
            lines: rating.lines.map(lineOf),
            revenueShareLines: rating.revenue_share.map(lineOf),
          },
        };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/reports/revenue',
      operationId: 'getRevenueReport',
      summary: 'Revenue, usage and revenue share by product, plan and customer, for the periods starting in a month',
      tag: 'reports',
      auth: 'admin',
      query: z.object({ period: monthSchema }).strict(),
      response: z.object({
        period: z.string(),
        invoices: z.number(),
        drafts: z.number(),
        totals: z.array(groupSchema),
        byProduct: z.array(groupSchema),
        byPlan: z.array(groupSchema),
        byCustomer: z.array(groupSchema),
        revenueShareByPartner: z.array(z.object({ partner: z.string(), currency: z.string(), owed: money })),
      }),
      handle: async ({ query }) => {
        const report = await billing.revenueReport(query.period);
        return {
          status: 200,
          body: {
            period: report.month,
            invoices: report.invoices,
            drafts: report.drafts,
            totals: report.totals.map(groupView),
            byProduct: report.byProduct.map(groupView),
            byPlan: report.byPlan.map(groupView),
            byCustomer: report.byCustomer.map(groupView),
            revenueShareByPartner: report.revenueShareByPartner.map((row) => ({ partner: row.id, currency: row.currency, owed: formatMajor(row.owed, row.currency) })),
          },
        };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/reports/mrr',
      operationId: 'getMrrReport',
      summary: "Monthly recurring revenue: the active subscriptions' recurring fees",
      tag: 'reports',
      auth: 'admin',
      response: z.object({
        at: z.string(),
        totals: z.array(z.object({ currency: z.string(), mrr: money, subscriptions: z.number() })),
        byPlan: z.array(z.object({ planId: z.string(), currency: z.string(), subscriptions: z.number(), recurringFee: money, mrr: money })),
      }),
      handle: async () => {
        const report = await billing.mrrReport(catalog(), clock.now());
        return {
          status: 200,
          body: {
            at: new Date(report.at).toISOString(),
            totals: report.totals.map((total) => ({ ...total, mrr: formatMajor(total.mrr, total.currency) })),
            byPlan: report.byPlan.map((plan) => ({
              ...plan,
              recurringFee: formatMajor(plan.recurringFee, plan.currency),
              mrr: formatMajor(plan.mrr, plan.currency),
            })),
          },
        };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/billing/run',
      operationId: 'runBilling',
      summary: 'Run a rating pass now: refresh drafts, finalize ended periods, settle wallets (if this replica leads)',
      tag: 'billing',
      auth: 'admin',
      response: z.object({ led: z.boolean(), rated: z.number(), finalized: z.number(), wallets: z.number() }),
      handle: async () => {
        const run = await ratingLoop.runOnce();
        return { status: 200, body: run ? { led: true, ...run } : { led: false, rated: 0, finalized: 0, wallets: 0 } };
      },
    }),
  ];
}

const iso = (ms: number) => new Date(ms).toISOString();

function invoiceView(invoice: StoredInvoice) {
  const { currency } = invoice;
  return {
    id: invoice.id,
    customerId: invoice.customerId,
    subscriptionId: invoice.subscriptionId,
    productId: invoice.productId,
    planId: invoice.planId,
    periodStart: iso(invoice.periodStart),
    periodEnd: iso(invoice.periodEnd),
    currency,
    mode: invoice.mode,
    status: invoice.status,
    total: formatMajor(invoice.total, currency),
    revenueShare: formatMajor(invoice.revenueShare, currency),
    calls: Number(invoice.calls),
    units: Number(invoice.units),
    ratedAt: iso(invoice.ratedAt),
    finalizedAt: invoice.finalizedAt === null ? null : iso(invoice.finalizedAt),
  };
}

function invoiceDetailView(invoice: StoredInvoiceDetail) {
  const lineOf = (line: InvoiceLine) => lineView(line, invoice.currency);
  return {
    ...invoiceView(invoice),
    lines: invoice.lines.filter((line) => line.kind !== 'revenue_share').map(lineOf),
    revenueShareLines: invoice.lines.filter((line) => line.kind === 'revenue_share').map(lineOf),
    usage: invoice.usage.map((usage) => ({ endpointId: usage.endpointId, calls: Number(usage.calls), units: Number(usage.units) })),
  };
}

function lineView(line: InvoiceLine, currency: CurrencyCode) {
  return {
    planId: line.plan_id,
    kind: line.kind,
    description: line.description,
    quantity: line.quantity,
    unitPrice: line.unit_price === null ? null : formatDecimal(line.unit_price, currency),
    amount: formatMajor(line.amount, currency),
    billed: line.billed,
    ...(line.endpoint_id !== undefined && { endpointId: line.endpoint_id }),
    ...(line.partner !== undefined && { partner: line.partner }),
    ...(line.percent !== undefined && { percent: line.percent }),
    ...(line.proration && {
      proration: { activeFrom: iso(line.proration.active_from), activeUntil: iso(line.proration.active_until), ratio: line.proration.ratio },
    }),
    ...(line.tiers && {
      tiers: line.tiers.map((tier) => ({ upTo: tier.up_to, quantity: tier.quantity, unitPrice: formatDecimal(tier.unit_price, currency), amount: formatDecimal(tier.amount, currency) })),
    }),
  };
}

function walletView(wallet: WalletSummary) {
  const { currency } = wallet;
  return {
    currency,
    balance: formatMajor(wallet.balance, currency),
    available: wallet.spendableMicros === undefined ? null : formatMicros(wallet.spendableMicros, currency),
    lowBalanceThreshold: formatMajor(wallet.lowBalanceThreshold, currency),
    lowBalance: wallet.lowBalance,
    exhausted: wallet.exhausted,
  };
}

function entryView(entry: WalletEntry) {
  return {
    id: entry.id,
    currency: entry.currency,
    kind: entry.kind,
    amount: formatMajor(entry.amount, entry.currency),
    balanceAfter: formatMajor(entry.balanceAfter, entry.currency),
    reference: entry.reference,
    description: entry.description,
    subscriptionId: entry.subscriptionId,
    periodStart: entry.periodStart === null ? null : iso(entry.periodStart),
    occurredAt: iso(entry.occurredAt),
  };
}

function groupView(group: RevenueGroup) {
  return {
    id: group.id,
    currency: group.currency,
    revenue: formatMajor(group.revenue, group.currency),
    revenueShare: formatMajor(group.revenueShare, group.currency),
    calls: Number(group.calls),
    units: Number(group.units),
  };
}
