// Subscriptions exist here only so tests can stage the `customer.subscription.*` webhooks Tollgate handles: tests
// create and change them through the server handle, and the API serves them read-only (retrieve).
import type Stripe from 'stripe';
import { fromFixture } from '../fixtures.js';
import { newId } from '../ids.js';
import { noParams, parseParams } from '../params.js';
import { pathParam, route, type ApiRequest, type Route } from '../router.js';
import { requireObject, type StripeState } from '../state.js';
import { renderPrice } from './catalog.js';
import { requireCustomer } from './customers.js';

export interface SubscriptionOptions {
  customer: string;
  /** A recurring price from the server's state. */
  price: string;
  quantity?: number;
}

/** The end of the billing period that starts at `start` (unix seconds), in calendar units as Stripe bills. */
function periodEnd(start: number, recurring: Stripe.Price.Recurring): number {
  const end = new Date(start * 1000);
  const count = recurring.interval_count;
  if (recurring.interval === 'day') end.setUTCDate(end.getUTCDate() + count);
  else if (recurring.interval === 'week') end.setUTCDate(end.getUTCDate() + 7 * count);
  else if (recurring.interval === 'year') end.setUTCFullYear(end.getUTCFullYear() + count);
  else end.setUTCMonth(end.getUTCMonth() + count);
  return Math.floor(end.getTime() / 1000);
}

/** The legacy plan view of a recurring price, which subscription items still carry. */
function planOf(price: Stripe.Price, recurring: Stripe.Price.Recurring): Stripe.Plan {
  return {
    id: price.id,
    object: 'plan',
    active: price.active,
    amount: price.unit_amount,
    amount_decimal: price.unit_amount_decimal,
    billing_scheme: price.billing_scheme,
    created: price.created,
    currency: price.currency,
    interval: recurring.interval,
    interval_count: recurring.interval_count,
    livemode: false,
    metadata: price.metadata,
    meter: recurring.meter,
    nickname: price.nickname,
    product: price.product,
    tiers_mode: price.tiers_mode,
    transform_usage: null,
    trial_period_days: null,
    usage_type: recurring.usage_type,
  };
}

export function createSubscription(
  state: StripeState,
  now: number,
  options: SubscriptionOptions,
  fields: Partial<Stripe.Subscription> = {},
): Stripe.Subscription {
  const customer = requireCustomer(state, options.customer, 'customer');
  const price = requireObject(state.prices, options.price, 'price', 'price');
  if (!price.recurring) throw new Error(`price ${price.id} is not recurring`);
  const id = newId('sub');
  const item: Stripe.SubscriptionItem = {
    id: newId('si', 14),
    object: 'subscription_item',
    billing_thresholds: null,
    created: now,
    current_period_end: periodEnd(now, price.recurring),
    current_period_start: now,
    current_trial: null,
    discounts: [],
    metadata: {},
    plan: planOf(price, price.recurring),
    price: renderPrice(price),
    quantity: options.quantity ?? 1,
    subscription: id,
    tax_rates: [],
  };
  const subscription = fromFixture('subscription', {
    id,
    application: null,
    application_fee_percent: null,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null },
    billing_cycle_anchor: now,
    billing_cycle_anchor_config: null,
    billing_schedules: [],
    billing_thresholds: null,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    cancellation_details: { comment: null, feedback: null, feedback_option: null, reason: null },
    collection_method: 'charge_automatically',
    created: now,
    currency: price.currency,
    customer: customer.id,
    customer_account: null,
    days_until_due: null,
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    ended_at: null,
    invoice_settings: {
      account_tax_ids: null,
      custom_fields: null,
      description: null,
      footer: null,
      issuer: { type: 'self' },
    },
    items: { object: 'list', data: [item], has_more: false, url: `/v1/subscription_items?subscription=${id}` },
    latest_invoice: null,
    livemode: false,
    managed_payments: null,
    metadata: {},
    next_pending_invoice_item_invoice: null,
    on_behalf_of: null,
    pause_collection: null,
    payment_settings: { payment_method_options: null, payment_method_types: null, save_default_payment_method: 'off' },
    pending_invoice_item_interval: null,
    pending_setup_intent: null,
    pending_update: null,
    schedule: null,
    start_date: now,
    status: 'active',
    test_clock: null,
    transfer_data: null,
    trial_end: null,
    trial_settings: { end_behavior: { billing_cycle_anchor: null, missing_payment_method: 'create_invoice' } },
    trial_start: null,
    ...fields,
  });
  state.subscriptions.set(id, subscription);
  return subscription;
}

/** Applies `changes` and returns the previous values of the changed fields: an event's `previous_attributes`. */
export function updateSubscription(
  state: StripeState,
  id: string,
  changes: Partial<Stripe.Subscription>,
): Partial<Stripe.Subscription> {
  const subscription = requireObject(state.subscriptions, id, 'subscription');
  const previous = Object.fromEntries(
    Object.keys(changes).map((field) => [field, structuredClone(subscription[field as keyof Stripe.Subscription])]),
  ) as Partial<Stripe.Subscription>;
  Object.assign(subscription, changes);
  return previous;
}

function retrieveSubscription(request: ApiRequest): Stripe.Subscription {
  parseParams(noParams, request.params);
  return requireObject(request.state.subscriptions, pathParam(request), 'subscription');
}

export const subscriptionRoutes: Route[] = [route('GET', '/v1/subscriptions/:id', retrieveSubscription)];
