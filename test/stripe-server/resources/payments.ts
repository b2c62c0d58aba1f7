// PaymentIntents (create, confirm on create, retrieve) and charging Stripe's test payment methods, which invoices
// and checkout share.
import { requireCollectible, requireMinimumCharge } from '../money.js';
import type Stripe from 'stripe';
import { z } from 'zod';
import { invalidParam, invalidRequest, noSuchResource, StripeApiError } from '../errors.js';
import { fromFixture } from '../fixtures.js';
import { newId, randomBase62 } from '../ids.js';
import { boolean, currency, endpoint, integer, metadata, oneOf, parseParams, text } from '../params.js';
import { pathParam, route, type ApiRequest, type Route } from '../router.js';
import { requireObject, updatedMetadata, type StripeState } from '../state.js';
import { requireCustomer } from './customers.js';

/** Stripe's test-mode payment method tokens (https://docs.stripe.com/testing): the decline code each one produces,
 * or null when the charge succeeds. */
const TEST_PAYMENT_METHODS: Record<string, string | null> = {
  pm_card_visa: null,
  pm_card_mastercard: null,
  pm_card_amex: null,
  pm_card_chargeDeclined: 'generic_decline',
  pm_card_visa_chargeDeclined: 'generic_decline',
  pm_card_chargeDeclinedInsufficientFunds: 'insufficient_funds',
  pm_card_visa_chargeDeclinedInsufficientFunds: 'insufficient_funds',
};

const DECLINE_MESSAGES: Record<string, string> = {
  generic_decline: 'Your card was declined.',
  insufficient_funds: 'Your card has insufficient funds.',
};

/** The decline code of charging `paymentMethod`, or null when the charge goes through. */
export function chargeOutcome(paymentMethod: string, param: string): string | null {
  const declineCode = TEST_PAYMENT_METHODS[paymentMethod];
  if (declineCode === undefined) throw noSuchResource('PaymentMethod', paymentMethod, param);
  return declineCode;
}

export function cardDeclined(declineCode: string, paymentIntent?: Stripe.PaymentIntent): StripeApiError {
  return new StripeApiError(402, 'card_error', DECLINE_MESSAGES[declineCode] ?? 'Your card was declined.', {
    code: 'card_declined',
    declineCode,
    ...(paymentIntent && { paymentIntent: structuredClone(paymentIntent) }),
  });
}

const createParams = endpoint({
  amount: integer(),
  currency: currency(),
  automatic_payment_methods: z
    .strictObject({ enabled: boolean(), allow_redirects: oneOf(['always', 'never']).optional() })
    .optional(),
  confirm: boolean().optional(),
  customer: text().optional(),
  description: text().optional(),
  metadata: metadata().optional(),
  off_session: boolean().optional(),
  payment_method: text().optional(),
  receipt_email: text().optional(),
});

const retrieveParams = endpoint({ client_secret: text().optional() });

export interface PaymentIntentInput {
  amount: number;
  currency: string;
  customer: string | null;
  description?: string | null;
  metadata?: Stripe.Metadata;
  receiptEmail?: string | null;
}

export function createPaymentIntent(state: StripeState, now: number, input: PaymentIntentInput): Stripe.PaymentIntent {
  const id = newId('pi');
  const paymentIntent = fromFixture('payment_intent', {
    id,
    amount: input.amount,
    amount_capturable: 0,
    amount_received: 0,
    application: null,
    application_fee_amount: null,
    automatic_payment_methods: { allow_redirects: 'always', enabled: true },
    canceled_at: null,
    cancellation_reason: null,
    capture_method: 'automatic_async',
    client_secret: `${id}_secret_${randomBase62(25)}`,
    confirmation_method: 'automatic',
    created: now,
    currency: input.currency,
    customer: input.customer,
    description: input.description ?? null,
    last_payment_error: null,
    latest_charge: null,
    livemode: false,
    metadata: input.metadata ?? {},
    next_action: null,
    on_behalf_of: null,
    payment_method: null,
    payment_method_configuration_details: null,
    payment_method_options: {},
    payment_method_types: ['card'],
    processing: null,
    receipt_email: input.receiptEmail ?? null,
    review: null,
    setup_future_usage: null,
    shipping: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: 'requires_payment_method',
    transfer_data: null,
    transfer_group: null,
    source: null,
    excluded_payment_method_types: null,
    customer_account: null,
    managed_payments: null,
  });
  state.paymentIntents.set(id, paymentIntent);
  return paymentIntent;
}

/** Confirms with a test payment method: the intent succeeds, or records the decline and raises the card error. */
export function confirmPaymentIntent(paymentIntent: Stripe.PaymentIntent, paymentMethod: string, param: string): void {
  const declineCode = chargeOutcome(paymentMethod, param);
  const paymentMethodId = newId('pm');
  if (declineCode !== null) {
    Object.assign(paymentIntent, {
      status: 'requires_payment_method',
      last_payment_error: {
        type: 'card_error',
        code: 'card_declined',
        decline_code: declineCode,
        message: DECLINE_MESSAGES[declineCode],
      },
    } satisfies Partial<Stripe.PaymentIntent>);
    throw cardDeclined(declineCode, paymentIntent);
  }
  Object.assign(paymentIntent, {
    status: 'succeeded',
    amount_received: paymentIntent.amount,
    latest_charge: newId('ch'),
    payment_method: paymentMethodId,
    last_payment_error: null,
  } satisfies Partial<Stripe.PaymentIntent>);
}

function createPaymentIntentRoute({ params, state, now }: ApiRequest): Stripe.PaymentIntent {
  const input = parseParams(createParams, params);
  if (input.amount < 1) throw invalidParam('amount', 'This value must be greater than or equal to 1.');
  requireMinimumCharge(input.amount, input.currency, 'amount');
  requireCollectible(input.amount, input.currency, 'amount');
  if (input.confirm && input.payment_method === undefined) {
    throw invalidRequest(
      "You cannot confirm this PaymentIntent because it's missing a payment method. Update the payment_method and retry.",
      { code: 'payment_intent_unexpected_state', beforeExecution: true },
    );
  }
  const customer = input.customer === undefined ? null : requireCustomer(state, input.customer, 'customer').id;
  const paymentIntent = createPaymentIntent(state, now, {
    amount: input.amount,
    currency: input.currency,
    customer,
    description: input.description ?? null,
    metadata: updatedMetadata({}, input.metadata),
    receiptEmail: input.receipt_email ?? null,
  });
  if (input.payment_method !== undefined) {
    paymentIntent.status = 'requires_confirmation';
    if (input.confirm) confirmPaymentIntent(paymentIntent, input.payment_method, 'payment_method');
  }
  return paymentIntent;
}

function retrievePaymentIntent(request: ApiRequest): Stripe.PaymentIntent {
  parseParams(retrieveParams, request.params);
  return requireObject(request.state.paymentIntents, pathParam(request), 'payment_intent');
}

export const paymentRoutes: Route[] = [
  route('POST', '/v1/payment_intents', createPaymentIntentRoute),
  route('GET', '/v1/payment_intents/:id', retrievePaymentIntent),
];
