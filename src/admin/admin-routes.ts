import { z } from 'zod';
import type { AccountsService } from '../identity/index.js';
import type { Catalog } from '../catalog/index.js';
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
});

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
      summary: 'Get a customer',
      tag: 'customers',
      auth: 'admin',
      response: customerSchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.getCustomer(params.id!) }),
    }),
    route({
      method: 'PATCH',
      path: '/v1/customers/:id',
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
      summary: "List a customer's subscriptions",
      tag: 'subscriptions',
      auth: 'admin',
      response: z.object({ data: z.array(subscriptionSchema) }),
      handle: async ({ params }) => ({ status: 200, body: { data: await accounts.listSubscriptions(params.id!) } }),
    }),
    route({
      method: 'POST',
      path: '/v1/customers/:id/subscriptions',
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
      summary: 'Get a subscription',
      tag: 'subscriptions',
      auth: 'admin',
      response: subscriptionSchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.getSubscription(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/subscriptions/:id/change-plan',
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
      summary: 'Cancel a subscription; its keys stop working',
      tag: 'subscriptions',
      auth: 'admin',
      response: subscriptionSchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.cancelSubscription(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/keys',
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
      summary: 'Get an API key (prefix only)',
      tag: 'keys',
      auth: 'admin',
      response: apiKeySchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.getKey(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/keys/:id/revoke',
      summary: 'Revoke an API key; the Check rejects it within a second',
      tag: 'keys',
      auth: 'admin',
      response: apiKeySchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.revokeKey(params.id!) }),
    }),
    route({
      method: 'POST',
      path: '/v1/keys/:id/approve',
      summary: 'Approve a key of a manual-approval product',
      tag: 'keys',
      auth: 'admin',
      response: apiKeySchema,
      handle: async ({ params }) => ({ status: 200, body: await accounts.approveKey(params.id!) }),
    }),
    route({
      method: 'GET',
      path: '/v1/plans',
      summary: 'List the public plans of the catalog',
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
            })),
        },
      }),
    }),
  ];
}
