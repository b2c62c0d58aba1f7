/** Customers, subscriptions, API keys, OAuth clients and the plans they subscribe to. */
import { Decimal } from '../../kernel/index.js';
import { segment, UsageError, type CommandSpec } from '../command.js';
import { describe, fields, table, when } from '../output.js';

interface Customer {
  id: string;
  name: string;
  email: string | null;
  status: string;
  statusReason: string | null;
  createdAt: string;
}
interface Subscription {
  id: string;
  customerId: string;
  planId: string;
  status: string;
  startedAt: string;
  periodAnchor: string;
  canceledAt: string | null;
}
interface ApiKey {
  id: string;
  customerId: string;
  subscriptionId: string;
  name: string | null;
  prefix: string;
  status: string;
  createdAt: string;
  revokedAt: string | null;
}
interface Plan {
  id: string;
  name: string;
  entitlements: string[];
  rateLimits: { requests: number; windowSeconds: number; scope: string }[];
  quota?: { units: number; whenExhausted: string };
  pricing?: PlanPricing;
}
export interface PlanPricing {
  currency: string;
  mode: 'postpaid' | 'prepaid';
  setupFee?: string;
  recurringFee?: string;
  minimumCommitment?: string;
  usage?: { model: string; includedUnits: number; unitPrice?: string; packageSize?: number; packagePrice?: string; tiers?: { upTo: number | null; unitPrice: string }[] };
  endpointPrices?: Record<string, string>;
}

const customerView = (customer: Customer) =>
  fields([
    ['id', customer.id],
    ['name', customer.name],
    ['email', customer.email],
    ['status', customer.status],
    ['status reason', customer.status === 'active' ? undefined : customer.statusReason],
    ['created', when(customer.createdAt)],
  ]);

const subscriptionView = (subscription: Subscription) =>
  fields([
    ['id', subscription.id],
    ['customer', subscription.customerId],
    ['plan', subscription.planId],
    ['status', subscription.status],
    ['started', when(subscription.startedAt)],
    ['period anchor', when(subscription.periodAnchor)],
    ['canceled', subscription.canceledAt === null ? undefined : when(subscription.canceledAt)],
  ]);

const keyView = (key: ApiKey) =>
  fields([
    ['id', key.id],
    ['customer', key.customerId],
    ['subscription', key.subscriptionId],
    ['name', key.name],
    ['prefix', `${key.prefix}…`],
    ['status', key.status],
    ['created', when(key.createdAt)],
    ['revoked', key.revokedAt === null ? undefined : when(key.revokedAt)],
  ]);

/** What a plan costs, in one line: "49.00 USD/month + 0.005 USD/unit over 10000". */
export function priceSummary(pricing: PlanPricing | undefined): string {
  if (!pricing) return '-';
  const { currency } = pricing;
  const parts: string[] = [];
  if (pricing.recurringFee) parts.push(`${pricing.recurringFee} ${currency}/month`);
  const usage = pricing.usage;
  if (usage) {
    const over = usage.includedUnits > 0 ? ` over ${usage.includedUnits}` : '';
    if (usage.unitPrice) parts.push(`${usage.unitPrice} ${currency}/unit${over}`);
    else if (usage.packagePrice) parts.push(`${usage.packagePrice} ${currency} per ${usage.packageSize} units${over}`);
    else if (usage.tiers) parts.push(`${usage.model} from ${usage.tiers[0]!.unitPrice} ${currency}/unit${over}`);
  }
  const calls = Object.values(pricing.endpointPrices ?? {});
  if (calls.length > 0) {
    const sorted = [...calls].sort((a, b) => new Decimal(a).comparedTo(b));
    parts.push(`${sorted[0] === sorted.at(-1) ? sorted[0] : `${sorted[0]}–${sorted.at(-1)}`} ${currency}/call`);
  }
  if (pricing.setupFee) parts.push(`setup ${pricing.setupFee} ${currency}`);
  const price = parts.length > 0 ? parts.join(' + ') : `free (${currency})`;
  return pricing.mode === 'prepaid' ? `prepaid: ${price}` : price;
}

const windowText = (seconds: number) => (seconds % 86_400 === 0 ? `${seconds / 86_400}d` : seconds % 3600 === 0 ? `${seconds / 3600}h` : seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`);

const customerOption = { customer: { type: 'string', value: 'ID', help: 'the customer', required: true } } as const;

export const accountCommands: CommandSpec[] = [
  {
    name: 'customers create',
    summary: 'create a customer',
    options: {
      name: { type: 'string', value: 'NAME', help: 'the customer\'s name', required: true },
      id: { type: 'string', value: 'ID', help: 'its id (letters, digits, ".", "_", "-"); generated if left out' },
      email: { type: 'string', value: 'EMAIL', help: 'where the customer is reached' },
    },
    run: async (c) => {
      c.show(await c.api().call<Customer>('POST', '/v1/customers', { name: c.need('name'), id: c.option('id'), email: c.option('email') }), customerView);
      return 0;
    },
  },
  {
    name: 'customers list',
    summary: 'list the customers',
    run: async (c) => {
      c.show(await c.api().call<{ data: Customer[] }>('GET', '/v1/customers'), ({ data }) =>
        table(
          data,
          [
            { header: 'id', value: (customer) => customer.id },
            { header: 'name', value: (customer) => customer.name },
            { header: 'email', value: (customer) => customer.email },
            { header: 'status', value: (customer) => customer.status },
            { header: 'created', value: (customer) => when(customer.createdAt) },
          ],
          'No customers yet: tollgate customers create --name NAME',
        ),
      );
      return 0;
    },
  },
  {
    name: 'customers get',
    args: ['ID'],
    summary: 'show a customer',
    run: async (c) => {
      c.show(await c.api().call<Customer>('GET', `/v1/customers/${segment(c.args[0]!)}`), customerView);
      return 0;
    },
  },
  {
    name: 'customers suspend',
    args: ['ID'],
    summary: 'suspend a customer: every Check answers 402 until it is activated',
    details: 'The customer is told the API provider suspended the account; the reason is for operators and is not shown to them.',
    options: { reason: { type: 'string', value: 'TEXT', help: 'why, for operators (default: "suspended by operator")' } },
    run: async (c) => {
      const body = { status: 'suspended', statusReason: c.option('reason') ?? 'suspended by operator' };
      c.show(await c.api().call<Customer>('PATCH', `/v1/customers/${segment(c.args[0]!)}`, body), customerView);
      return 0;
    },
  },
  {
    name: 'customers activate',
    args: ['ID'],
    summary: 'lift a suspension',
    run: async (c) => {
      c.show(await c.api().call<Customer>('PATCH', `/v1/customers/${segment(c.args[0]!)}`, { status: 'active', statusReason: null }), customerView);
      return 0;
    },
  },
  {
    name: 'customers export',
    args: ['ID'],
    summary: 'everything held about a customer, as JSON',
    json: 'always',
    run: async (c) => {
      c.show(await c.api().call('GET', `/v1/customers/${segment(c.args[0]!)}/export`), (document) => JSON.stringify(document, null, 2));
      return 0;
    },
  },
  {
    name: 'customers erase',
    args: ['ID'],
    summary: "erase a customer's personal data for good",
    details: 'Keys are destroyed, personal fields and per-request usage deleted; invoices, rollups and the ledger are kept. It cannot be undone.',
    options: { confirm: { type: 'boolean', help: 'yes, erase it (required)' } },
    run: async (c) => {
      const id = c.args[0]!;
      if (!c.flag('confirm')) throw new UsageError(`erasing ${id} cannot be undone: add --confirm`);
      c.show(await c.api().call<Record<string, unknown>>('POST', `/v1/customers/${segment(id)}/erase`), describe);
      return 0;
    },
  },
  {
    name: 'subscriptions list',
    summary: "list a customer's subscriptions",
    options: customerOption,
    run: async (c) => {
      c.show(await c.api().call<{ data: Subscription[] }>('GET', `/v1/customers/${segment(c.need('customer'))}/subscriptions`), ({ data }) =>
        table(
          data,
          [
            { header: 'id', value: (subscription) => subscription.id },
            { header: 'plan', value: (subscription) => subscription.planId },
            { header: 'status', value: (subscription) => subscription.status },
            { header: 'started', value: (subscription) => when(subscription.startedAt) },
            { header: 'canceled', value: (subscription) => when(subscription.canceledAt) },
          ],
          'No subscriptions.',
        ),
      );
      return 0;
    },
  },
  {
    name: 'subscriptions create',
    summary: 'subscribe a customer to a plan',
    options: { ...customerOption, plan: { type: 'string', value: 'PLAN', help: 'the plan (tollgate plans list)', required: true } },
    run: async (c) => {
      c.show(await c.api().call<Subscription>('POST', `/v1/customers/${segment(c.need('customer'))}/subscriptions`, { plan: c.need('plan') }), subscriptionView);
      return 0;
    },
  },
  {
    name: 'subscriptions change-plan',
    args: ['SUBSCRIPTION_ID'],
    summary: 'move a subscription to another plan of the same product (prorated)',
    options: { plan: { type: 'string', value: 'PLAN', help: 'the new plan', required: true } },
    run: async (c) => {
      c.show(await c.api().call<Subscription>('POST', `/v1/subscriptions/${segment(c.args[0]!)}/change-plan`, { plan: c.need('plan') }), subscriptionView);
      return 0;
    },
  },
  {
    name: 'subscriptions cancel',
    args: ['SUBSCRIPTION_ID'],
    summary: 'cancel a subscription; its keys stop working',
    run: async (c) => {
      c.show(await c.api().call<Subscription>('POST', `/v1/subscriptions/${segment(c.args[0]!)}/cancel`), subscriptionView);
      return 0;
    },
  },
  {
    name: 'portal link',
    summary: "a single-use sign-in link to the developer portal for the customer; printed on the last line",
    details: 'Send it to the customer yourself: it holds a secret and expires (TOLLGATE_PORTAL_LINK_TTL_MS). The portal must be on (TOLLGATE_PORTAL_PORT).',
    options: customerOption,
    run: async (c) => {
      const link = await c.api().call<{ customerId: string; url: string; expiresAt: string }>('POST', `/v1/customers/${segment(c.need('customer'))}/portal-links`);
      c.show(link, ({ customerId, url, expiresAt }) => [`Sign-in link for ${customerId}, single use, until ${when(expiresAt)}:`, url].join('\n'));
      return 0;
    },
  },
  {
    name: 'keys create',
    summary: 'create an API key; it is printed once, on the last line',
    synopsis: '--customer ID (--plan PLAN | --subscription ID) [--name NAME] [--app APP] [--json]',
    details: 'With --plan the customer is subscribed to the plan first unless already subscribed to it.',
    options: {
      ...customerOption,
      plan: { type: 'string', value: 'PLAN', help: 'the plan the key calls on' },
      subscription: { type: 'string', value: 'ID', help: 'or an existing subscription' },
      name: { type: 'string', value: 'NAME', help: 'a name to tell keys apart' },
      app: { type: 'string', value: 'APP', help: 'the application it belongs to' },
    },
    run: async (c) => {
      if (c.option('plan') === undefined && c.option('subscription') === undefined) throw new UsageError('give --plan or --subscription');
      const created = await c.api().call<{ key: string; apiKey: ApiKey }>('POST', '/v1/keys', {
        customer: c.need('customer'),
        plan: c.option('plan'),
        subscription: c.option('subscription'),
        name: c.option('name'),
        app: c.option('app'),
      });
      c.show(created, ({ key, apiKey }) =>
        [
          `Created key ${apiKey.id} (${apiKey.prefix}…, ${apiKey.status}) on subscription ${apiKey.subscriptionId}.`,
          'Store the key now: it is not shown again.',
          key,
        ].join('\n'),
      );
      return 0;
    },
  },
  {
    name: 'keys list',
    summary: "list a customer's API keys (prefixes only)",
    options: customerOption,
    run: async (c) => {
      c.show(await c.api().call<{ data: ApiKey[] }>('GET', `/v1/keys?customer=${segment(c.need('customer'))}`), ({ data }) =>
        table(
          data,
          [
            { header: 'id', value: (key) => key.id },
            { header: 'prefix', value: (key) => `${key.prefix}…` },
            { header: 'name', value: (key) => key.name },
            { header: 'status', value: (key) => key.status },
            { header: 'subscription', value: (key) => key.subscriptionId },
            { header: 'created', value: (key) => when(key.createdAt) },
          ],
          'No keys.',
        ),
      );
      return 0;
    },
  },
  {
    name: 'keys revoke',
    args: ['KEY_ID'],
    summary: 'revoke an API key; the Check rejects it within a second',
    run: async (c) => {
      c.show(await c.api().call<ApiKey>('POST', `/v1/keys/${segment(c.args[0]!)}/revoke`), keyView);
      return 0;
    },
  },
  {
    name: 'keys approve',
    args: ['KEY_ID'],
    summary: 'approve a key of a product with manual approval',
    run: async (c) => {
      c.show(await c.api().call<ApiKey>('POST', `/v1/keys/${segment(c.args[0]!)}/approve`), keyView);
      return 0;
    },
  },
  {
    name: 'oauth-clients register',
    summary: "bill bearer JWTs whose client claim is CLIENT like an API key",
    synopsis: '--customer ID --client-id CLIENT (--plan PLAN | --subscription ID) [--name NAME] [--json]',
    options: {
      ...customerOption,
      'client-id': { type: 'string', value: 'CLIENT', help: "the token's client claim (azp or client_id)", required: true },
      plan: { type: 'string', value: 'PLAN', help: 'the plan its calls count on' },
      subscription: { type: 'string', value: 'ID', help: 'or an existing subscription' },
      name: { type: 'string', value: 'NAME', help: 'a name to tell it apart' },
    },
    run: async (c) => {
      if (c.option('plan') === undefined && c.option('subscription') === undefined) throw new UsageError('give --plan or --subscription');
      const body = { customer: c.need('customer'), clientId: c.need('client-id'), plan: c.option('plan'), subscription: c.option('subscription'), name: c.option('name') };
      c.show(await c.api().call<ApiKey>('POST', '/v1/oauth-clients', body), keyView);
      return 0;
    },
  },
  {
    name: 'plans list',
    summary: 'the public plans, with their prices and limits',
    run: async (c) => {
      c.show(await c.api().call<{ data: Plan[] }>('GET', '/v1/plans'), ({ data }) =>
        table(
          data,
          [
            { header: 'id', value: (plan) => plan.id },
            { header: 'name', value: (plan) => plan.name },
            { header: 'price', value: (plan) => priceSummary(plan.pricing) },
            { header: 'quota', value: (plan) => (plan.quota ? `${plan.quota.units} units/month` : undefined), right: true },
            { header: 'rate limits', value: (plan) => plan.rateLimits.map((limit) => `${limit.requests}/${windowText(limit.windowSeconds)}`).join(', ') },
          ],
          'The catalog has no public plans.',
        ),
      );
      return 0;
    },
  },
];
