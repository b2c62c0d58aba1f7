/** The Stripe sync's outbox and dead letters, reconciliation, and wallet top-ups through Stripe Checkout. */
import { type CurrencyCode, formatMajor, isCurrencyCode, parseMajorAmount, TollgateError } from '../../kernel/index.js';
import type { AdminClient } from '../admin-client.js';
import { segment, UsageError, type CommandSpec } from '../command.js';
import { fields, sections, table, when } from '../output.js';
import type { PlanPricing } from './accounts.js';
import type { Wallet } from './billing.js';

interface OutboxItem {
  id: string;
  kind: string;
  subjectId: string;
  status: string;
  attempts: number;
  nextAttemptAt: string;
  lastError: string | null;
}
interface DriftReport {
  customers: Record<string, unknown[]>;
  invoices: Record<string, unknown[]>;
  meters: Record<string, unknown[]>;
  deadLetters: number;
  repaired?: { requeued: number; recorded: number; settled: number };
}
interface TopUp {
  id: string;
  amount: string;
  currency: string;
  status: string;
  checkoutUrl: string | null;
}

const outboxTable = (items: OutboxItem[]) =>
  table(
    items,
    [
      { header: 'id', value: (item) => item.id },
      { header: 'kind', value: (item) => item.kind },
      { header: 'subject', value: (item) => item.subjectId },
      { header: 'status', value: (item) => item.status },
      { header: 'attempts', value: (item) => item.attempts, right: true },
      { header: 'next attempt', value: (item) => (item.status === 'pending' ? when(item.nextAttemptAt) : undefined) },
      { header: 'last error', value: (item) => item.lastError },
    ],
    'Nothing.',
  );

/**
 * The currency of a top-up left without --currency, as the server picks one for wallet top-ups: the customer's only
 * wallet's, else the catalog's only currency.
 */
async function topUpCurrency(api: AdminClient, customer: string): Promise<CurrencyCode> {
  const held = (await api.call<{ data: Wallet[] }>('GET', `/v1/customers/${segment(customer)}/wallet`)).data.map((wallet) => wallet.currency);
  const priced = [...new Set((await api.call<{ data: { pricing?: PlanPricing }[] }>('GET', '/v1/plans')).data.flatMap((plan) => (plan.pricing ? [plan.pricing.currency] : [])))];
  const only = held.length === 1 ? held[0] : priced.length === 1 ? priced[0] : undefined;
  if (!only || !isCurrencyCode(only)) throw new UsageError(`add --currency: ${customer} or the catalog has several currencies`);
  return only;
}

export const stripeCommands: CommandSpec[] = [
  {
    name: 'stripe outbox',
    summary: 'Stripe sync work, newest first',
    options: {
      status: { type: 'string', value: 'pending|done|dead', help: 'only these' },
      kind: { type: 'string', value: 'KIND', help: 'only this kind of work, e.g. invoice.push' },
    },
    run: async (c) => {
      const status = c.option('status');
      const kind = c.option('kind');
      const query = new URLSearchParams({ ...(status ? { status } : {}), ...(kind ? { kind } : {}) });
      c.show(await c.api().call<{ data: OutboxItem[] }>('GET', `/v1/stripe/outbox?${query}`), ({ data }) => outboxTable(data));
      return 0;
    },
  },
  {
    name: 'stripe dead-letters',
    summary: 'the Stripe work given up on (stripe retry sends it again)',
    run: async (c) => {
      c.show(await c.api().call<{ data: OutboxItem[] }>('GET', '/v1/stripe/outbox?status=dead'), ({ data }) => outboxTable(data));
      return 0;
    },
  },
  {
    name: 'stripe retry',
    args: ['[ITEM_ID]'],
    synopsis: 'ITEM_ID | --all [--json]',
    summary: 'send dead letters back to the Stripe sync',
    options: { all: { type: 'boolean', help: 'every dead letter' } },
    run: async (c) => {
      if (c.flag('all')) {
        if (c.args.length > 0) throw new UsageError('give an ITEM_ID or --all, not both');
        c.show(await c.api().call<{ data: OutboxItem[] }>('POST', '/v1/stripe/dead-letters/retry'), ({ data }) => outboxTable(data));
      } else {
        if (c.args.length === 0) throw new UsageError('give the ITEM_ID of a dead letter (tollgate stripe dead-letters), or --all');
        c.show(await c.api().call<OutboxItem>('POST', `/v1/stripe/outbox/${segment(c.args[0]!)}/retry`), (item) => outboxTable([item]));
      }
      return 0;
    },
  },
  {
    name: 'stripe reconcile',
    summary: "Stripe's customers, invoices and meter totals against ours; exits 1 on drift",
    options: { repair: { type: 'boolean', help: 're-queue what is missing, record what Stripe has, settle what it saw paid' } },
    run: async (c) => {
      const report = await c.api().call<DriftReport>('POST', '/v1/stripe/reconcile', { repair: c.flag('repair') });
      const drift = Object.entries({ customers: report.customers, invoices: report.invoices, meters: report.meters }).flatMap(([area, lists]) =>
        Object.entries(lists).map(([list, found]) => [`${area} ${list.replace(/([A-Z])/g, ' $1').toLowerCase()}`, found.length] as [string, number]),
      );
      const drifted = drift.some(([, count]) => count > 0);
      c.show(report, (r) =>
        sections(
          drifted ? fields(drift.filter(([, count]) => count > 0)) : 'No drift.',
          fields([
            ['dead letters', r.deadLetters],
            ['repaired', r.repaired ? `${r.repaired.requeued} re-queued, ${r.repaired.recorded} recorded, ${r.repaired.settled} settled` : undefined],
          ]),
          drifted && !r.repaired ? 'The lists: tollgate stripe reconcile --json; tollgate stripe reconcile --repair fixes what it can.' : undefined,
        ),
      );
      return drifted && !c.flag('repair') ? 1 : 0;
    },
  },
  {
    name: 'stripe top-up',
    summary: 'a wallet top-up paid through Stripe Checkout; prints the page to pay on',
    options: {
      customer: { type: 'string', value: 'ID', help: 'the customer', required: true },
      amount: { type: 'string', value: '25.00', help: "in major units, e.g. 25.00 (no more decimals than the currency's)", required: true },
      currency: { type: 'string', value: 'CODE', help: "ISO code, e.g. USD; left out: the customer's only wallet's, or the catalog's only currency" },
      'success-url': { type: 'string', value: 'URL', help: 'where Checkout sends the customer once paid', required: true },
      'cancel-url': { type: 'string', value: 'URL', help: 'where Checkout sends a customer who gives up' },
    },
    run: async (c) => {
      const customer = c.need('customer');
      const given = c.option('currency')?.toUpperCase();
      if (given !== undefined && !isCurrencyCode(given)) throw new UsageError(`--currency ${given} is not a currency Tollgate knows`);
      const currency = given ?? (await topUpCurrency(c.api(), customer));
      let amount: bigint;
      try {
        amount = parseMajorAmount(c.need('amount'), currency);
      } catch (error) {
        throw error instanceof TollgateError ? new UsageError(`--amount: ${error.message}`) : error;
      }
      if (amount <= 0n || amount > BigInt(Number.MAX_SAFE_INTEGER)) throw new UsageError(`--amount must be more than 0 and less than ${formatMajor(BigInt(Number.MAX_SAFE_INTEGER), currency)}`);
      const topUp = await c.api().call<TopUp>('POST', `/v1/customers/${segment(customer)}/wallet/checkout-sessions`, {
        amount: Number(amount),
        currency,
        successUrl: c.need('success-url'),
        cancelUrl: c.option('cancel-url'),
      });
      // The API gives Checkout amounts in minor units; people read major ones.
      const major = `${formatMajor(BigInt(topUp.amount), currency)} ${currency}`;
      c.show(topUp, (t) =>
        [
          `Top-up ${t.id} of ${major} is ${t.status}; the wallet is credited once it is paid at:`,
          t.checkoutUrl ?? `(not open yet: Tollgate asks Stripe again shortly; see GET /v1/stripe/top-ups/${t.id})`,
        ].join('\n'),
      );
      return 0;
    },
  },
];
