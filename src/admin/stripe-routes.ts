import { z } from 'zod';
import { conflict, CURRENCY_CODES, notFound, TollgateError } from '../kernel/index.js';
import { type StripeIntegration, stripeWorkKinds } from '../stripe/index.js';
import { afterRowIdSchema, isRowId, route, type Route } from './router.js';

const outboxItemSchema = z.object({
  id: z.string(),
  kind: z.enum(stripeWorkKinds),
  subjectId: z.string(),
  status: z.enum(['pending', 'done', 'dead']),
  revision: z.number(),
  attempts: z.number(),
  keyGeneration: z.number(),
  nextAttemptAt: z.string(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
const topUpSchema = z.object({
  id: z.string(),
  customerId: z.string(),
  amount: z.string().describe('minor units'),
  currency: z.string(),
  status: z.enum(['pending', 'open', 'paid', 'expired']),
  checkoutUrl: z.string().nullable(),
  stripeSessionId: z.string().nullable(),
  paidAt: z.string().nullable(),
  createdAt: z.string(),
});
const idList = z.array(z.string());
const driftReportSchema = z.object({
  checkedAt: z.string(),
  customers: z.object({
    missing: idList,
    unrecorded: z.array(z.object({ customerId: z.string(), stripeCustomerId: z.string() })),
    duplicated: z.array(z.object({ customerId: z.string(), stripeCustomerIds: idList })),
  }),
  invoices: z.object({
    missing: idList,
    unrecorded: z.array(z.object({ invoiceId: z.string(), stripeInvoiceId: z.string() })),
    duplicated: z.array(z.object({ invoiceId: z.string(), stripeInvoiceIds: idList })),
    amountMismatch: z.array(z.object({ invoiceId: z.string(), stripeInvoiceId: z.string(), ours: z.string(), stripe: z.string() })),
    unsettled: z.array(z.object({ invoiceId: z.string(), stripeInvoiceId: z.string(), stripeStatus: z.string() })),
  }),
  meters: z.object({
    missing: idList.describe('meter event names of our plans with no active Stripe meter'),
    totalMismatch: z.array(z.object({ customerId: z.string(), eventName: z.string(), ours: z.string(), stripe: z.string() })),
    failed: z.array(z.object({ subscriptionId: z.string(), periodStart: z.string(), failure: z.string() })),
  }),
  deadLetters: z.number(),
  repaired: z.object({ requeued: z.number(), recorded: z.number(), settled: z.number() }).optional(),
});

const notConfigured = (variable: string) => new TollgateError('unavailable', `Stripe is not configured here (${variable})`);

/** The Stripe webhook endpoint (public: it checks Stripe's signature) and the admin routes of the Stripe sync. */
export function stripeRoutes(stripe: StripeIntegration): Route[] {
  return [
    route({
      method: 'POST',
      path: '/webhooks/stripe',
      operationId: 'receiveStripeWebhook',
      summary: 'Stripe webhook events, signed with the endpoint secret; each event is applied once',
      tag: 'stripe',
      auth: 'public',
      response: z.object({ received: z.literal(true), id: z.string(), type: z.string(), result: z.enum(['applied', 'duplicate', 'ignored']) }),
      handle: async ({ rawBody, headers }) => {
        if (!stripe.webhooks) throw notConfigured('TOLLGATE_STRIPE_WEBHOOK_SECRET');
        const signature = headers['stripe-signature'];
        const outcome = await stripe.webhooks.receive(rawBody, Array.isArray(signature) ? signature[0] : signature);
        return { status: 200, body: { received: true, ...outcome } };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/stripe/outbox',
      operationId: 'listStripeOutbox',
      summary: 'Stripe sync work, oldest first; status=dead lists the dead letters',
      tag: 'stripe',
      auth: 'admin',
      query: z
        .object({
          status: z.enum(['pending', 'done', 'dead']).optional(),
          kind: z.enum(stripeWorkKinds).optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          after: afterRowIdSchema,
        })
        .strict(),
      response: z.object({ data: z.array(outboxItemSchema) }),
      handle: async ({ query }) => ({ status: 200, body: { data: await stripe.outbox.list(query) } }),
    }),
    route({
      method: 'POST',
      path: '/v1/stripe/outbox/:id/retry',
      operationId: 'retryStripeOutboxItem',
      summary: 'Send one dead letter back to the Stripe sync, with a fresh attempt budget',
      tag: 'stripe',
      auth: 'admin',
      response: outboxItemSchema,
      handle: async ({ params }) => {
        const id = params.id!;
        const existing = isRowId(id) ? await stripe.outbox.get(id) : undefined;
        if (!existing) throw notFound('outbox item', id);
        const [item] = await stripe.outbox.retryDead(id);
        if (!item) throw conflict(`outbox item ${id} is ${existing.status}, not dead`);
        return { status: 200, body: item };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/stripe/dead-letters/retry',
      operationId: 'retryStripeDeadLetters',
      summary: 'Send every dead letter back to the Stripe sync',
      tag: 'stripe',
      auth: 'admin',
      response: z.object({ data: z.array(outboxItemSchema) }),
      handle: async () => ({ status: 200, body: { data: await stripe.outbox.retryDead() } }),
    }),
    route({
      method: 'POST',
      path: '/v1/stripe/reconcile',
      operationId: 'reconcileStripe',
      summary: "Compare Stripe's customers, invoices and meter totals with ours; repair re-queues what is missing",
      tag: 'stripe',
      auth: 'admin',
      body: z.object({ repair: z.boolean().default(false) }).strict(),
      response: driftReportSchema,
      handle: async ({ body }) => {
        if (!stripe.reconciler) throw notConfigured('TOLLGATE_STRIPE_SECRET_KEY');
        return { status: 200, body: await stripe.reconciler.reconcile(body) };
      },
    }),
    route({
      method: 'POST',
      path: '/v1/customers/:id/wallet/checkout-sessions',
      operationId: 'createCheckoutTopUp',
      summary: "Top up the customer's wallet through Stripe Checkout; the wallet is credited once the session is paid",
      tag: 'stripe',
      auth: 'admin',
      body: z
        .object({
          amount: z.int().positive().max(Number.MAX_SAFE_INTEGER).describe('minor units'),
          currency: z.enum(CURRENCY_CODES),
          successUrl: z.url(),
          cancelUrl: z.url().optional(),
        })
        .strict(),
      response: topUpSchema,
      successStatus: 201,
      handle: async ({ params, body }) => {
        const created = await stripe.topUps.create(params.id!, { ...body, amount: BigInt(body.amount) });
        // The caller waits for the Checkout URL; if Stripe does not answer now, the sync loop opens the session.
        await stripe.sync?.runNow('topup.checkout', created.id);
        return { status: 201, body: await stripe.topUps.get(created.id) };
      },
    }),
    route({
      method: 'GET',
      path: '/v1/stripe/top-ups/:id',
      operationId: 'getCheckoutTopUp',
      summary: 'A wallet top-up through Stripe Checkout, with its Checkout URL and status',
      tag: 'stripe',
      auth: 'admin',
      response: topUpSchema,
      handle: async ({ params }) => ({ status: 200, body: await stripe.topUps.get(params.id!) }),
    }),
  ];
}
