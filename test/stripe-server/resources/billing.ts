// Billing meters (create, retrieve, list, event summaries) and meter events, de-duplicated by `identifier`.
import type Stripe from 'stripe';
import { z } from 'zod';
import { invalidParam, invalidRequest } from '../errors.js';
import { fromFixture } from '../fixtures.js';
import { newId, randomBase62 } from '../ids.js';
import { endpoint, integer, listParams, noParams, oneOf, parseParams, text } from '../params.js';
import { pathParam, route, type ApiRequest, type Route } from '../router.js';
import { listPage, newestFirst, requireObject } from '../state.js';

const MINUTE = 60;
const DAY = 86_400;
/** Stripe rejects a repeated identifier "within a rolling period of at least 24 hours". */
const IDENTIFIER_UNIQUENESS_WINDOW = DAY;
/** Event timestamps may be up to 35 days old and up to 5 minutes ahead. */
const OLDEST_EVENT_AGE = 35 * DAY;
const LATEST_EVENT_LEAD = 5 * MINUTE;
const MAX_IDENTIFIER_LENGTH = 100;

const meterParams = endpoint({
  default_aggregation: z.strictObject({ formula: oneOf(['count', 'last', 'sum']) }),
  display_name: text(),
  event_name: text(),
  customer_mapping: z.strictObject({ event_payload_key: text(), type: oneOf(['by_id']) }).optional(),
  event_time_window: oneOf(['day', 'hour']).optional(),
  value_settings: z.strictObject({ event_payload_key: text() }).optional(),
});

const listMeterParams = endpoint({ ...listParams, status: oneOf(['active', 'inactive']).optional() });

const meterEventParams = endpoint({
  event_name: text(),
  payload: z.record(z.string(), z.string()),
  identifier: text().optional(),
  timestamp: integer().optional(),
});

const eventSummaryParams = endpoint({
  ...listParams,
  customer: text(),
  start_time: integer(),
  end_time: integer(),
});

function createMeter({ params, state, now }: ApiRequest): Stripe.Billing.Meter {
  const input = parseParams(meterParams, params);
  const taken = [...state.meters.values()].find((meter) => meter.event_name === input.event_name);
  if (taken) {
    throw invalidRequest(`A meter (${taken.id}) with event_name '${input.event_name}' already exists.`, {
      param: 'event_name',
    });
  }
  const meter = fromFixture('billing.meter', {
    id: `mtr_test_${randomBase62(32)}`,
    created: now,
    customer_mapping: input.customer_mapping ?? { event_payload_key: 'stripe_customer_id', type: 'by_id' },
    default_aggregation: input.default_aggregation,
    display_name: input.display_name,
    event_name: input.event_name,
    event_time_window: input.event_time_window ?? null,
    livemode: false,
    status: 'active',
    status_transitions: { deactivated_at: null },
    updated: now,
    value_settings: input.value_settings ?? { event_payload_key: 'value' },
  });
  state.meters.set(meter.id, meter);
  return meter;
}

function retrieveMeter(request: ApiRequest): Stripe.Billing.Meter {
  parseParams(noParams, request.params);
  return requireObject(request.state.meters, pathParam(request), 'billing.meter');
}

function listMeters({ params, state }: ApiRequest): Stripe.ApiList<Stripe.Billing.Meter> {
  const input = parseParams(listMeterParams, params);
  const matching = newestFirst(state.meters.values()).filter(
    (meter) => input.status === undefined || meter.status === input.status,
  );
  return listPage(matching, input, '/v1/billing/meters', 'billing.meter');
}

/** Stripe validates the event's shape synchronously; whether a meter and customer match it is checked later and
 * reported asynchronously, so unmatched events are accepted here too (and simply never counted). */
function createMeterEvent({ params, state, now }: ApiRequest): Stripe.Billing.MeterEvent {
  const input = parseParams(meterEventParams, params);
  const timestamp = input.timestamp ?? now;
  if (timestamp < now - OLDEST_EVENT_AGE || timestamp > now + LATEST_EVENT_LEAD) {
    throw invalidParam(
      'timestamp',
      'The timestamp must be within the past 35 calendar days and no more than 5 minutes in the future.',
    );
  }
  if (input.identifier !== undefined && input.identifier.length > MAX_IDENTIFIER_LENGTH) {
    throw invalidParam('identifier', `The identifier must be at most ${MAX_IDENTIFIER_LENGTH} characters.`);
  }
  const identifier = input.identifier ?? newId('mevt');
  const existing = state.meterEvents.get(identifier);
  if (existing && now - existing.created < IDENTIFIER_UNIQUENESS_WINDOW) {
    throw invalidRequest(`An event already exists with identifier ${identifier}.`, {
      param: 'identifier',
      shouldRetry: false,
    });
  }
  const event = fromFixture('billing.meter_event', {
    created: now,
    event_name: input.event_name,
    identifier,
    livemode: false,
    payload: input.payload,
    timestamp,
  });
  state.meterEvents.set(identifier, event);
  return event;
}

/** Whole-number event values; Stripe's asynchronous validation drops events whose value is not a number. */
function eventValue(event: Stripe.Billing.MeterEvent, meter: Stripe.Billing.Meter): bigint | undefined {
  const raw = event.payload[meter.value_settings.event_payload_key];
  return raw !== undefined && /^-?\d+$/.test(raw) ? BigInt(raw) : undefined;
}

/** The meter's aggregate for one customer over [start_time, end_time), without a grouping window. */
function listEventSummaries(request: ApiRequest): Stripe.ApiList<Stripe.Billing.MeterEventSummary> {
  const input = parseParams(eventSummaryParams, request.params);
  for (const param of ['start_time', 'end_time'] as const) {
    if (input[param] % MINUTE !== 0) throw invalidParam(param, `${param} must be aligned to a minute boundary.`);
  }
  if (input.end_time <= input.start_time) throw invalidParam('end_time', 'end_time must be after start_time.');
  const meter = requireObject(request.state.meters, pathParam(request), 'billing.meter');
  const counted = [...request.state.meterEvents.values()]
    .filter(
      (event) =>
        event.event_name === meter.event_name &&
        event.payload[meter.customer_mapping.event_payload_key] === input.customer &&
        event.timestamp >= input.start_time &&
        event.timestamp < input.end_time &&
        eventValue(event, meter) !== undefined,
    )
    .sort((a, b) => a.timestamp - b.timestamp);
  const values = counted.map((event) => eventValue(event, meter) ?? 0n);
  const { formula } = meter.default_aggregation;
  const aggregate =
    formula === 'count'
      ? BigInt(values.length)
      : formula === 'last'
        ? (values.at(-1) ?? 0n)
        : values.reduce((sum, value) => sum + value, 0n);
  const summary = fromFixture('billing.meter_event_summary', {
    id: newId('mtrusg'),
    aggregated_value: Number(aggregate),
    end_time: input.end_time,
    livemode: false,
    meter: meter.id,
    start_time: input.start_time,
  });
  return listPage([summary], input, `/v1/billing/meters/${meter.id}/event_summaries`, 'billing.meter_event_summary');
}

export const billingRoutes: Route[] = [
  route('POST', '/v1/billing/meters', createMeter),
  route('GET', '/v1/billing/meters', listMeters),
  route('GET', '/v1/billing/meters/:id', retrieveMeter),
  route('GET', '/v1/billing/meters/:id/event_summaries', listEventSummaries),
  route('POST', '/v1/billing/meter_events', createMeterEvent),
];
