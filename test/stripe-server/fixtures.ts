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
