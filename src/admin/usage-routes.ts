import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { hashApiKey, type Identities, IdentityUnavailable, isApiKey } from '../identity/index.js';
import { extractKey } from '../check/index.js';
import { TollgateError } from '../kernel/index.js';
import type { UsageService } from '../metering/index.js';
import { route, type Route } from './router.js';

export interface SelfServiceAuth {
  identities: Pick<Identities, 'lookup'>;
  /** Where the Check reads API keys from; self-service reads them the same way. */
  keyHeader: string;
  keyFromBearer: boolean;
}

const periodQuery = z
  .object({ period: z.string().regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'must be a month, YYYY-MM').optional() })
  .strict();

const totalsSchema = z.object({
  calls: z.number(),
  units: z.number(),
  billableCalls: z.number(),
  billableUnits: z.number(),
  deniedCalls: z.number(),
  requestBytes: z.number(),
  responseBytes: z.number(),
});
const periodSchema = z.object({ start: z.string(), end: z.string() });
const customerUsageSchema = z.object({
  customerId: z.string(),
  subscriptions: z.array(
    z.object({
      subscriptionId: z.string(),
      planId: z.string(),
      productId: z.string(),
      status: z.enum(['active', 'canceled']),
      period: periodSchema,
      totals: totalsSchema,
      endpoints: z.array(totalsSchema.extend({ endpointId: z.string().nullable() })),
      quota: z.object({ limit: z.number(), used: z.number(), remaining: z.number() }).nullable(),
    }),
  ),
});
const reconciliationSchema = z.object({
  customerId: z.string(),
  checkedAt: z.string(),
  pendingEvents: z.number(),
  subscriptions: z.array(
    z.object({
      subscriptionId: z.string(),
      planId: z.string(),
      period: periodSchema,
      counterUnits: z.number().nullable(),
      meteredUnits: z.number(),
      difference: z.number().nullable(),
    }),
  ),
});

/** Usage reports for operators (admin token) and for customers themselves (their own API key). */
export function usageRoutes(usage: UsageService, auth: SelfServiceAuth): Route[] {
  return [
    route({
      method: 'GET',
      path: '/v1/customers/:id/usage',
      operationId: 'getCustomerUsage',
      summary: "A customer's usage per subscription over its billing period: the one starting in ?period=YYYY-MM, or the current one",
      tag: 'usage',
      auth: 'admin',
      query: periodQuery,
      response: customerUsageSchema,
      handle: async ({ params, query }) => ({ status: 200, body: await usage.customerUsage(params.id!, query.period) }),
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id/usage/reconcile',
      operationId: 'reconcileCustomerUsage',
      summary: "Compares the Check's quota counters for the current period with the metered units",
      tag: 'usage',
      auth: 'admin',
      response: reconciliationSchema,
      handle: async ({ params }) => ({ status: 200, body: await usage.reconcile(params.id!) }),
    }),
    route({
      method: 'GET',
      path: '/v1/self/usage',
      operationId: 'getOwnUsage',
      summary: 'Your own usage, authenticated with your API key (x-api-key or Bearer)',
      tag: 'usage',
      auth: 'public',
      query: periodQuery,
      response: customerUsageSchema,
      handle: async ({ headers, query }) => ({ status: 200, body: await usage.customerUsage(await authenticatedCustomer(headers, auth), query.period) }),
    }),
  ];
}

/** The customer behind an active API key; anything else is 401, whatever the reason, so keys cannot be probed. */
async function authenticatedCustomer(headers: IncomingMessage['headers'], auth: SelfServiceAuth): Promise<string> {
  const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value) ?? '';
  const key = extractKey(
    { [auth.keyHeader]: single(headers[auth.keyHeader]), authorization: single(headers.authorization) },
    { keyHeader: auth.keyHeader, keyFromBearer: auth.keyFromBearer, headerPrefix: '' },
  );
  const identity = key && isApiKey(key) ? await lookupOrUnavailable(auth.identities, hashApiKey(key)) : undefined;
  if (!identity || identity.key.status !== 'active') throw new TollgateError('unauthorized', 'a valid API key is required');
  return identity.key.customerId;
}

async function lookupOrUnavailable(identities: Pick<Identities, 'lookup'>, keyHash: string) {
  try {
    return await identities.lookup(keyHash);
  } catch (error) {
    if (error instanceof IdentityUnavailable) throw new TollgateError('unavailable', 'API keys cannot be checked right now', undefined, { retryAfterSeconds: 1 });
    throw error;
  }
}
