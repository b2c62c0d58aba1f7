import { z } from 'zod';
import { alertsSchema, checkPlanAlerts } from './alert-thresholds.js';
import { OTHER_ENDPOINTS, ratePlanSchema } from '../rating/index.js';
import { takenRoutes } from './route-trie.js';

const id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be lower-case letters, digits, "-" or "_", starting with a letter or digit');

const durationUnitsMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** The longest rate-limit window: past any real plan, and well inside what a Redis key expiry takes. */
const maxDurationMs = 366 * durationUnitsMs.d;

/** "10s", "1m", "1h", "1d" → milliseconds, at most 366 days. */
export const durationSchema = z
  .string()
  .regex(/^[1-9]\d*(ms|s|m|h|d)$/, 'must be a duration such as 1s, 1m, 1h or 1d')
  .transform((text) => {
    const [, amount, unit] = /^(\d+)(ms|s|m|h|d)$/.exec(text)!;
    return Number(amount) * durationUnitsMs[unit as keyof typeof durationUnitsMs];
  })
  .refine((ms) => ms <= maxDurationMs, 'must be at most 366d');

const httpMethod = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', '*']);

const pathPattern = z
  .string()
  .regex(
    /^\/([A-Za-z0-9._~!$&'()+,;=@-]+|:[A-Za-z_][A-Za-z0-9_]*|\*)?(\/([A-Za-z0-9._~!$&'()+,;=@-]+|:[A-Za-z_][A-Za-z0-9_]*|\*))*$/,
    'must be a path such as /api/v1/pets/:id/image, with :name parameters and an optional trailing *',
  )
  .refine((path) => !path.slice(0, -1).includes('*'), '"*" may only be the last segment');

const endpointSchema = z
  .object({
    id,
    method: z.union([httpMethod, z.array(httpMethod).min(1)]).transform((m) => (Array.isArray(m) ? m : [m])),
    path: pathPattern,
    weight: z.number().int().min(0).default(1),
    tags: z.array(id).default([]),
  })
  .strict();

/**
 * Data capture (Apigee DataCapture): an extra fact recorded on each usage event, read from a header Envoy logs.
 * Envoy's ALS only carries the headers listed in additional_request/response_headers_to_log.
 */
const captureSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be lower-case letters, digits or "_", starting with a letter'),
    from: z.enum(['request_header', 'response_header']),
    header: z.string().min(1).toLowerCase(),
    /** decimal values are kept as strings (prices: never floats). */
    type: z.enum(['integer', 'decimal', 'string']).default('string'),
  })
  .strict();

const productSchema = z
  .object({
    id,
    name: z.string().min(1),
    description: z.string().optional(),
    // Host names are case-insensitive; requests' hosts are matched lower-cased, without their port.
    hosts: z
      .array(
        z
          .string()
          .toLowerCase()
          .regex(/^(\*|(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*)$/, 'must be a host name (no scheme or port), "*.example.com" or "*"'),
      )
      .min(1)
      .default(['*']),
    approval: z.enum(['auto', 'manual']).default('auto'),
    endpoints: z.array(endpointSchema).min(1),
    capture: z.array(captureSchema).optional(),
  })
  .strict();

const rateLimitSchema = z
  .object({
    requests: z.number().int().positive(),
    window: durationSchema,
    scope: z.enum(['subscription', 'key']).default('subscription'),
  })
  .strict();

const quotaSchema = z
  .object({
    units: z.number().int().positive(),
    when_exhausted: z.enum(['deny_429', 'deny_402', 'allow_overage']).default('deny_429'),
  })
  .strict();

const billableSchema = z
  .object({
    /** Responses with these status classes are metered as billable. */
    statuses: z.array(z.enum(['1xx', '2xx', '3xx', '4xx', '5xx'])).min(1).default(['2xx', '3xx', '4xx']),
  })
  .strict();

/** How a plan meets Stripe: prices that map a Stripe subscription to it, and meter mode. */
const planStripeSchema = z
  .object({
    /** Stripe price ids or lookup keys whose subscriptions put a customer on this plan. */
    prices: z.array(z.string().min(1)).default([]),
    /** Meter mode: usage goes to this Stripe Billing Meter and Stripe prices and invoices it, not Tollgate. */
    meter_event_name: z.string().regex(/^[A-Za-z0-9_.:-]{1,100}$/, 'must be a Stripe meter event name such as api_calls').optional(),
  })
  .strict();

const planSchema = z
  .object({
    id,
    product: id,
    name: z.string().min(1),
    description: z.string().optional(),
    /** Listed by GET /v1/plans, quoted, and shown on the developer portal's pricing page. */
    public: z.boolean().default(true),
    entitlements: z.array(z.union([id, z.literal('*')])).min(1),
    rate_limits: z.array(rateLimitSchema).default([]),
    quota: quotaSchema.optional(),
    billable: billableSchema.default({ statuses: ['2xx', '3xx', '4xx'] }),
    /** Added to the product's capture list; an entry with the same name replaces the product's. */
    capture: z.array(captureSchema).optional(),
    max_keys: z.number().int().positive().optional(),
    pricing: ratePlanSchema.optional(),
    stripe: planStripeSchema.optional(),
    /** Usage alerts: thresholds notifying the customer (by webhook) once per billing period each. */
    alerts: alertsSchema.optional(),
  })
  .strict();

export const catalogSchema = z
  .object({
    version: z.literal(1),
    upgrade_url: z.url().optional(),
    default_plan: id.optional(),
    products: z.array(productSchema).min(1),
    plans: z.array(planSchema).min(1),
  })
  .strict()
  .superRefine((catalog, ctx) => {
    const reportDuplicates = (ids: string[], path: (index: number) => (string | number)[], what: string) => {
      const seen = new Set<string>();
      ids.forEach((value, index) => {
        if (seen.has(value)) ctx.addIssue({ code: 'custom', path: path(index), message: `duplicate ${what} id "${value}"` });
        seen.add(value);
      });
    };
    reportDuplicates(catalog.products.map((p) => p.id), (i) => ['products', i, 'id'], 'product');
    reportDuplicates(catalog.plans.map((p) => p.id), (i) => ['plans', i, 'id'], 'plan');
    catalog.products.forEach((product, p) => {
      reportDuplicates(product.endpoints.map((e) => e.id), (i) => ['products', p, 'endpoints', i, 'id'], 'endpoint');
      for (const { index, method, taken } of takenRoutes(product.endpoints)) {
        const path = product.endpoints[index]!.path;
        ctx.addIssue({ code: 'custom', path: ['products', p, 'endpoints', index, 'path'], message: `endpoint "${taken.id}" already has ${method} ${path}` });
      }
    });

    const products = new Map(catalog.products.map((p) => [p.id, p]));
    catalog.plans.forEach((plan, p) => {
      checkPlanAlerts(ctx, plan, ['plans', p]);
      // Stripe bills a meter-mode plan's usage from its meter; a wallet paying Tollgate's rating of it would bill it twice.
      if (plan.stripe?.meter_event_name !== undefined && plan.pricing?.mode === 'prepaid') {
        ctx.addIssue({ code: 'custom', path: ['plans', p, 'pricing', 'mode'], message: 'a plan in meter mode (stripe.meter_event_name) is billed by Stripe and cannot also be prepaid from the wallet' });
      }
      // Two limits on the same window and scope would share one counter and count every request twice.
      const windows = new Set<string>();
      plan.rate_limits.forEach((limit, l) => {
        const id = `${limit.scope}:${limit.window}`;
        if (windows.has(id)) {
          ctx.addIssue({ code: 'custom', path: ['plans', p, 'rate_limits', l, 'window'], message: 'another rate limit of this plan has the same window and scope' });
        }
        windows.add(id);
      });
      const product = products.get(plan.product);
      if (!product) {
        ctx.addIssue({ code: 'custom', path: ['plans', p, 'product'], message: `unknown product "${plan.product}"` });
        return;
      }
      const names = new Set(product.endpoints.flatMap((e) => [e.id, ...e.tags]));
      for (const name of Object.keys(plan.pricing?.endpoint_prices ?? {})) {
        if (name !== OTHER_ENDPOINTS && !names.has(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['plans', p, 'pricing', 'endpoint_prices', name],
            message: `"${name}" is neither an endpoint id nor a tag of product "${product.id}"`,
          });
        }
      }
      plan.entitlements.forEach((name, e) => {
        if (name !== '*' && !names.has(name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['plans', p, 'entitlements', e],
            message: `"${name}" is neither an endpoint id nor a tag of product "${product.id}"`,
          });
        }
      });
    });
    const defaultPlan = catalog.plans.find((plan) => plan.id === catalog.default_plan);
    if (catalog.default_plan && !defaultPlan) {
      ctx.addIssue({ code: 'custom', path: ['default_plan'], message: `unknown plan "${catalog.default_plan}"` });
    }
    // Customers land on the default plan without paying (the portal's sign-up, a Stripe subscription that ended).
    const fees = (['setup_fee', 'recurring_fee'] as const).filter((fee) => /[1-9]/.test(defaultPlan?.pricing?.[fee] ?? ''));
    if (fees.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['default_plan'],
        message: `plan "${catalog.default_plan}" charges a ${fees.join(' and a ').replaceAll('_', ' ')}; customers are put on the default plan without paying, so it must be free to start`,
      });
    }
  });

export type CatalogDocument = z.infer<typeof catalogSchema>;
export type ProductDocument = CatalogDocument['products'][number];
export type EndpointDocument = ProductDocument['endpoints'][number];
export type PlanDocument = CatalogDocument['plans'][number];
export type RateLimitDocument = PlanDocument['rate_limits'][number];
export type CaptureDocument = z.infer<typeof captureSchema>;
