/**
 * The publisher's pass, run by the scheduler (src/app.ts, job "event publishing") on the leader only: it sends the
 * outbox's unpublished events to the broker in outbox order, marks those the broker acknowledged, and deletes
 * published events once older than the retention. A failure leaves the rest in the outbox for the next pass, which
 * the scheduler backs off; a republished event carries the same id, which the broker de-duplicates.
 */
import type { Clock, Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import type { Db } from '../store/index.js';
import { toCloudEvent, type QueuedEvent } from './core/cloud-event.js';
import { OutboxTable } from './outbox.js';
import type { EventPublisher } from './port.js';

/** Published events deleted per statement, so one delete never holds many locks or a long transaction. */
const deleteBatch = 10_000;

export interface PublisherLoopOptions {
  /** CloudEvents `source` of every event. */
  source: string;
  /** Events read and sent at once. */
  batchSize: number;
  /** Published events are kept this long (for inspection), then deleted. */
  retentionMs: number;
}

export interface PublisherLoopDeps {
  db: Db;
  publisher: EventPublisher;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
}

export interface PublishPass {
  published: number;
  /** Refused by the broker for good and moved to `event_dead_letters`; present only when some were. */
  deadLettered?: number;
  /** The broker had these already: republished after a lost acknowledgement or a crash before marking. */
  duplicates: number;
  /** Published events deleted after their retention. */
  deleted: number;
  /** Why the pass stopped short; the unpublished rest waits for the next pass. */
  error?: unknown;
}

export class PublisherLoop {
  private readonly outbox: OutboxTable;
  /** Failed passes in a row, for the log: one warning when trouble starts, one line when it ends. */
  private failures = 0;

  constructor(
    private readonly deps: PublisherLoopDeps,
    private readonly options: PublisherLoopOptions,
  ) {
    this.outbox = new OutboxTable(deps.db);
  }

  /**
   * One pass. Never throws: a failure is in the result's `error`, counted and logged; the scheduler's job turns it
   * into a failed pass so that it backs off. An aborted `signal` (the service stopping) ends it after the batch in
   * flight.
   */
  async pass(signal?: AbortSignal): Promise<PublishPass> {
    const pass = await this.attempt(signal);
    if (pass.error === undefined) {
      if (this.failures > 0) this.deps.logger.info({ failedPasses: this.failures, broker: this.deps.publisher.description }, 'event publishing resumed');
      this.failures = 0;
      return pass;
    }
    this.failures += 1;
    // Once when the trouble starts, then at debug: a broker down for an hour must not flood the log.
    const log = this.failures === 1 ? this.deps.logger.warn.bind(this.deps.logger) : this.deps.logger.debug.bind(this.deps.logger);
    log({ err: describe(pass.error), broker: this.deps.publisher.description, failedPasses: this.failures }, 'event publishing failed; events wait in the outbox');
    return pass;
  }

  /** Closes the broker connection; the scheduler has stopped the passes before. */
  close(): Promise<void> {
    return this.deps.publisher.close();
  }

  private async attempt(signal: AbortSignal | undefined): Promise<PublishPass> {
    try {
      return await this.publish(signal);
    } catch (error) {
      // The broker could not be reached, or the database failed: the pass counts as failed.
      this.deps.metrics.eventPublishFailures.inc();
      return { published: 0, duplicates: 0, deleted: 0, error };
    }
  }

  private async publish(signal: AbortSignal | undefined): Promise<PublishPass> {
    const { publisher, clock, metrics } = this.deps;
    const pass: PublishPass = { published: 0, duplicates: 0, deleted: 0 };
    await publisher.connect();
    while (!signal?.aborted) {
      const batch = await this.outbox.unpublished(this.options.batchSize);
      if (batch.length === 0) break;
      const outcome = await publisher.publish(batch.map((event) => toCloudEvent(event, this.options.source)));
      const acknowledged = batch.slice(0, outcome.acknowledged);
      await this.outbox.markPublished(acknowledged, clock.now());
      countPublished(metrics, acknowledged, outcome.duplicates);
      pass.published += acknowledged.length;
      pass.duplicates += outcome.duplicates;
      const refused = outcome.refused === undefined ? undefined : batch[outcome.acknowledged];
      if (refused) {
        // Sending it again would be refused again and hold every later event back: set it aside and go on. The
        // events sent after it are sent again in the next batch, which the broker de-duplicates if it stored them.
        await this.outbox.deadLetter(refused, outcome.refused!, clock.now());
        metrics.eventsDeadLettered.inc({ type: refused.type });
        pass.deadLettered = (pass.deadLettered ?? 0) + 1;
        this.deps.logger.error({ eventId: refused.id, type: refused.type, reason: outcome.refused, broker: this.deps.publisher.description }, 'event refused by the broker for good; moved to event_dead_letters');
        continue;
      }
      if (outcome.error !== undefined || acknowledged.length < batch.length) {
        metrics.eventPublishFailures.inc();
        pass.error = outcome.error ?? new Error(`the broker acknowledged ${acknowledged.length} of ${batch.length} events`);
        return pass;
      }
      if (batch.length < this.options.batchSize) break;
    }
    const before = clock.now() - this.options.retentionMs;
    for (let deleted = deleteBatch; deleted === deleteBatch && !signal?.aborted; ) {
      deleted = await this.outbox.deletePublishedBefore(before, deleteBatch);
      pass.deleted += deleted;
    }
    return pass;
  }
}

function countPublished(metrics: Metrics, events: readonly QueuedEvent[], duplicates: number): void {
  const byType = new Map<string, number>();
  for (const event of events) byType.set(event.type, (byType.get(event.type) ?? 0) + 1);
  for (const [type, count] of byType) metrics.eventsPublished.inc({ type }, count);
  if (duplicates > 0) metrics.eventDuplicates.inc(duplicates);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
