// Webhook events: Stripe-shaped `event` objects built from the server's state, signed and delivered the way Stripe
// does (`Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`).
import { createHmac } from 'node:crypto';
import type Stripe from 'stripe';
import { fromFixture } from './fixtures.js';
import { newId, randomBase62 } from './ids.js';
import { renderInvoice, requireInvoice } from './resources/invoices.js';
import { requireObject, type StripeState } from './state.js';

export interface WebhookOptions {
  /** The endpoint's signing secret (`whsec_…`). */
  secret: string;
  /** Unix seconds to sign with; defaults to the real current time, which receivers check their tolerance against.
   * An old one exercises that check. */
  timestamp?: number;
  /** Sent as `Stripe-Signature` in place of the real signature, to present a forged or malformed header. */
  signatureOverride?: string;
}

export interface WebhookDelivery {
  status: number;
  body: string;
  /** The exact bytes sent, which the signature covers. */
  payload: string;
  signature: string;
}

export function signPayload(payload: string, secret: string, timestamp: number): string {
  const hmac = createHmac('sha256', secret).update(`${timestamp}.${payload}`, 'utf8').digest('hex');
  return `t=${timestamp},v1=${hmac}`;
}

/** POSTs `event` to `url` as Stripe delivers webhooks: pretty-printed JSON with a `Stripe-Signature` header. */
export async function sendWebhook(url: string, event: object, options: WebhookOptions): Promise<WebhookDelivery> {
  const payload = JSON.stringify(event, null, 2);
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = options.signatureOverride ?? signPayload(payload, options.secret, timestamp);
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json; charset=utf-8',
      'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
      'Stripe-Signature': signature,
    },
    body: payload,
  });
  return { status: response.status, body: await response.text(), payload, signature };
}

export type InvoiceEventType =
  | 'invoice.created'
  | 'invoice.finalized'
  | 'invoice.paid'
  | 'invoice.payment_failed'
  | 'invoice.payment_succeeded'
  | 'invoice.updated'
  | 'invoice.voided';

export type CheckoutSessionEventType =
  | 'checkout.session.completed'
  | 'checkout.session.expired'
  | 'checkout.session.async_payment_failed'
  | 'checkout.session.async_payment_succeeded';

export type SubscriptionEventType =
  | 'customer.subscription.created'
  | 'customer.subscription.updated'
  | 'customer.subscription.deleted';

/** One failed meter event in a meter error report: its identifier, Stripe's error code and message. */
export interface MeterEventError {
  identifier: string;
  code: string;
  message: string;
}

/** The notification of a thin (v2) event, as a webhook carries it: the event itself is fetched by id. */
export interface ThinEventNotification {
  id: string;
  object: 'v2.core.event';
  type: string;
  created: string;
  livemode: false;
  related_object?: { id: string; type: string; url: string };
}

/** Builds events from the current state. Each is also recorded, so `GET /v1/events/:id` finds it as in Stripe. */
export interface EventFactory {
  /**
   * Stripe's asynchronous validation of meter events found errors (`v1.billing.meter.error_report_triggered`, or
   * `v1.billing.meter.no_meter_found` for events that name no meter): a thin event, recorded for `/v2/core/events`.
   */
  meterErrorReport(
    type: 'v1.billing.meter.error_report_triggered' | 'v1.billing.meter.no_meter_found',
    meterId: string | undefined,
    errors: readonly MeterEventError[],
  ): ThinEventNotification;
  build(type: Stripe.EventBase['type'], object: object, previousAttributes?: object): Stripe.Event;
  invoice(type: InvoiceEventType, invoiceId: string): Stripe.Event;
  checkoutSession(type: CheckoutSessionEventType, sessionId: string): Stripe.Event;
  subscription(
    type: SubscriptionEventType,
    subscriptionId: string,
    previousAttributes?: Partial<Stripe.Subscription>,
  ): Stripe.Event;
}

export function createEventFactory(state: StripeState, now: () => number, apiVersion: string): EventFactory {
  const build: EventFactory['build'] = (type, object, previousAttributes) => {
    const built = fromFixture('event', {
      id: newId('evt'),
      api_version: apiVersion,
      created: now(),
      data: {
        object: structuredClone(object),
        ...(previousAttributes && { previous_attributes: structuredClone(previousAttributes) }),
      },
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      type,
    });
    // `Stripe.Event` ties each type to its object's type; this builder takes any pair, as tests need.
    const event = built as Stripe.Event;
    state.events.set(event.id, event);
    return event;
  };
  const meterErrorReport: EventFactory['meterErrorReport'] = (type, meterId, errors) => {
    const created = new Date(now() * 1000).toISOString();
    const byCode = new Map<string, MeterEventError[]>();
    for (const error of errors) byCode.set(error.code, [...(byCode.get(error.code) ?? []), error]);
    const notification: ThinEventNotification = {
      id: `evt_test_${randomBase62(24)}`,
      object: 'v2.core.event',
      type,
      created,
      livemode: false,
      ...(meterId && { related_object: { id: meterId, type: 'billing.meter', url: `/v1/billing/meters/${meterId}` } }),
    };
    const event = {
      ...notification,
      data: {
        developer_message_summary: `${errors.length} meter event(s) failed validation`,
        reason: {
          error_count: errors.length,
          error_types: [...byCode].map(([code, sampled]) => ({
            code,
            error_count: sampled.length,
            sample_errors: sampled.map((error) => ({ error_message: error.message, request: { identifier: error.identifier } })),
          })),
        },
        validation_start: created,
        validation_end: created,
      },
    };
    state.v2Events.set(event.id, event as unknown as Stripe.V2.Core.Event);
    return notification;
  };
  return {
    build,
    meterErrorReport,
    invoice: (type, invoiceId) => build(type, renderInvoice(requireInvoice(state, invoiceId))),
    checkoutSession: (type, sessionId) =>
      build(type, requireObject(state.checkoutSessions, sessionId, 'checkout.session')),
    subscription: (type, subscriptionId, previousAttributes) =>
      build(type, requireObject(state.subscriptions, subscriptionId, 'subscription'), previousAttributes),
  };
}
