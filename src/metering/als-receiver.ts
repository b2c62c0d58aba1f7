import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../kernel/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { HttpAccessLogEntryWire, StreamAccessLogsMessageWire, StreamAccessLogsResponseWire } from './als-wire.js';
import type { UsageEvent } from './event.js';
import type { UsageMeter } from './meter.js';

export interface AccessLogReceiverDependencies {
  meter: Pick<UsageMeter, 'record' | 'saturated' | 'drained'>;
  /** Maps one message's HTTP entries to usage events. */
  toEvents(entries: HttpAccessLogEntryWire[]): UsageEvent[];
  metrics: Pick<Metrics, 'alsEntriesReceived'>;
  logger: Logger;
}

/**
 * envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs: Envoy streams entries and never reads a reply.
 * Each message's entries are spooled before the next message is read; while the spool is over its limit the stream
 * is paused, so HTTP/2 flow control pushes back on Envoy instead of entries being dropped here.
 */
export class AccessLogReceiver {
  /** Ends each open stream with an empty response. */
  private readonly openStreams = new Set<() => void>();

  constructor(private readonly deps: AccessLogReceiverDependencies) {}

  readonly handle: grpc.handleClientStreamingCall<StreamAccessLogsMessageWire, StreamAccessLogsResponseWire> = (call, callback) => {
    const { meter, metrics, logger } = this.deps;
    let identifier: StreamAccessLogsMessageWire['identifier'];
    let received = 0;
    let answered = false;
    const answer = (error: Partial<grpc.StatusObject> | null) => {
      if (answered) return;
      answered = true;
      this.openStreams.delete(end);
      if (error) callback(error);
      else callback(null, {});
      logger.debug({ node: identifier?.node?.id, logName: identifier?.log_name, received }, 'access log stream ended');
    };
    const end = () => answer(null);
    const forget = () => {
      answered = true;
      this.openStreams.delete(end);
    };
    this.openStreams.add(end);

    call.on('data', (message: StreamAccessLogsMessageWire) => {
      // Only the first message of a stream names the node and log; a reconnect sends it again.
      identifier ??= message.identifier;
      const entries = message.http_logs?.log_entry;
      if (!entries?.length) return; // tcp_logs, or an identifier-only message: nothing to meter
      received += entries.length;
      metrics.alsEntriesReceived.inc(entries.length);
      try {
        meter.record(this.deps.toEvents(entries));
      } catch (error) {
        logger.error({ err: (error as Error).message, entries: entries.length }, 'cannot spool access log entries; ending the stream');
        answer({ code: grpc.status.UNAVAILABLE, details: 'usage spool unavailable' });
        return;
      }
      if (meter.saturated && !call.isPaused()) {
        call.pause();
        void meter.drained().then(() => call.resume());
      }
    });
    call.on('end', end);
    call.on('cancelled', forget);
    call.on('error', forget);
  };

  /** Answers every open stream, e.g. when draining: Envoy opens a new one, to another replica once this one stops. */
  endStreams(): void {
    for (const end of [...this.openStreams]) end();
  }
}
