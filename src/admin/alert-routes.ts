/** Admin routes of usage alerts: a customer's alert webhook, the alerts fired and the delivery log. */
import { z } from 'zod';
import { deliveryStatuses, type UsageAlerts } from '../alerts/index.js';
import { alertTypes } from '../catalog/index.js';
import { conflict, notFound } from '../kernel/index.js';
import { afterRowIdSchema, isRowId, route, type Route } from './router.js';

const webhookSchema = z.object({
  customerId: z.string(),
  url: z.string(),
  secretPrefix: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const alertTypeSchema = z.enum(alertTypes);
const eventSchema = z.object({
  id: z.string(),
  type: alertTypeSchema,
  created_at: z.string(),
  customer: z.string(),
  subscription: z.string(),
  plan: z.string(),
  period: z.object({ start: z.string(), end: z.string() }),
  threshold: z.record(z.string(), z.union([z.string(), z.number()])),
  current: z.record(z.string(), z.union([z.string(), z.number()])),
});
const deliverySchema = z.object({
  id: z.string(),
  alertId: z.string(),
  customerId: z.string(),
  subscriptionId: z.string(),
  type: alertTypeSchema,
  periodStart: z.string(),
  status: z.enum(deliveryStatuses),
  attempts: z.number(),
  nextAttemptAt: z.string(),
  lastAttemptAt: z.string().nullable(),
  lastStatusCode: z.number().nullable(),
  lastError: z.string().nullable(),
  deliveredAt: z.string().nullable(),
  createdAt: z.string(),
});

/** True unless the URL names a user or password (a URL that does not parse is z.url()'s to report). */
function withoutCredentials(url: string): boolean {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  return !parsed?.username && !parsed?.password;
}

export function alertRoutes(alerts: UsageAlerts): Route[] {
  return [
    route({
      method: 'PUT',
      path: '/v1/customers/:id/alert-webhook',
      operationId: 'setAlertWebhook',
      summary: "Set the URL the customer's usage alerts are POSTed to; answers with a new signing secret, shown this once",
      tag: 'alerts',
      auth: 'admin',
      body: z
        .object({
          url: z
            .url({ protocol: /^https?$/ })
            // fetch refuses such URLs, and a token belongs in the path or query, which are kept out of logs alike.
            .refine(withoutCredentials, 'must not carry a user name or password; put a token in the path or query'),
        })
        .strict(),
      response: webhookSchema.extend({ secret: z.string().describe('the signing secret (whsec_…): store it now, it is not shown again') }),
      handle: async ({ params, body }) => ({ status: 200, body: await alerts.webhooks.set(params.id!, body.url) }),
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id/alert-webhook',
      operationId: 'getAlertWebhook',
      summary: "The customer's alert webhook, without its secret",
      tag: 'alerts',
      auth: 'admin',
      response: webhookSchema,
      handle: async ({ params }) => ({ status: 200, body: await alerts.webhooks.get(params.id!) }),
    }),
    route({
      method: 'DELETE',
      path: '/v1/customers/:id/alert-webhook',
      operationId: 'deleteAlertWebhook',
      summary: "Remove the customer's alert webhook: alerts are still recorded, no longer sent",
      tag: 'alerts',
      auth: 'admin',
      response: z.object({ deleted: z.literal(true) }),
      handle: async ({ params }) => {
        await alerts.webhooks.remove(params.id!);
        return { status: 200, body: { deleted: true } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/customers/:id/alerts',
      operationId: 'listAlerts',
      summary: "The customer's usage alerts, newest first: each event as sent, and its delivery",
      tag: 'alerts',
      auth: 'admin',
      query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict(),
      response: z.object({
        data: z.array(z.object({ event: eventSchema, delivery: z.object({ id: z.string(), status: z.enum(deliveryStatuses), attempts: z.number() }).nullable() })),
      }),
      handle: async ({ params, query }) => ({ status: 200, body: { data: await alerts.list(params.id!, query.limit) } }),
    }),
    route({
      method: 'GET',
      path: '/v1/alerts/deliveries',
      operationId: 'listAlertDeliveries',
      summary: 'The alert delivery log, oldest first: attempts, last answer, next attempt; status=dead lists the ones given up',
      tag: 'alerts',
      auth: 'admin',
      query: z
        .object({
          customer: z.string().min(1).optional(),
          status: z.enum(deliveryStatuses).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          after: afterRowIdSchema,
        })
        .strict(),
      response: z.object({ data: z.array(deliverySchema) }),
      handle: async ({ query }) => ({
        status: 200,
        body: { data: await alerts.deliveries.list({ customerId: query.customer, status: query.status, limit: query.limit, after: query.after }) },
      }),
    }),
    route({
      method: 'POST',
      path: '/v1/alerts/deliveries/:id/retry',
      operationId: 'retryAlertDelivery',
      summary: 'Send a dead delivery again, with a fresh attempt budget',
      tag: 'alerts',
      auth: 'admin',
      response: deliverySchema,
      handle: async ({ params }) => {
        const id = params.id!;
        const existing = isRowId(id) ? await alerts.deliveries.get(id) : undefined;
        if (!existing) throw notFound('alert delivery', id);
        const delivery = await alerts.deliveries.retryDead(id);
        if (!delivery) throw conflict(`alert delivery ${id} is ${existing.status}, not dead`);
        return { status: 200, body: delivery };
      },
    }),
  ];
}
