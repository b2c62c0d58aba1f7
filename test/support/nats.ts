import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { CloudEvent } from '../../src/events/index.js';
import { uniqueName } from './services.js';

export const testNatsUrl = process.env.TOLLGATE_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/** One message as a JetStream consumer receives it. */
export interface ReceivedEvent {
  subject: string;
  /** The stream sequence. */
  seq: number;
  msgId: string | undefined;
  contentType: string | undefined;
  event: CloudEvent;
}

/**
 * A test's own stream name and subject prefix (streams may not overlap), and a consumer of that stream; close()
 * deletes the stream.
 */
export class TestStream {
  readonly name = uniqueName('TGTEST').toUpperCase();
  readonly prefix = uniqueName('tgtest');

  private constructor(
    private readonly connection: NatsConnection,
    private readonly manager: JetStreamManager,
  ) {}

  static async open(): Promise<TestStream> {
    const connection = await connect({ servers: testNatsUrl });
    return new TestStream(connection, await jetstreamManager(connection));
  }

  /** Messages stored in the stream now, duplicates dropped by JetStream included if any got through. */
  async storedCount(): Promise<number> {
    return (await this.manager.streams.info(this.name)).state.messages;
  }

  async info() {
    return this.manager.streams.info(this.name);
  }

  /** Every message in the stream, from the first, through an ordered consumer. */
  async readAll(): Promise<ReceivedEvent[]> {
    const count = await this.storedCount();
    if (count === 0) return [];
    const consumer = await jetstream(this.connection).consumers.get(this.name);
    const received: ReceivedEvent[] = [];
    for await (const message of await consumer.fetch({ max_messages: count, expires: 5_000 })) {
      received.push({
        subject: message.subject,
        seq: message.seq,
        msgId: message.headers?.get('Nats-Msg-Id'),
        contentType: message.headers?.get('Content-Type'),
        event: message.json<CloudEvent>(),
      });
      if (received.length === count) break;
    }
    return received;
  }

  /** Creates the stream as an operator might, capturing the subjects given, with the limits given. */
  async createCapturing(subjects: string[], limits: { max_msg_size?: number } = {}): Promise<void> {
    await this.manager.streams.add({ name: this.name, subjects, ...limits });
  }

  async close(): Promise<void> {
    await this.manager.streams.delete(this.name).catch(() => false);
    await this.connection.close();
  }
}
