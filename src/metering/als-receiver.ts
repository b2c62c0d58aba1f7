import { type AccessLogHandler, type HttpLogEntries, Status, type StatusCode, type StreamAccessLogsMessageWire } from '../grpc/index.js';
import type { Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { noTracing, spanNames, SpanKind, type Tracing } from '../tracing/index.js';
import type { UsageMeter } from './meter.js';

export interface AccessLogReceiverDependencies {
  meter: Pick<UsageMeter, 'record' | 'saturated' | 'drained'>;
  /** One message's HTTP entries as spool rows (entry-rows.ts); throws if an entry is malformed. */
  toRows(entries: HttpLogEntries): Buffer;
  metrics: Pick<Metrics, 'alsEntriesReceived' | 'alsStreamsEnded'>;
  logger: Logger;
  /** A span per message received: entries to rows to the spool. */
  tracing?: Pick<Tracing, 'span'>;
}

type StreamOutcome = 'closed' | 'cancelled' | 'malformed' | 'spool_unavailable';

/**
 * envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs: Envoy streams entries and never reads a reply.
 * Each message's entries are spooled as it is delivered; while the spool is over its limit the stream is paused, so
 * HTTP/2 flow control pushes back on Envoy instead of entries being dropped here. A reset stream first delivers what
 * it had received (the transport guarantees it), so nothing Envoy sent is lost to a pause.
 * Every stream ends through one place, which answers it (unless Envoy reset it), counts the outcome and forgets it.
 */
export class AccessLogReceiver {
  /** Each open stream, by the function that ends it with an empty response. */
  private readonly openStreams = new Map<() => void, { held: number }>();

  constructor(private readonly deps: AccessLogReceiverDependencies) {}

  get openStreamCount(): number {
    return this.openStreams.size;
  }

  /** Messages the open streams have taken in and not yet delivered: those held while paused by backpressure. */
  get heldMessages(): number {
    let held = 0;
    for (const stream of this.openStreams.values()) held += stream.held;
    return held;
  }

  readonly handle: AccessLogHandler = (call) => {
    const { meter, metrics, logger, tracing = noTracing } = this.deps;
    let identifier: StreamAccessLogsMessageWire['identifier'];
    let received = 0;
    let ended = false;
    const endStream = (outcome: StreamOutcome, error?: { code: StatusCode; details: string }) => {
      if (ended) return;
      // What a paused stream holds was sent by Envoy: spool it before the stream is answered.
      if (outcome === 'closed') call.deliverHeld();
      if (ended) return; // a held message ended the stream its own way
      ended = true;
      this.openStreams.delete(close);
      metrics.alsStreamsEnded.inc({ outcome });
      if (outcome === 'cancelled') {
        logger.debug({ node: identifier?.node?.id, received }, 'access log stream reset by Envoy');
        return;
      }
      if (error) call.fail(error.code, error.details);
      else call.respond({});
      logger.debug({ node: identifier?.node?.id, logName: identifier?.log_name, received, outcome }, 'access log stream ended');
    };
    const close = () => endStream('closed');
    this.openStreams.set(close, call);

    /** One message's entries as rows into the spool; a malformed entry or a failing spool ends the stream. */
    const spool = (entries: HttpLogEntries, count: number) => {
      let rows: Buffer;
      try {
        rows = this.deps.toRows(entries);
      } catch (error) {
        const err = (error as Error).message;
        logger.warn({ node: identifier?.node?.id, err, received }, 'malformed access log message; ending the stream');
        endStream('malformed', { code: Status.INVALID_ARGUMENT, details: `malformed StreamAccessLogsMessage: ${err}` });
        return;
      }
      received += count;
      metrics.alsEntriesReceived.inc(count);
      try {
        meter.record(rows, count);
      } catch (error) {
        logger.error({ err: (error as Error).message, entries: count }, 'cannot spool access log entries; ending the stream');
        endStream('spool_unavailable', { code: Status.UNAVAILABLE, details: 'usage spool unavailable' });
      }
    };

    call.onMessage((message) => {
      if (ended) return;
      if ('undecodable' in message) {
        logger.warn({ node: identifier?.node?.id, err: message.undecodable, received }, 'malformed access log message; ending the stream');
        endStream('malformed', { code: Status.INVALID_ARGUMENT, details: `malformed StreamAccessLogsMessage: ${message.undecodable}` });
        return;
      }
      // Only the first message of a stream names the node and log; a reconnect sends it again.
      identifier ??= message.identifier;
      const entries = message.http_logs;
      if (!entries?.spans.length) return; // tcp_logs, or an identifier-only message: nothing to meter
      const count = entries.spans.length / 2;
      tracing.span(spanNames.ingestReceive, { 'tollgate.ingest.entries': count }, () => spool(entries, count), SpanKind.CONSUMER);
      if (ended) return;
      if (meter.saturated) {
        call.pause();
        void meter.drained().then(() => call.resume());
      }
    });
    call.onEnd(close);
    call.onCancel(() => endStream('cancelled'));
  };

  /** Answers every open stream, e.g. when draining: Envoy opens a new one, to another replica once this one stops. */
  endStreams(): void {
    for (const close of [...this.openStreams.keys()]) close();
  }
}
