import { z } from 'zod';
import type { AccountsService } from '../identity/index.js';
import type { Catalog } from '../catalog/index.js';
import { formatDecimal, formatMajor, parseMajorAmount } from '../kernel/index.js';
import type { RatePlan } from '../rating/index.js';
import { route, type Route } from './router.js';

const idSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-"');
const metadataSchema = z.record(z.string(), z.string().max(500));

const customerSchema = z.object({
  id: z.string(),
  name: z.string(),
  email: z.string().nullable(),
  status: z.enum(['active', 'suspended', 'erased']),
  statusReason: z.string().nullable(),
  metadata: metadataSchema,
  createdAt: z.string(),
});
const subscriptionSchema = z.object({
  id: z.string(),
  customerId: z.string(),
  productId: z.string(),
  planId: z.string(),
  status: z.enum(['active', 'canceled']),
  startedAt: z.string(),
  periodAnchor: z.string(),
  canceledAt: z.string().nullable(),
});
const apiKeySchema = z.object({
  id: z.string(),
  customerId: z.string(),
  appId: z.string(),
  subscriptionId: z.string(),
  name: z.string().nullable(),
  prefix: z.string(),
  status: z.enum(['active', 'pending', 'revoked']),
  createdAt: z.string(),
  revokedAt: z.string().nullable(),
});
const planSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  product: z.string(),
  description: z.string().optional(),
  entitlements: z.array(z.string()),
  rateLimits: z.array(z.object({ requests: z.number(), windowSeconds: z.number(), scope: z.string() })),
  quota: z.object({ units: z.number(), whenExhausted: z.string() }).optional(),
  pricing: z
    .object({
      currency: z.string(),
      mode: z.enum(['postpaid', 'prepaid']),
      setupFee: z.string().optional(),
      recurringFee: z.string().optional().describe('per billing period (a month)'),
      minimumCommitment: z.string().optional(),
      usage: z
        .object({
          model: z.enum(['per_unit', 'package', 'graduated', 'volume']),
          includedUnits: z.number(),
          unitPrice: z.string().optional(),
          packageSize: z.number().optional(),
          packagePrice: z.string().optional(),
          tiers: z.array(z.object({ upTo: z.number().nullable(), unitPrice: z.string() })).optional(),
        })
        .optional(),
      endpointPrices: z.record(z.string(), z.string()).optional().describe('price per call by endpoint id or tag; "*" for the rest'),
      discounts: z.array(z.object({ fromCalls: z.number(), percent: z.number() })).optional(),
    })
    .optional()
    .describe('money in major units with the currency\'s decimals (fees) or more (unit prices)'),
});

/** A plan's prices as the catalog gives them, fees with the currency's decimals ("49" → "49.00"). */
function pricingView(pricing: RatePlan) {
  const { currency } = pricing;
  const fee = (amount: string | undefined) => (amount === undefined ? undefined : formatMajor(parseMajorAmount(amount, currency), currency));
  const price = (amount: string) => formatDecimal(amount, currency);
  const usage = pricing.usage;
  return {
    currency,
    mode: pricing.mode,
    setupFee: fee(pricing.setup_fee),
    recurringFee: fee(pricing.recurring_fee),
    minimumCommitment: fee(pricing.minimum_commitment),
    usage: usage && {
      model: usage.model,
      includedUnits: usage.included_units,
      ...(usage.model === 'per_unit' && { unitPrice: price(usage.unit_price) }),
      ...(usage.model === 'package' && { packageSize: usage.package_size, packagePrice: price(usage.package_price) }),
      ...((usage.model === 'graduated' || usage.model === 'volume') && {
        tiers: usage.tiers.map((tier) => ({ upTo: tier.up_to ?? null, unitPrice: price(tier.unit_price) })),
      }),
    },
    endpointPrices: pricing.endpoint_prices && Object.fromEntries(Object.entries(pricing.endpoint_prices).map(([name, amount]) => [name, price(amount)])),
    discounts: pricing.discounts?.map((discount) => ({ fromCalls: discount.from_calls, percent: discount.percent })),
  };
}

/** Who a new credential (API key or OAuth client) belongs to: its customer and plan, or an existing subscription. */
const credentialOwner = z
  .object({
    customer: z.string().min(1),
    plan: z.string().min(1).optional(),
    subscription: z.string().min(1).optional(),
    name: z.string().max(200).optional(),
    app: z.string().min(1).max(100).optional(),
  })
  .strict();

const hasPlanOrSubscription = (body: { plan?: string | undefined; subscription?: string | undefined }) =>
  body.plan !== undefined || body.subscription !== undefined;
const planOrSubscriptionRequired = { message: 'plan or subscription is required', path: ['plan'] };

const credentialInput = (body: { customer: string; plan?: string | undefined; subscription?: string | undefined; name?: string | undefined; app?: string | undefined }) => ({
  customerId: body.customer,
  planId: body.plan,
  subscriptionId: body.subscription,
  name: body.name,
  appName: body.app,
});

export function adminRoutes(accounts: AccountsService, catalog: () => Catalog): Route[] {
  return [
    route({
      method: 'POST',
      path: '/v1/customers',
      operationId: 'createCustomer',
      summary: 'Create a customer',
      tag: 'customers',
      auth: 'admin',
      body: z.object({ id: idSchema.optional(), name: z.string().min(1).max(200), email: z.email().optional(), metadata: metadataSchema.optional() }).strict(),
      response: customerSchema,
      successStatus: 201,
      handle: async ({ body }) => ({ status: 201, body: await accounts.createCustomer(body) }),
    }),
    route({
      method: 'GET',
      path: '/v1/customers',
      operationId: 'listCustomers',
      summary: 'List customers, ordered by id',
      tag: 'customers',
      auth: 'admin',
      query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100), after: z.string().optional() }).strict(),
      response: z.object({ data: z.array(customerSchema) }),
      handle: async ({ query }) => ({ status: 200, body: { data: await accounts.listCustomers(query) } }),
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id',
      operationId: 'getCustomer',
      summary: 'Get a customer',
      tag: 'customers',
      auth: 'admin',
      response: customerSchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.getCustomer(params.id!) }),
    }),
    route({
      method: 'PATCH',
      path: '/v1/customers/:id',
      operationId: 'updateCustomer',
      summary: 'Update a customer; status "suspended" makes every Check answer 402',
      tag: 'customers',
      auth: 'admin',
      body: z
        .object({
          name: z.string().min(1).max(200).optional(),
          email: z.email().nullable().optional(),
          status: z.enum(['active', 'suspended']).optional(),
          statusReason: z.string().max(500).nullable().optional(),
          metadata: metadataSchema.optional(),
        })
        .strict(),
      response: customerSchema,
      handle: async ({ params, body }) => ({ status: 200, body: await accounts.updateCustomer(params.id!, body) }),
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id/subscriptions',
      operationId: 'listSubscriptions',
      summary: "List a customer's subscriptions",
      tag: 'subscriptions',
      auth: 'admin',
      response: z.object({ data: z.array(subscriptionSchema) }),
      handle: async ({ params }) => ({ status: 200, body: { data: await accounts.listSubscriptions(params.id!) } }),
    }),
    route({
      method: 'POST',
      path: '/v1/customers/:id/subscriptions',
      operationId: 'createSubscription',
      summary: 'Subscribe a customer to a plan',
      tag: 'subscriptions',
      auth: 'admin',
      body: z.object({ plan: z.string().min(1) }).strict(),
      response: subscriptionSchema,
      successStatus: 201,
      handle: async ({ params, body }) => ({ status: 201, body: await accounts.subscribe(params.id!, body.plan) }),
    }),
    route({
      method: 'GET',
      path: '/v1/subscriptions/:id',
      operationId: 'getSubscription',
      summary: 'Get a subscription',
      tag: 'subscriptions',
      auth: 'admin',
      response: subscriptionSchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.getSubscription(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/subscriptions/:id/change-plan',
      operationId: 'changeSubscriptionPlan',
      summary: "Move a subscription to another plan of the same product; its keys follow within a second",
      tag: 'subscriptions',
      auth: 'admin',
      body: z.object({ plan: z.string().min(1) }).strict(),
      response: subscriptionSchema,
      handle: async ({ params, body }) => ({ status: 200, body: await accounts.changePlan(params.id!, body.plan) }),
    }),
    route({
      method: 'POST',
      path: '/v1/subscriptions/:id/cancel',
      operationId: 'cancelSubscription',
      summary: 'Cancel a subscription; its keys stop working',
      tag: 'subscriptions',
      auth: 'admin',
      response: subscriptionSchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.cancelSubscription(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/keys',
      operationId: 'createKey',
      summary: 'Create an API key; the key itself is in this response only',
      tag: 'keys',
      auth: 'admin',
      body: credentialOwner.refine(hasPlanOrSubscription, planOrSubscriptionRequired),
      response: z.object({ key: z.string(), apiKey: apiKeySchema }),
      successStatus: 201,
      handle: async ({ body }) => ({
        status: 201,
        body: await accounts.createKey(credentialInput(body)),
      }),
    }),
    route({
      method: 'POST',
      path: '/v1/oauth-clients',
      operationId: 'registerOAuthClient',
      summary: 'Register an OAuth2 client: bearer JWTs whose client claim names it are billed like its API key',
      tag: 'keys',
      auth: 'admin',
      body: credentialOwner.extend({ clientId: z.string().min(1).max(200) }).refine(hasPlanOrSubscription, planOrSubscriptionRequired),
      response: apiKeySchema,
      successStatus: 201,
      handle: async ({ body }) => ({
        status: 201,
        body: await accounts.registerOAuthClient({ ...credentialInput(body), clientId: body.clientId }),
      }),
    }),
    route({
      method: 'GET',
      path: '/v1/keys',
      operationId: 'listKeys',
      summary: "List a customer's API keys (prefixes only)",
      tag: 'keys',
      auth: 'admin',
      query: z.object({ customer: z.string().min(1) }).strict(),
      response: z.object({ data: z.array(apiKeySchema) }),
      handle: async ({ query }) => ({ status: 200, body: { data: await accounts.listKeys(query.customer) } }),
    }),
    route({
      method: 'GET',
      path: '/v1/keys/:id',
      operationId: 'getKey',
      summary: 'Get an API key (prefix only)',
      tag: 'keys',
      auth: 'admin',
      response: apiKeySchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.getKey(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/keys/:id/revoke',
      operationId: 'revokeKey',
      summary: 'Revoke an API key; the Check rejects it within a second',
      tag: 'keys',
      auth: 'admin',
      response: apiKeySchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.revokeKey(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/keys/:id/approve',
      operationId: 'approveKey',
      summary: 'Approve a key of a manual-approval product',
      tag: 'keys',
      auth: 'admin',
      response: apiKeySchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.approveKey(params.id!) }),
    }),
    route({
      method: 'GET',
      path: '/v1/plans',
      operationId: 'listPlans',
      summary: 'List the public plans of the catalog, with their limits and prices',
      tag: 'catalog',
      auth: 'admin',
      response: z.object({ data: z.array(planSummarySchema) }),
      handle: async () => ({
        status: 200,
        body: {
          data: [...catalog().plans.values()]
            .filter((plan) => plan.public)
            .map((plan) => ({
              id: plan.id,
              name: plan.name,
              product: plan.product,
              description: plan.description,
              entitlements: [...plan.allowedEndpoints],
              rateLimits: plan.rate_limits.map((limit) => ({ requests: limit.requests, windowSeconds: limit.window / 1000, scope: limit.scope })),
              quota: plan.quota && { units: plan.quota.units, whenExhausted: plan.quota.when_exhausted },
              pricing: plan.pricing && pricingView(plan.pricing),
            })),
        },
      }),
    }),
  ];
}
