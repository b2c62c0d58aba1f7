/** Events as Tollgate publishes them: CloudEvents 1.0 in the JSON event format (structured mode). Pure. */

export const eventTypes = {
  usageRecorded: 'io.tollgate.usage.recorded',
  alertRaised: 'io.tollgate.alert.raised',
  invoiceFinalized: 'io.tollgate.invoice.finalized',
} as const;

export type EventType = (typeof eventTypes)[keyof typeof eventTypes];

export const allEventTypes: readonly EventType[] = Object.values(eventTypes);

/** What a writer queues: the facts of one event, in the transaction that stores them. */
export interface OutboxEvent {
  type: EventType;
  /** The customer the event is about, when known: the CloudEvent's subject and the message's routing key. */
  customerId: string | null;
  /** Epoch ms: when it happened (the CloudEvent's time). */
  occurredAt: number;
  data: Record<string, unknown>;
}

/** A queued event read back from the outbox. */
export interface QueuedEvent extends OutboxEvent {
  /** The outbox position (publication order), a bigint as a string. */
  position: string;
  /** The event's own id: the CloudEvent id and the broker's de-duplication key. */
  id: string;
}

export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: EventType;
  /** RFC 3339, UTC, milliseconds. */
  time: string;
  /** The customer id; absent when the event has none (an access-log entry without a verified identity, say). */
  subject?: string;
  datacontenttype: 'application/json';
  data: Record<string, unknown>;
}

/** The media type of a message that carries a whole CloudEvent in the JSON format. */
export const cloudEventsJsonMediaType = 'application/cloudevents+json; charset=utf-8';

export function toCloudEvent(event: QueuedEvent, source: string): CloudEvent {
  return {
    specversion: '1.0',
    id: event.id,
    source,
    type: event.type,
    time: new Date(event.occurredAt).toISOString(),
    ...(event.customerId !== null && { subject: event.customerId }),
    datacontenttype: 'application/json',
    data: event.data,
  };
}

/** What an event is about, as the middle of its type: `usage`, `alert`, `invoice`. */
export function eventFamily(type: EventType): string {
  return type.split('.')[2]!;
}

/** Customer ids as the admin API accepts them (src/http/admin-routes.ts). */
const customerIdPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** The subject token of events without a customer id, or with one no customer can have. */
export const noCustomerToken = '_';

/**
 * The customer's part of a subject or routing key: one token, so `prefix.usage.*` matches every customer. A dot
 * would split it, so it is written %2E (customer ids never hold `%`, so the token maps back to one id). An id no
 * customer can have (claimed by an unverified access-log entry) becomes `_`, which no customer id is.
 */
export function customerToken(customerId: string | null): string {
  if (customerId === null || !customerIdPattern.test(customerId)) return noCustomerToken;
  return customerId.replaceAll('.', '%2E');
}

/** `<prefix>.<family>.<customer>`, e.g. `tollgate.usage.acme`. */
export function eventSubject(prefix: string, event: Pick<CloudEvent, 'type' | 'subject'>): string {
  return `${prefix}.${eventFamily(event.type)}.${customerToken(event.subject ?? null)}`;
}

/** Whether a NATS subject filter (`*` one token, `>` the rest) matches a subject. */
export function subjectMatches(filter: string, subject: string): boolean {
  const wanted = filter.split('.');
  const tokens = subject.split('.');
  for (let i = 0; i < wanted.length; i++) {
    if (wanted[i] === '>') return tokens.length > i;
    if (i >= tokens.length || (wanted[i] !== '*' && wanted[i] !== tokens[i])) return false;
  }
  return wanted.length === tokens.length;
}

/** Whether a stream capturing `filters` gets every event published under `prefix`. */
export function capturesEvents(filters: readonly string[], prefix: string): boolean {
  return allEventTypes.every((type) => {
    const subject = `${prefix}.${eventFamily(type)}.${noCustomerToken}`;
    return filters.some((filter) => subjectMatches(filter, subject));
  });
}
