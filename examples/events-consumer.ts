/**
 * A consumer of Tollgate's events (docs/EVENTS.md): a durable JetStream consumer that hands each CloudEvent to a
 * handler and acknowledges it once handled. As a script it prints the events:
 *
 *   npx tsx examples/events-consumer.ts nats://127.0.0.1:4222 TOLLGATE 'tollgate.usage.>'
 */
import { pathToFileURL } from 'node:url';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

export interface TollgateEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time: string;
  subject?: string;
  datacontenttype: 'application/json';
  data: Record<string, unknown>;
}

export interface ConsumerOptions {
  servers: string;
  stream: string;
  /** The consumer's name: after a restart it resumes after the last event it acknowledged. */
  durable: string;
  /** Which events, e.g. `tollgate.usage.>` or `tollgate.*.acme`. */
  filter: string;
  /**
   * Must be idempotent by `event.id`: an event handled but not acknowledged (a crash in between) comes again, e.g.
   * `INSERT … ON CONFLICT (event_id) DO NOTHING`.
   */
  handle(event: TollgateEvent): Promise<void>;
}

export async function consumeTollgateEvents(options: ConsumerOptions): Promise<{ stop(): Promise<void> }> {
  const connection = await connect({ servers: options.servers });
  const manager = await jetstreamManager(connection);
  await manager.consumers.add(options.stream, { durable_name: options.durable, ack_policy: AckPolicy.Explicit, filter_subject: options.filter });
  const consumer = await jetstream(connection).consumers.get(options.stream, options.durable);
  const messages = await consumer.consume();
  const done = (async () => {
    for await (const message of messages) {
      await options.handle(message.json<TollgateEvent>());
      message.ack();
    }
  })();
  return {
    stop: async () => {
      await messages.close();
      await done;
      await connection.close();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [servers = 'nats://127.0.0.1:4222', stream = 'TOLLGATE', filter = 'tollgate.>'] = process.argv.slice(2);
  const consumer = await consumeTollgateEvents({
    servers,
    stream,
    durable: 'tollgate-example',
    filter,
    handle: async (event) => console.log(event.time, event.type, event.subject ?? '-', JSON.stringify(event.data)),
  });
  process.once('SIGINT', () => void consumer.stop());
}
