/**
 * The NATS JetStream adapter of the event port, on the official clients. One connection, opened on first use and
 * again after it is lost: the client's own reconnection is off, so that while NATS is away a publish fails at
 * once and the publisher loop's backoff (on injected timers) decides when to try again, instead of messages piling
 * up in the client's buffer.
 */
import { readFileSync } from 'node:fs';
import { JetStreamApiCodes, JetStreamApiError, jetstream, jetstreamManager, RetentionPolicy, StorageType, type JetStreamClient } from '@nats-io/jetstream';
import { connect, credsAuthenticator, headers, InvalidArgumentError, nanos, type NatsConnection } from '@nats-io/transport-node';
import type { NatsConfig } from '../../config/index.js';
import type { Logger } from '../../kernel/index.js';
import { capturesEvents, cloudEventsJsonMediaType, eventSubject, type CloudEvent } from '../core/cloud-event.js';
import type { EventPublisher, PublishOutcome } from '../port.js';

interface Session {
  connection: NatsConnection;
  js: JetStreamClient;
}

export class NatsEventPublisher implements EventPublisher {
  readonly description: string;
  private session: Promise<Session> | undefined;
  private closed = false;

  constructor(
    private readonly settings: NatsConfig,
    private readonly logger: Logger,
  ) {
    this.description = `NATS JetStream ${settings.servers.map(withoutUserInfo).join(',')} stream ${settings.stream}`;
  }

  async connect(): Promise<void> {
    await this.open();
  }

  async publish(events: readonly CloudEvent[]): Promise<PublishOutcome> {
    let js: JetStreamClient;
    try {
      ({ js } = await this.open());
    } catch (error) {
      return { acknowledged: 0, duplicates: 0, error };
    }
    const { subjectPrefix, stream, timeoutMs } = this.settings;
    // All sent at once on the one connection, which keeps their order; acknowledged in that order.
    const acks = await Promise.allSettled(
      events.map((event) => {
        const header = headers();
        header.set('Content-Type', cloudEventsJsonMediaType);
        return js.publish(eventSubject(subjectPrefix, event), JSON.stringify(event), {
          msgID: event.id,
          // Refused unless it lands in our stream: another stream capturing the subject would not de-duplicate.
          expect: { streamName: stream },
          timeout: timeoutMs,
          headers: header,
        });
      }),
    );
    const outcome: PublishOutcome = { acknowledged: 0, duplicates: 0 };
    for (const ack of acks) {
      if (ack.status === 'rejected') {
        const refused = refusedForGood(ack.reason);
        return { ...outcome, error: ack.reason, ...(refused !== undefined && { refused }) };
      }
      outcome.acknowledged += 1;
      if (ack.value.duplicate) outcome.duplicates += 1;
    }
    return outcome;
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = await this.session?.catch(() => undefined);
    await session?.connection.close().catch(() => {});
  }

  private open(): Promise<Session> {
    if (this.closed) return Promise.reject(new Error('the NATS publisher is closed'));
    if (!this.session) {
      const session = this.establish();
      this.session = session;
      session.then(
        ({ connection }) =>
          void connection.closed().then((error) => {
            if (this.session === session) this.session = undefined;
            if (error && !this.closed) this.logger.warn({ err: error.message, broker: this.description }, 'NATS connection lost');
          }),
        () => {
          if (this.session === session) this.session = undefined;
        },
      );
    }
    return this.session;
  }

  private async establish(): Promise<Session> {
    const { servers, timeoutMs, token, credsFile, tls } = this.settings;
    // With TLS options the client refuses a server without TLS: a tls:// address means TLS, not "TLS if offered".
    const useTls = tls !== undefined || servers.some((server) => server.startsWith('tls://'));
    const connection = await connect({
      servers,
      name: 'tollgate',
      timeout: timeoutMs,
      reconnect: false,
      // A cluster's other members are reached through the configured servers only (the proxy, the Service).
      ignoreClusterUpdates: true,
      ...(token !== undefined && { token }),
      ...(credsFile !== undefined && { authenticator: credsAuthenticator(() => readFileSync(credsFile)) }),
      ...(useTls && { tls: { caFile: tls?.ca, certFile: tls?.cert, keyFile: tls?.key } }),
    });
    try {
      if (this.settings.createStream) await this.ensureStream(connection);
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
    this.logger.info({ broker: this.description }, 'connected to NATS');
    return { connection, js: jetstream(connection, { timeout: timeoutMs }) };
  }

  /** Creates the stream if it is missing; an existing one must capture every event subject. */
  private async ensureStream(connection: NatsConnection): Promise<void> {
    const { stream, subjectPrefix, duplicateWindowMs, timeoutMs } = this.settings;
    const manager = await jetstreamManager(connection, { timeout: timeoutMs });
    try {
      const info = await manager.streams.info(stream);
      if (!capturesEvents(info.config.subjects ?? [], subjectPrefix)) {
        throw new Error(`stream ${stream} does not capture ${subjectPrefix}.> (its subjects: ${(info.config.subjects ?? []).join(', ') || 'none'})`);
      }
      const windowMs = Math.round((info.config.duplicate_window ?? 0) / 1e6);
      if (windowMs < duplicateWindowMs) {
        this.logger.warn({ stream, windowMs, wantedMs: duplicateWindowMs }, 'the stream de-duplicates over a shorter window than configured');
      }
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
      await manager.streams.add({
        name: stream,
        subjects: [`${subjectPrefix}.>`],
        storage: StorageType.File,
        retention: RetentionPolicy.Limits,
        duplicate_window: nanos(duplicateWindowMs),
      });
      this.logger.info({ stream, subjects: [`${subjectPrefix}.>`], duplicateWindowMs }, 'NATS stream created');
    }
  }
}

/** JetStream's "message size exceeds maximum allowed" (the stream's max_msg_size). */
const messageTooLargeForStream = 10054;

/**
 * Why a publish can never succeed as it is, or undefined for a failure worth retrying (timeouts, a lost connection,
 * a missing stream an operator may create). Only a message over the stream's or the server's size limit qualifies.
 */
function refusedForGood(error: unknown): string | undefined {
  if (error instanceof JetStreamApiError && error.code === messageTooLargeForStream) return `JetStream: ${error.message}`;
  if (error instanceof InvalidArgumentError) return `NATS: ${error.message}`;
  return undefined;
}

/** A server URL as it may be logged: user and password (or token) removed. */
function withoutUserInfo(server: string): string {
  return server.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1');
}
