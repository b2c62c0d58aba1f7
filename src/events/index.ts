/**
 * Events out: every stored usage event, usage alert and finalized invoice, published as a CloudEvent to a broker
 * (NATS JetStream), exactly once from Tollgate's side. Writers queue events in the outbox in the transaction that
 * stores what they report; one leader publishes them in order, keyed by event id so that the broker drops a
 * republished one. docs/EVENTS.md has the settings, the messages and the guarantees.
 */
import type { EventsConfig } from '../config/index.js';
import type { Clock, JobOptions, Logger } from '../kernel/index.js';
import { type Metrics, registerEventOutboxGauges } from '../metrics/index.js';
import type { Db, Queryable } from '../store/index.js';
import { NatsEventPublisher } from './adapters/nats.js';
import { allEventTypes, type OutboxEvent } from './core/cloud-event.js';
import { OutboxTable, queueEvents } from './outbox.js';
import type { EventPublisher } from './port.js';
import { PublisherLoop, type PublishPass } from './publisher-loop.js';

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
  /** The broker adapter; NATS JetStream from the configuration unless given. */
  publisher?: EventPublisher;
}

export interface EventPublishing {
  outbox: EventOutbox;
  /** The publisher; undefined while events are off. */
  loop: PublisherLoop | undefined;
  /** The scheduler job that runs it (src/app.ts registers it); undefined while events are off. */
  job: { intervalMs: number; pass: (signal: AbortSignal) => Promise<PublishPass>; options: JobOptions } | undefined;
  /** Closes the broker connection, once the job has stopped. */
  stop(): Promise<void>;
}

/** Sets up publishing when a broker is configured; otherwise events are off. */
export function createEventPublishing(deps: EventPublishingDeps): EventPublishing {
  const { config, db, metrics, logger } = deps;
  // Every type has a series from the start (zero while off), so rate() and absence alerts work before the first event.
  for (const type of allEventTypes) {
    metrics.eventsPublished.inc({ type }, 0);
    metrics.eventsDeadLettered.inc({ type }, 0);
  }
  if (!config) return { outbox: eventsOff, loop: undefined, job: undefined, stop: async () => {} };
  const publisher = deps.publisher ?? new NatsEventPublisher(config.nats, logger);
  const outbox = new OutboxTable(db);
  registerEventOutboxGauges(metrics, () => outbox.backlog());
  const loop = new PublisherLoop(
    { db, publisher, clock: deps.clock, metrics, logger },
    { source: config.source, batchSize: config.batchSize, retentionMs: config.retentionMs },
  );
  logger.info({ broker: publisher.description, source: config.source }, 'publishing events');
  const pass = async (signal: AbortSignal) => {
    const result = await loop.pass(signal);
    // A failed pass (already counted and logged) makes the scheduler back off.
    if (result.error !== undefined) throw result.error;
    return result;
  };
  return {
    outbox: eventsOn,
    loop,
    job: { intervalMs: config.intervalMs, pass, options: { immediately: true, backoff: config.retry, onFailure: () => {} } },
    stop: () => loop.close(),
  };
}
