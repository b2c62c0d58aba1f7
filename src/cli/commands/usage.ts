/** Metered usage and usage alerts. */
import { segment, type CommandSpec } from '../command.js';
import { fields, period, sections, table, when } from '../output.js';

interface Totals {
  calls: number;
  units: number;
  billableCalls: number;
  billableUnits: number;
  deniedCalls: number;
  requestBytes: number;
  responseBytes: number;
}
interface SubscriptionUsage {
  subscriptionId: string;
  planId: string;
  status: string;
  period: { start: string; end: string };
  totals: Totals;
  endpoints: (Totals & { endpointId: string | null })[];
  quota: { limit: number; used: number; remaining: number } | null;
}
interface Delivery {
  id: string;
  customerId: string;
  type: string;
  status: string;
  attempts: number;
  nextAttemptAt: string;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: string | null;
}
interface AlertEntry {
  event: { id: string; type: string; created_at: string; plan: string; threshold: Record<string, string | number>; current: Record<string, string | number> };
  delivery: { id: string; status: string; attempts: number } | null;
}

const subscriptionUsage = (usage: SubscriptionUsage) =>
  sections([
    `Subscription ${usage.subscriptionId}: plan ${usage.planId} (${usage.status}), period ${period(usage.period.start, usage.period.end)}`,
    sections(
      fields([
        ['calls', usage.totals.calls],
        ['units', usage.totals.units],
        ['billable calls', usage.totals.billableCalls],
        ['billable units', usage.totals.billableUnits],
        ['denied calls', usage.totals.deniedCalls],
        ['quota', usage.quota ? `${usage.quota.remaining} of ${usage.quota.limit} units left` : undefined],
      ]),
      usage.endpoints.length > 0
        ? table(usage.endpoints, [
            { header: 'endpoint', value: (endpoint) => endpoint.endpointId ?? '(none)' },
            { header: 'calls', value: (endpoint) => endpoint.calls, right: true },
            { header: 'units', value: (endpoint) => endpoint.units, right: true },
            { header: 'billable', value: (endpoint) => endpoint.billableCalls, right: true },
            { header: 'denied', value: (endpoint) => endpoint.deniedCalls, right: true },
          ])
        : undefined,
    ),
  ]);

const deliveryTable = (deliveries: Delivery[]) =>
  table(
    deliveries,
    [
      { header: 'id', value: (delivery) => delivery.id },
      { header: 'customer', value: (delivery) => delivery.customerId },
      { header: 'type', value: (delivery) => delivery.type },
      { header: 'status', value: (delivery) => delivery.status },
      { header: 'attempts', value: (delivery) => delivery.attempts, right: true },
      { header: 'last answer', value: (delivery) => delivery.lastStatusCode ?? delivery.lastError },
      { header: 'next attempt', value: (delivery) => (delivery.status === 'pending' ? when(delivery.nextAttemptAt) : undefined) },
    ],
    'No deliveries.',
  );

const facts = (values: Record<string, string | number>) =>
  Object.entries(values)
    .map(([name, value]) => `${name.replace(/_/g, ' ')} ${value}`)
    .join(', ');

const customerOption = { customer: { type: 'string', value: 'ID', help: 'the customer', required: true } } as const;

export const usageCommands: CommandSpec[] = [
  {
    name: 'usage',
    summary: "a customer's metered usage per subscription over a billing period",
    details: 'Usage is what the access log reported (Envoy, or tollgate check --meter), written within TOLLGATE_USAGE_FLUSH_MS (1 s).',
    options: {
      ...customerOption,
      period: { type: 'string', value: 'YYYY-MM', help: 'the billing period starting in that month (default: the current one)' },
    },
    run: async (c) => {
      const query = c.option('period') ? `?period=${segment(c.option('period')!)}` : '';
      c.show(await c.api().call<{ customerId: string; subscriptions: SubscriptionUsage[] }>('GET', `/v1/customers/${segment(c.need('customer'))}/usage${query}`), (usage) =>
        usage.subscriptions.length > 0 ? sections(...usage.subscriptions.map(subscriptionUsage)) : `${usage.customerId} has no subscriptions.`,
      );
      return 0;
    },
  },
  {
    name: 'usage reconcile',
    summary: "the Check's quota counters of the current period against the metered units",
    options: customerOption,
    run: async (c) => {
      const report = await c.api().call<{ pendingEvents: number; subscriptions: { subscriptionId: string; planId: string; counterUnits: number | null; meteredUnits: number; difference: number | null }[] }>(
        'GET',
        `/v1/customers/${segment(c.need('customer'))}/usage/reconcile`,
      );
      c.show(report, (r) =>
        sections(
          table(
            r.subscriptions,
            [
              { header: 'subscription', value: (row) => row.subscriptionId },
              { header: 'plan', value: (row) => row.planId },
              { header: 'counter', value: (row) => row.counterUnits, right: true },
              { header: 'metered', value: (row) => row.meteredUnits, right: true },
              { header: 'difference', value: (row) => row.difference, right: true },
            ],
            'No subscriptions.',
          ),
          fields([['events not yet written', r.pendingEvents]]),
        ),
      );
      return 0;
    },
  },
  {
    name: 'alerts set-webhook',
    summary: "where a customer's usage alerts are POSTed; prints the signing secret once, on the last line",
    options: { ...customerOption, url: { type: 'string', value: 'URL', help: 'an https URL of the customer', required: true } },
    run: async (c) => {
      const webhook = await c.api().call<{ url: string; secret: string }>('PUT', `/v1/customers/${segment(c.need('customer'))}/alert-webhook`, { url: c.need('url') });
      c.show(webhook, ({ url, secret }) =>
        [`Alerts of ${c.need('customer')} go to ${url}, signed (Tollgate-Signature) with this secret.`, 'Store the secret now: it is not shown again.', secret].join('\n'),
      );
      return 0;
    },
  },
  {
    name: 'alerts webhook',
    summary: "the customer's alert webhook (without its secret)",
    options: customerOption,
    run: async (c) => {
      const webhook = await c.api().call<{ url: string; secretPrefix: string; updatedAt: string }>('GET', `/v1/customers/${segment(c.need('customer'))}/alert-webhook`);
      c.show(webhook, (w) => fields([['url', w.url], ['secret', `${w.secretPrefix}…`], ['updated', when(w.updatedAt)]]));
      return 0;
    },
  },
  {
    name: 'alerts list',
    summary: "the customer's usage alerts, newest first, with their delivery",
    options: customerOption,
    run: async (c) => {
      c.show(await c.api().call<{ data: AlertEntry[] }>('GET', `/v1/customers/${segment(c.need('customer'))}/alerts`), ({ data }) =>
        table(
          data,
          [
            { header: 'when', value: (alert) => when(alert.event.created_at) },
            { header: 'type', value: (alert) => alert.event.type },
            { header: 'plan', value: (alert) => alert.event.plan },
            { header: 'threshold', value: (alert) => facts(alert.event.threshold) },
            { header: 'current', value: (alert) => facts(alert.event.current) },
            { header: 'delivery', value: (alert) => (alert.delivery ? `${alert.delivery.status} (${alert.delivery.attempts} attempts)` : 'no webhook') },
          ],
          'No alerts.',
        ),
      );
      return 0;
    },
  },
  {
    name: 'alerts deliveries',
    summary: 'the alert delivery log: attempts, last answer, next attempt',
    options: {
      customer: { type: 'string', value: 'ID', help: "only this customer's" },
      status: { type: 'string', value: 'pending|delivered|dead', help: 'only these' },
    },
    run: async (c) => {
      const customer = c.option('customer');
      const status = c.option('status');
      const query = new URLSearchParams({ ...(customer ? { customer } : {}), ...(status ? { status } : {}) });
      c.show(await c.api().call<{ data: Delivery[] }>('GET', `/v1/alerts/deliveries?${query}`), ({ data }) => deliveryTable(data));
      return 0;
    },
  },
  {
    name: 'alerts retry',
    args: ['DELIVERY_ID'],
    summary: 'send a dead delivery again',
    run: async (c) => {
      c.show(await c.api().call<Delivery>('POST', `/v1/alerts/deliveries/${segment(c.args[0]!)}/retry`), (delivery) => deliveryTable([delivery]));
      return 0;
    },
  },
];
