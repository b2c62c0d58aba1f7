import type { CloudEvent } from './core/cloud-event.js';

/** What a broker acknowledged of one batch, from its first event on. */
export interface PublishOutcome {
  /** Events stored by the broker, counted from the first: those after a failure are not counted, even if stored. */
  acknowledged: number;
  /** Of those, how many the broker had already (a republish it de-duplicated). */
  duplicates: number;
  /** Why the rest were not acknowledged; undefined when all were. */
  error?: unknown;
  /**
   * Set when the broker refused the event right after the acknowledged ones for good (too large for the stream,
   * say): sending it again would be refused again. The loop sets it aside as a dead letter and goes on.
   */
  refused?: string;
}

/**
 * The port every broker adapter implements (NATS JetStream now; Kafka can follow): it sends a batch in order, each
 * event keyed by its id for the broker's de-duplication, and reports how far the broker acknowledged it. It never
 * throws for a broker that is down: that is an outcome with an error.
 */
export interface EventPublisher {
  /** For logs: which broker, where (no credentials). */
  readonly description: string;
  /**
   * Connects if not connected, and prepares the destination (NATS: creates or checks the stream). Throws while the
   * broker is unreachable: the loop calls it on every pass, so a broker that is down shows even with nothing to send.
   */
  connect(): Promise<void>;
  publish(events: readonly CloudEvent[]): Promise<PublishOutcome>;
  close(): Promise<void>;
}
