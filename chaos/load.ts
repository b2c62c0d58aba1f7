/**
 * Paced Check load, played as Envoy plays it: each call is a Check on the canonical protos; with access logs on, the
 * entry Envoy writes once the response is sent follows, carrying the Check's dynamic metadata as Envoy copies it
 * (so the usage id is whatever the Check put there).
 */
import type { ServiceError } from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { AccessLogClient, httpEntry, type AccessLogStream } from '../test/support/access-log.js';
import { FakeEnvoy } from '../test/support/envoy.js';

export interface CallRecord {
  /** When the Check was sent, ms since the load started. */
  at: number;
  latencyMs: number;
  /** 'allowed', 'denied 503', … or 'error UNAVAILABLE' (a failed gRPC call, Envoy's error path). */
  outcome: string;
}

export interface LoadOptions {
  address: string;
  key: string;
  ratePerSecond: number;
  /** Send each call's access-log entry on one of a few long-lived ALS streams, as Envoy does. */
  accessLogs?: boolean;
}

const grpcCodeNames: Record<number, string> = { 1: 'CANCELLED', 2: 'UNKNOWN', 4: 'DEADLINE_EXCEEDED', 8: 'RESOURCE_EXHAUSTED', 13: 'INTERNAL', 14: 'UNAVAILABLE' };

export class CheckLoad {
  readonly calls: CallRecord[] = [];
  /** Access-log entries handed to a stream (one per call, allowed, denied or failed). */
  entriesSent = 0;
  /** Entries a stream could not take because the server had ended it (Envoy drops those). */
  entriesDropped = 0;
  private readonly envoys: FakeEnvoy[];
  private readonly als: AccessLogClient | undefined;
  private streams: AccessLogStream[] = [];
  private readonly endedStreams = new WeakSet<AccessLogStream>();
  private readonly started = performance.now();
  private running = true;
  private readonly loop: Promise<void>;
  private readonly inFlight = new Set<Promise<void>>();
  private sequence = 0;

  constructor(private readonly options: LoadOptions) {
    // Envoy spreads Checks over a few HTTP/2 connections.
    this.envoys = Array.from({ length: 4 }, () => new FakeEnvoy(options.address));
    this.als = options.accessLogs ? new AccessLogClient(options.address) : undefined;
    this.loop = this.run();
  }

  now(): number {
    return performance.now() - this.started;
  }

  private async run(): Promise<void> {
    const tickMs = 10;
    let due = 0;
    while (this.running) {
      due += (this.options.ratePerSecond * tickMs) / 1000;
      for (; due >= 1; due--) {
        const call = this.call();
        this.inFlight.add(call);
        void call.finally(() => this.inFlight.delete(call));
      }
      await sleep(tickMs);
    }
  }

  private async call(): Promise<void> {
    const envoy = this.envoys[this.sequence++ % this.envoys.length]!;
    const at = this.now();
    let outcome: string;
    let metadata: Record<string, string | number | boolean> | undefined;
    let requestId = `chaos-${process.pid}-${this.sequence}`;
    let status = 403;
    try {
      const result = await envoy.check({ method: 'GET', path: '/api/v1/pets', key: this.options.key, headers: { 'x-request-id': requestId } });
      requestId = result.requestHeaders['x-request-id']!;
      outcome = result.allowed ? 'allowed' : `denied ${result.httpStatus}`;
      metadata = result.metadata;
      status = result.allowed ? 200 : result.httpStatus;
    } catch (error) {
      const code = (error as ServiceError).code;
      outcome = `error ${grpcCodeNames[code] ?? code}`;
    }
    this.calls.push({ at, latencyMs: this.now() - at, outcome });
    if (this.als) await this.log(httpEntry({ requestId, status, ...(metadata ? { authz: metadata } : {}) }));
  }

  /** Writes one entry; a stream the server ended is replaced, as Envoy reconnects (the entry itself is lost). */
  private async log(entry: Record<string, unknown>): Promise<void> {
    if (this.streams.length === 0) this.streams = Array.from({ length: 2 }, () => this.openStream());
    const stream = this.streams[this.sequence % this.streams.length]!;
    if (this.endedStreams.has(stream)) {
      this.entriesDropped++;
      this.streams = this.streams.filter((open) => open !== stream);
      return;
    }
    this.entriesSent++;
    await stream.send([entry]);
  }

  private openStream(): AccessLogStream {
    const stream = this.als!.open();
    void stream.answer.then(() => this.endedStreams.add(stream));
    return stream;
  }

  /** Stops sending and waits for the calls in flight; ends the access-log streams. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all(this.inFlight);
    await Promise.all(this.streams.map((stream) => Promise.race([stream.end(), sleep(5_000)])));
    for (const envoy of this.envoys) envoy.close();
    this.als?.close();
  }
}

/** Outcome counts and latency percentiles of the calls sent in [from, to) ms. */
export function summarize(calls: CallRecord[], from = 0, to = Infinity) {
  const window = calls.filter((call) => call.at >= from && call.at < to);
  const outcomes: Record<string, number> = {};
  for (const call of window) outcomes[call.outcome] = (outcomes[call.outcome] ?? 0) + 1;
  const latencies = window.map((call) => call.latencyMs).sort((a, b) => a - b);
  const percentile = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return { calls: window.length, outcomes, p50Ms: round(percentile(50)), p99Ms: round(percentile(99)), maxMs: round(latencies.at(-1) ?? NaN) };
}

export const round = (value: number, digits = 2) => Number(value.toFixed(digits));

export function formatOutcomes(outcomes: Record<string, number>): string {
  return Object.entries(outcomes)
    .sort(([, a], [, b]) => b - a)
    .map(([outcome, count]) => `${outcome}: ${count}`)
    .join(', ');
}
