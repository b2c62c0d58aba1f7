import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalogFile } from '../src/catalog/load.js';
import { loadEnvoyServices } from '../src/grpc/protos.js';
import { checkMethod } from '../src/check/check-method.js';
import { startGrpcServer, type RunningGrpcServer } from '../src/grpc/server.js';
import { Status } from '../src/grpc/transport.js';
import { silentLogger } from '../src/kernel/logger.js';
import { AccessLogReceiver } from '../src/metering/als-receiver.js';
import { encodeEntryRows } from '../src/metering/entry-rows.js';
import type { UsageMeter } from '../src/metering/meter.js';
import { DbUsageSink } from '../src/metering/sink.js';
import type { Metrics } from '../src/metrics/metrics.js';
import { PgliteDb } from '../src/store/pglite.js';
import { httpEntry } from './support/access-log.js';
import { startTestMeter } from './support/meter.js';
import { testUsageIdentity } from './support/usage.js';
import { openMigratedPglite } from './support/pglite-template.js';
import { emptyTables } from './support/empty-tables.js';

/**
 * The StreamAccessLogs handler on a real gRPC server, spooling into a real spool and PGlite, driven by a client that
 * sends bytes encoded with the canonical protos (and, where a test says so, bytes that are not a message).
 */

const petstore = loadCatalogFile('examples/petstore.yaml');
const methodPath = '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs';
const serialize = (loadEnvoyServices().accessLog.StreamAccessLogs as unknown as { requestSerialize(value: unknown): Buffer }).requestSerialize;
const identifier = { node: { id: 'envoy-test', cluster: 'edge' }, log_name: 'tollgate' };

const entry = (requestId: string) =>
  httpEntry({
    requestId,
    authz: { customer_id: 'cus_1', subscription_id: 'sub_1', plan_id: 'pro', product_id: 'petstore', endpoint_id: 'list-pets', key_id: 'key_1', weight: 1, decision: 'allow' },
  });
const httpMessage = (requestIds: string[], first = false) =>
  serialize({ ...(first ? { identifier } : {}), http_logs: { log_entry: requestIds.map(entry) } });
/** A length-delimited http_logs field that claims more bytes than follow. */
const truncatedMessage = Buffer.from([0x12, 0x40, 0x0a, 0x02]);

interface Harness {
  receiver: AccessLogReceiver;
  meter: UsageMeter;
  metrics: Metrics;
  /** Lets database writes through (see start's backpressure). */
  release(): void;
  /** While set, appending to the spool fails as a full disk would. */
  spoolFails: boolean;
  client: grpc.Client;
}

/** One raw StreamAccessLogs stream: writes whatever bytes it is given, resolves with the server's status. */
function openStream(client: grpc.Client) {
  let settle!: (status: { code: number; details: string }) => void;
  const status = new Promise<{ code: number; details: string }>((resolve) => (settle = resolve));
  const call = client.makeClientStreamRequest<Buffer, Buffer>(
    methodPath,
    (bytes) => bytes,
    (bytes) => bytes,
    (error) => settle(error ? { code: error.code, details: error.details } : { code: grpc.status.OK, details: '' }),
  );
  call.on('error', () => {});
  return { call, status, write: (bytes: Buffer) => new Promise<void>((resolve) => call.write(bytes, () => resolve())) };
}

describe('StreamAccessLogs handler', () => {
  let db: PgliteDb;
  let server: RunningGrpcServer;
  let harness: Harness;
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    db = await openMigratedPglite();
  });
  afterAll(() => db.close());

  /**
   * backpressure: the spool counts as full from the first entry and nothing is written until release(), so the
   * handler pauses the stream after its first message and the stream holds the messages that follow.
   */
  async function start(options: { backpressure?: boolean } = {}): Promise<Harness> {
    // Registered first, so it runs last: after the meter's stop has written what was left.
    cleanups.push(() => emptyTables(db, ['usage_events', 'usage_rollups']));
    let release!: () => void;
    const released = options.backpressure ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve();
    const { meter, metrics } = startTestMeter(
      new DbUsageSink(db),
      {
        batchSize: 1_000,
        maxSpoolBytes: options.backpressure ? 1 : undefined,
        wrap: (sink) => ({ write: async (chunks) => (await released, sink.write(chunks)), close: () => sink.close() }),
      },
      cleanups,
    );
    const context = { catalog: petstore, periodStartOf: () => Date.UTC(2026, 10, 1), usage: testUsageIdentity, now: Date.now(), newUsageId: randomUUID };
    const subject: Harness = {
      release: () => release(),
      meter,
      metrics,
      spoolFails: false,
      client: undefined as never,
      receiver: undefined as never,
    };
    subject.receiver = new AccessLogReceiver({
      meter: {
        record(rows, events) {
          if (subject.spoolFails) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          meter.record(rows, events);
        },
        get saturated() {
          return meter.saturated;
        },
        drained: () => meter.drained(),
      },
      toRows: (entries) => encodeEntryRows(entries, context),
      metrics,
      logger: silentLogger,
    });
    server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      check: checkMethod((_request, call) => call.fail(Status.UNIMPLEMENTED, 'not under test')),
      streamAccessLogs: subject.receiver.handle,
    });
    subject.client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    cleanups.push(async () => {
      release?.();
      subject.client.close();
      await server.shutdown(1_000);
    });
    return subject;
  }

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function storedRequestIds(): Promise<string[]> {
    await harness.meter.flush();
    return (await db.query<{ request_id: string }>('SELECT request_id FROM usage_events ORDER BY request_id')).map((row) => row.request_id);
  }

  async function entriesReceived(): Promise<number> {
    return (await harness.metrics.alsEntriesReceived.get()).values[0]?.value ?? 0;
  }

  /** Streams ended by outcome; the outcomes none ended with (exported at 0 from the start) are left out. */
  async function streamsEnded(): Promise<Record<string, number>> {
    const { values } = await harness.metrics.alsStreamsEnded.get();
    return Object.fromEntries(values.filter((value) => value.value > 0).map((value) => [value.labels.outcome, value.value]));
  }

  it('spools the HTTP entries of every stream, skips TCP and identifier-only messages, and answers each stream Envoy closes', async () => {
    harness = await start();
    const first = openStream(harness.client);
    const second = openStream(harness.client);
    await first.write(serialize({ identifier }));
    await first.write(httpMessage(['a1', 'a2']));
    await second.write(httpMessage(['b1'], true));
    await second.write(serialize({ tcp_logs: { log_entry: [{ connection_properties: { received_bytes: '10', sent_bytes: '20' } }] } }));
    await first.write(httpMessage(['a3']));
    await expect.poll(entriesReceived).toBe(4);
    expect(harness.receiver.openStreamCount).toBe(2);
    first.call.end();
    second.call.end();
    expect(await first.status).toEqual({ code: grpc.status.OK, details: '' });
    expect(await second.status).toEqual({ code: grpc.status.OK, details: '' });
    expect(await storedRequestIds()).toEqual(['a1', 'a2', 'a3', 'b1']);
    expect(harness.receiver.openStreamCount).toBe(0);
    expect(await streamsEnded()).toEqual({ closed: 2 });
  });

  it('ends a stream whose message does not decode with INVALID_ARGUMENT naming it, keeps the entries before it, and lets go of the stream', async () => {
    harness = await start();
    const stream = openStream(harness.client);
    await stream.write(httpMessage(['m1', 'm2'], true));
    void stream.write(truncatedMessage);
    const status = await stream.status;
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toMatch(/^malformed StreamAccessLogsMessage: invalid \w+: truncated$/);
    expect(await storedRequestIds()).toEqual(['m1', 'm2']);
    expect(harness.receiver.openStreamCount).toBe(0);
    expect(await streamsEnded()).toEqual({ malformed: 1 });
    // Envoy's next stream is taken as usual.
    const next = openStream(harness.client);
    await next.write(httpMessage(['m3'], true));
    next.call.end();
    expect((await next.status).code).toBe(grpc.status.OK);
    expect(await storedRequestIds()).toEqual(['m1', 'm2', 'm3']);
  });

  it('ends the stream with UNAVAILABLE when the spool cannot be written, and takes the next stream once it can', async () => {
    harness = await start();
    const stream = openStream(harness.client);
    await stream.write(httpMessage(['u1'], true));
    await expect.poll(entriesReceived).toBe(1);
    harness.spoolFails = true;
    void stream.write(httpMessage(['u2']));
    expect(await stream.status).toEqual({ code: grpc.status.UNAVAILABLE, details: 'usage spool unavailable' });
    // Received but not spooled: the entry the spool refused shows as the difference between the two counters.
    expect(await entriesReceived()).toBe(2);
    expect((await harness.metrics.usageEventsSpooled.get()).values[0]?.value).toBe(1);
    expect(harness.receiver.openStreamCount).toBe(0);
    harness.spoolFails = false;
    const next = openStream(harness.client);
    await next.write(httpMessage(['u3'], true));
    next.call.end();
    expect((await next.status).code).toBe(grpc.status.OK);
    expect(await storedRequestIds()).toEqual(['u1', 'u3']);
    expect(await streamsEnded()).toEqual({ spool_unavailable: 1, closed: 1 });
  });

  it('spools what a stream paused by backpressure still holds when Envoy resets it', async () => {
    harness = await start({ backpressure: true });
    const stream = openStream(harness.client);
    await stream.write(httpMessage(['r1'], true));
    for (const id of ['r2', 'r3', 'r4', 'r5']) await stream.write(httpMessage([id]));
    await expect.poll(entriesReceived).toBe(1);
    // Paused after the first, the stream takes in the messages that follow (up to its buffer's limit) unread.
    await expect.poll(() => harness.receiver.heldMessages).toBe(4);
    expect(await entriesReceived()).toBe(1);
    stream.call.cancel();
    await expect.poll(() => harness.receiver.openStreamCount).toBe(0);
    expect(await streamsEnded()).toEqual({ cancelled: 1 });
    harness.release();
    expect(await storedRequestIds()).toEqual(['r1', 'r2', 'r3', 'r4', 'r5']);
  });

  it('answers every open stream when draining, after spooling what each had received, paused ones too', async () => {
    harness = await start({ backpressure: true });
    const streams = [openStream(harness.client), openStream(harness.client)];
    await streams[0]!.write(httpMessage(['d1'], true));
    await streams[1]!.write(httpMessage(['e1'], true));
    await expect.poll(entriesReceived).toBe(2);
    for (const id of ['d2', 'd3']) await streams[0]!.write(httpMessage([id]));
    await expect.poll(() => harness.receiver.heldMessages).toBe(2);
    harness.receiver.endStreams();
    for (const stream of streams) expect(await stream.status).toEqual({ code: grpc.status.OK, details: '' });
    expect(harness.receiver.openStreamCount).toBe(0);
    expect(await streamsEnded()).toEqual({ closed: 2 });
    harness.release();
    expect(await storedRequestIds()).toEqual(['d1', 'd2', 'd3', 'e1']);
  });
});
