// Stripe's own example objects (fixtures3.json from stripe/openapi, MIT, vendored in ./fixtures) are the template
// of every response, so each field Stripe returns is present with Stripe's shape.
import { readFileSync } from 'node:fs';
import type Stripe from 'stripe';

interface FixtureTypes {
  customer: Stripe.Customer;
  invoice: Stripe.Invoice;
  invoiceitem: Stripe.InvoiceItem;
  line_item: Stripe.InvoiceLineItem;
  'billing.meter': Stripe.Billing.Meter;
  'billing.meter_event': Stripe.Billing.MeterEvent;
  'billing.meter_event_summary': Stripe.Billing.MeterEventSummary;
  'checkout.session': Stripe.Checkout.Session;
  item: Stripe.LineItem;
  payment_intent: Stripe.PaymentIntent;
  product: Stripe.Product;
  price: Stripe.Price;
  subscription: Stripe.Subscription;
  event: Stripe.EventBase;
}

const examples = (
  JSON.parse(readFileSync(new URL('./fixtures/fixtures3.json', import.meta.url), 'utf8')) as {
    resources: Record<string, Record<string, unknown>>;
  }
).resources;

/**
 * Where the pinned API version (the `stripe` package's generated types, `Stripe.API_VERSION`) differs from Stripe's
 * example objects: fields the version no longer returns (the invoice's `subscription` moved to
 * `parent.subscription_details`), and fields it always returns that the examples lack. Found by comparing each
 * example's keys with the non-optional fields of the package's interface; keep it in step when the pin moves.
 */
const pinnedVersionChanges: Record<string, { removed?: string[]; added?: Record<string, unknown> }> = {
  invoice: { removed: ['subscription'] },
  'checkout.session': { added: { allowed_payment_method_types: null } },
  product: { added: { tax_details: null } },
  subscription_item: { added: { current_trial: null } },
  payment_intent: { added: { allowed_payment_method_types: null, payment_record: null } },
};

for (const [resource, { removed = [], added = {} }] of Object.entries(pinnedVersionChanges)) {
  const example = examples[resource]!;
  for (const field of removed) delete example[field];
  Object.assign(example, added);
}

/**
 * Checks an object about to be returned against the pinned version's shape of its `object` type, recursively: the
 * same fields as the (adjusted) example, each of the example's JSON type unless either is null. Objects without an
 * example (lists, deleted stubs, nested hashes) are checked field by field where they hold objects that have one.
 * Returns the first difference, or undefined.
 */
export function shapeDifference(value: unknown, path = 'response'): string | undefined {
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const found = shapeDifference(item, `${path}[${index}]`);
      if (found) return found;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const record = value as Record<string, unknown>;
  const kind = typeof record.object === 'string' ? record.object : undefined;
  const example = kind === undefined || record.deleted === true ? undefined : examples[kind];
  if (example) {
    const missing = Object.keys(example).find((field) => !Object.hasOwn(record, field));
    if (missing) return `${path} (${kind}) lacks ${missing}`;
    // Expandable extras Stripe adds only on request (`expand[]=line_items`) are allowed.
    const extra = Object.keys(record).find((field) => !Object.hasOwn(example, field) && !expandOnly.has(`${kind}.${field}`));
    if (extra) return `${path} (${kind}) has ${extra}, which the pinned version does not return`;
    for (const [field, expected] of Object.entries(example)) {
      const actual = record[field];
      if (expected !== null && actual !== null && jsonType(expected) !== jsonType(actual) && !(jsonType(expected) === 'string' && jsonType(actual) === 'object')) {
        return `${path}.${field} (${kind}) is ${jsonType(actual)}, not ${jsonType(expected)}`;
      }
    }
  }
  for (const [field, nested] of Object.entries(record)) {
    const found = shapeDifference(nested, `${path}.${field}`);
    if (found) return found;
  }
  return undefined;
}

/** Optional fields of the pinned version (returned when expanded or when they apply): absent from the examples. */
const expandOnly = new Set(['checkout.session.line_items', 'price.tiers']);

function jsonType(value: unknown): string {
  return Array.isArray(value) ? 'array' : typeof value;
}

/** A copy of Stripe's example `resource` with `fields` laid over it. Every field set must be one of the example's,
 * so a typo or a field Stripe does not return fails loudly instead of changing the response's shape. */
export function fromFixture<K extends keyof FixtureTypes>(resource: K, fields: Partial<FixtureTypes[K]>): FixtureTypes[K] {
  const example = examples[resource];
  if (!example) throw new Error(`no Stripe example object for ${resource}`);
  const unknownField = Object.keys(fields).find((field) => !Object.hasOwn(example, field));
  if (unknownField) throw new Error(`Stripe's ${resource} object has no field ${unknownField}`);
  return { ...structuredClone(example), ...structuredClone(fields) } as unknown as FixtureTypes[K];
}

/** Decimal fields travel as strings; the `stripe` package turns them into its Decimal type on receipt. */
export function decimalString(value: string | number): Stripe.Decimal {
  return String(value) as unknown as Stripe.Decimal;
}
