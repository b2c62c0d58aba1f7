/**
 * Events out: every stored usage event, usage alert and finalized invoice, published as a CloudEvent to a broker
 * (NATS JetStream), exactly once from Tollgate's side. Writers queue events in the outbox in the transaction that
 * stores what they report; one leader publishes them in order, keyed by event id so that the broker drops a
 * republished one. docs/EVENTS.md has the settings, the messages and the guarantees.
 */
import type { EventsConfig } from '../config/index.js';
import { type Clock, type Logger, systemTimers, type Timers } from '../kernel/index.js';
import { type Metrics, registerEventOutboxGauges } from '../metrics/index.js';
import type { Db, Queryable } from '../store/index.js';
import { NatsEventPublisher } from './adapters/nats.js';
import { allEventTypes, type OutboxEvent } from './core/cloud-event.js';
import { OutboxTable, queueEvents } from './outbox.js';
import type { EventPublisher } from './port.js';
import { PublisherLoop } from './publisher-loop.js';

export { eventTypes, type CloudEvent, type EventType, type OutboxEvent } from './core/cloud-event.js';
export { outboxInsertSql } from './outbox.js';
export type { EventPublisher, PublishOutcome } from './port.js';
export { NatsEventPublisher } from './adapters/nats.js';
export { PublisherLoop, type PublishPass, type PublisherLoopOptions } from './publisher-loop.js';

/** What writers get: they queue their events through it, in their own transaction. */
export interface EventOutbox {
  /**
   * True while events are published. Off, nothing is queued (the outbox would only grow); a writer that builds its
   * events in SQL (metering's usage insert) picks its statement by it.
   */
  readonly enabled: boolean;
  /** Queues events in the caller's transaction: they exist if and only if it commits. Nothing while off. */
  record(tx: Queryable, events: readonly OutboxEvent[]): Promise<void>;
}

export const eventsOff: EventOutbox = { enabled: false, record: async () => {} };
export const eventsOn: EventOutbox = { enabled: true, record: queueEvents };

export interface EventPublishingDeps {
  config: EventsConfig | undefined;
  db: Db;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  timers?: Timers;
  /** The broker adapter; NATS JetStream from the configuration unless given. */
  publisher?: EventPublisher;
}

export interface EventPublishing {
  outbox: EventOutbox;
  /** The publisher loop; undefined while events are off. */
  loop: PublisherLoop | undefined;
  stop(): Promise<void>;
}

/** Starts the publisher loop when a broker is configured; otherwise events are off. */
export function startEventPublishing(deps: EventPublishingDeps): EventPublishing {
  const { config, db, metrics, logger } = deps;
  if (!config) return { outbox: eventsOff, loop: undefined, stop: async () => {} };
  const publisher = deps.publisher ?? new NatsEventPublisher(config.nats, logger);
  const outbox = new OutboxTable(db);
  registerEventOutboxGauges(metrics, () => outbox.backlog());
  // Every type has a series from the start, so rate() and absence alerts work before the first event.
  for (const type of allEventTypes) metrics.eventsPublished.inc({ type }, 0);
  const loop = new PublisherLoop(
    { db, publisher, clock: deps.clock, timers: deps.timers ?? systemTimers, metrics, logger },
    { source: config.source, intervalMs: config.intervalMs, batchSize: config.batchSize, retry: config.retry, retentionMs: config.retentionMs },
  );
  loop.start();
  logger.info({ broker: publisher.description, source: config.source }, 'publishing events');
  return { outbox: eventsOn, loop, stop: () => loop.stop() };
}
