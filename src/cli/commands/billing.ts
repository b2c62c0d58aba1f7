/** Purchases, wallets, invoices, the pricing calculator, revenue reports and the rating loop. */
import { segment, wholeNumber, type CommandSpec } from '../command.js';
import { describe, fields, money, period, sections, table, when, type Column } from '../output.js';

interface Line {
  kind: string;
  description: string;
  quantity: string;
  unitPrice: string | null;
  amount: string;
}
interface Invoice {
  id: string;
  customerId: string;
  subscriptionId: string;
  planId: string;
  periodStart: string;
  periodEnd: string;
  currency: string;
  mode: string;
  status: string;
  total: string;
  calls: number;
  units: number;
  finalizedAt: string | null;
}
interface InvoiceDetail extends Invoice {
  lines: Line[];
}
export interface Wallet {
  currency: string;
  balance: string;
  available: string | null;
  lowBalanceThreshold: string;
  lowBalance: boolean;
  exhausted: boolean;
}
interface Entry {
  currency: string;
  kind: string;
  amount: string;
  balanceAfter: string;
  reference: string;
  description: string;
  occurredAt: string;
}
interface Group {
  id: string;
  currency: string;
  revenue: string;
  revenueShare: string;
  calls: number;
  units: number;
}

const lineTable = (lines: Line[]) =>
  table(lines, [
    { header: 'description', value: (line) => line.description },
    { header: 'quantity', value: (line) => line.quantity, right: true },
    { header: 'unit price', value: (line) => line.unitPrice, right: true },
    { header: 'amount', value: (line) => line.amount, right: true },
  ]);

const invoiceView = (invoice: InvoiceDetail) =>
  sections(
    fields([
      ['invoice', invoice.id],
      ['customer', invoice.customerId],
      ['subscription', invoice.subscriptionId],
      ['plan', `${invoice.planId} (${invoice.mode})`],
      ['period', period(invoice.periodStart, invoice.periodEnd)],
      ['status', invoice.status],
      ['finalized', invoice.finalizedAt === null ? undefined : when(invoice.finalizedAt)],
      ['calls', invoice.calls],
      ['units', invoice.units],
      ['total', money(invoice.total, invoice.currency)],
    ]),
    invoice.lines.length > 0 ? lineTable(invoice.lines) : undefined,
  );

export const walletTable = (wallets: Wallet[]) =>
  table(
    wallets,
    [
      { header: 'currency', value: (wallet) => wallet.currency },
      { header: 'balance', value: (wallet) => wallet.balance, right: true },
      { header: 'available', value: (wallet) => wallet.available, right: true },
      { header: 'low below', value: (wallet) => wallet.lowBalanceThreshold, right: true },
      { header: 'state', value: (wallet) => (wallet.exhausted ? 'exhausted' : wallet.lowBalance ? 'low' : 'ok') },
    ],
    'No wallet yet: tollgate wallet top-up --customer ID --amount 50.00 --reference REF',
  );

const groupColumns = (what: string): Column<Group>[] => [
  { header: what, value: (group) => group.id },
  { header: 'revenue', value: (group) => money(group.revenue, group.currency), right: true },
  { header: 'revenue share', value: (group) => money(group.revenueShare, group.currency), right: true },
  { header: 'calls', value: (group) => group.calls, right: true },
  { header: 'units', value: (group) => group.units, right: true },
];

const customerOption = { customer: { type: 'string', value: 'ID', help: 'the customer', required: true } } as const;
const amountHelp = "in major units, e.g. 50.00 (no more decimals than the currency's)";
const currencyHelp = "ISO code, e.g. USD; left out: the customer's only wallet's, or the catalog's only currency";

export const billingCommands: CommandSpec[] = [
  {
    name: 'purchase',
    summary: 'subscribe to a plan; a prepaid one charges its setup and first fee to the wallet',
    options: {
      ...customerOption,
      plan: { type: 'string', value: 'PLAN', help: 'the plan', required: true },
      anchor: { type: 'string', value: 'ISO_DATETIME', help: 'the billing day, e.g. 2026-12-01T00:00:00Z (default: now)' },
    },
    run: async (c) => {
      const body = { plan: c.need('plan'), periodAnchor: c.option('anchor') };
      const purchase = await c.api().call<{ subscription: { id: string; planId: string }; invoice: InvoiceDetail | null; wallets: Wallet[] }>(
        'POST',
        `/v1/customers/${segment(c.need('customer'))}/purchases`,
        body,
      );
      c.show(purchase, ({ subscription, invoice, wallets }) =>
        sections(
          fields([
            ['subscription', subscription.id],
            ['plan', subscription.planId],
            ['invoice', invoice ? `${invoice.id} (${invoice.status}): ${money(invoice.total, invoice.currency)}` : undefined],
          ]),
          wallets.length > 0 ? walletTable(wallets) : undefined,
        ),
      );
      return 0;
    },
  },
  {
    name: 'wallet top-up',
    summary: 'credit a prepaid wallet, once per reference (money received elsewhere)',
    details: 'The same reference again credits nothing and shows the first top-up. To have the customer pay by card, use tollgate stripe top-up.',
    options: {
      ...customerOption,
      amount: { type: 'string', value: '50.00', help: amountHelp, required: true },
      reference: { type: 'string', value: 'REF', help: 'your reference for this payment, e.g. an order number', required: true },
      currency: { type: 'string', value: 'CODE', help: currencyHelp },
    },
    run: async (c) => {
      const body = { amount: c.need('amount'), reference: c.need('reference'), currency: c.option('currency')?.toUpperCase() };
      const topUp = await c.api().call<{ entry: Entry; wallet: Wallet }>('POST', `/v1/customers/${segment(c.need('customer'))}/wallet/top-ups`, body);
      c.show(topUp, ({ entry, wallet }) =>
        fields([
          ['credited', money(entry.amount, entry.currency)],
          ['reference', entry.reference],
          ['balance', money(wallet.balance, wallet.currency)],
        ]),
      );
      return 0;
    },
  },
  {
    name: 'wallet show',
    summary: "a customer's wallets and their ledger",
    options: customerOption,
    run: async (c) => {
      const customer = segment(c.need('customer'));
      const wallets = await c.api().call<{ data: Wallet[] }>('GET', `/v1/customers/${customer}/wallet`);
      const ledger = await c.api().call<{ data: Entry[] }>('GET', `/v1/customers/${customer}/wallet/ledger`);
      c.show({ wallets, ledger }, () =>
        sections(
          walletTable(wallets.data),
          ledger.data.length > 0
            ? [
                'Ledger',
                table(ledger.data, [
                  { header: 'when', value: (entry) => when(entry.occurredAt) },
                  { header: 'kind', value: (entry) => entry.kind },
                  { header: 'amount', value: (entry) => money(entry.amount, entry.currency), right: true },
                  { header: 'balance', value: (entry) => entry.balanceAfter, right: true },
                  { header: 'description', value: (entry) => entry.description },
                ]),
              ]
            : undefined,
        ),
      );
      return 0;
    },
  },
  {
    name: 'invoices list',
    summary: "a customer's invoices: drafts with running amounts, and finalized ones",
    options: { ...customerOption, status: { type: 'string', value: 'draft|finalized', help: 'only these' } },
    run: async (c) => {
      const query = c.option('status') ? `?status=${segment(c.option('status')!)}` : '';
      c.show(await c.api().call<{ data: Invoice[] }>('GET', `/v1/customers/${segment(c.need('customer'))}/invoices${query}`), ({ data }) =>
        table(
          data,
          [
            { header: 'id', value: (invoice) => invoice.id },
            { header: 'plan', value: (invoice) => invoice.planId },
            { header: 'period', value: (invoice) => period(invoice.periodStart, invoice.periodEnd) },
            { header: 'status', value: (invoice) => invoice.status },
            { header: 'calls', value: (invoice) => invoice.calls, right: true },
            { header: 'total', value: (invoice) => money(invoice.total, invoice.currency), right: true },
          ],
          'No invoices yet: the rating loop drafts them within TOLLGATE_BILLING_INTERVAL_MS (tollgate billing run does it now).',
        ),
      );
      return 0;
    },
  },
  {
    name: 'invoices show',
    args: ['INVOICE_ID'],
    summary: 'an invoice with its lines',
    run: async (c) => {
      c.show(await c.api().call<InvoiceDetail>('GET', `/v1/invoices/${segment(c.args[0]!)}`), invoiceView);
      return 0;
    },
  },
  {
    name: 'quote',
    summary: 'the bill of one whole period of a plan with N calls',
    options: {
      plan: { type: 'string', value: 'PLAN', help: 'the plan', required: true },
      calls: { type: 'string', value: 'N', help: 'calls in the period', required: true },
      'setup-fee': { type: 'boolean', help: 'include the setup fee (a first period)' },
    },
    run: async (c) => {
      const query = new URLSearchParams({ calls: String(wholeNumber(c.need('calls'), 'calls')), include_setup_fee: String(c.flag('setup-fee')) });
      const quote = await c.api().call<{ planId: string; currency: string; calls: number; total: string; lines: Line[] }>(
        'GET',
        `/v1/plans/${segment(c.need('plan'))}/quote?${query}`,
      );
      c.show(quote, ({ planId, calls, total, currency, lines }) =>
        sections(fields([['plan', planId], ['calls', calls], ['total', money(total, currency)]]), lines.length > 0 ? lineTable(lines) : undefined),
      );
      return 0;
    },
  },
  {
    name: 'report revenue',
    summary: 'revenue, usage and revenue share by product, plan and customer',
    options: { period: { type: 'string', value: 'YYYY-MM', help: 'the month the billing periods start in', required: true } },
    run: async (c) => {
      const report = await c.api().call<{ period: string; invoices: number; drafts: number; totals: Group[]; byProduct: Group[]; byPlan: Group[]; byCustomer: Group[] }>(
        'GET',
        `/v1/reports/revenue?period=${segment(c.need('period'))}`,
      );
      c.show(report, (r) =>
        sections(
          fields([['period', r.period], ['invoices', r.invoices], ['of them drafts', r.drafts]]),
          ['Totals', table(r.totals, [{ header: 'currency', value: (group) => group.currency }, ...groupColumns('').slice(1)])],
          ['By product', table(r.byProduct, groupColumns('product'))],
          ['By plan', table(r.byPlan, groupColumns('plan'))],
          ['By customer', table(r.byCustomer, groupColumns('customer'))],
        ),
      );
      return 0;
    },
  },
  {
    name: 'report mrr',
    summary: 'monthly recurring revenue of the active subscriptions',
    run: async (c) => {
      const report = await c.api().call<{ at: string; totals: { currency: string; mrr: string; subscriptions: number }[]; byPlan: { planId: string; currency: string; subscriptions: number; recurringFee: string; mrr: string }[] }>(
        'GET',
        '/v1/reports/mrr',
      );
      c.show(report, (r) =>
        sections(
          fields([['at', when(r.at)]]),
          table(
            r.totals,
            [
              { header: 'mrr', value: (total) => money(total.mrr, total.currency), right: true },
              { header: 'subscriptions', value: (total) => total.subscriptions, right: true },
            ],
            'No recurring revenue.',
          ),
          r.byPlan.length > 0
            ? [
                'By plan',
                table(r.byPlan, [
                  { header: 'plan', value: (plan) => plan.planId },
                  { header: 'subscriptions', value: (plan) => plan.subscriptions, right: true },
                  { header: 'fee', value: (plan) => money(plan.recurringFee, plan.currency), right: true },
                  { header: 'mrr', value: (plan) => money(plan.mrr, plan.currency), right: true },
                ]),
              ]
            : undefined,
        ),
      );
      return 0;
    },
  },
  {
    name: 'report business',
    summary: 'MRR, paying customers, churn, conversion, activation and retention of a month',
    options: { period: { type: 'string', value: 'YYYY-MM', help: 'the month (default: this one, up to now)' } },
    run: async (c) => {
      const query = c.option('period') ? `?period=${segment(c.option('period')!)}` : '';
      c.show(await c.api().call<Record<string, unknown>>('GET', `/v1/reports/business${query}`), describe);
      return 0;
    },
  },
  {
    name: 'billing run',
    summary: 'rate now: refresh drafts, finalize ended periods, settle wallets',
    run: async (c) => {
      c.show(await c.api().call<{ led: boolean; rated: number; finalized: number; wallets: number }>('POST', '/v1/billing/run'), (run) =>
        run.led
          ? fields([['drafts rated', run.rated], ['finalized', run.finalized], ['wallets settled', run.wallets]])
          : 'Another replica leads the rating loop; it rates on its own schedule.',
      );
      return 0;
    },
  },
];
