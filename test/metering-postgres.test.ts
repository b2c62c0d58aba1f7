import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { startTestApp } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { signedAllow } from './support/usage.js';

/** ALS → spool → PostgreSQL, through a real gRPC client, with duplicates, concurrent streams and an outage. */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const endpoints = [
  { id: 'list-pets', weight: 1, method: 'GET' },
  { id: 'create-pet', weight: 2, method: 'POST' },
  { id: 'upload-pet-image', weight: 10, method: 'POST' },
];

interface Sent {
  requestId: string;
  customer: string;
  endpoint: (typeof endpoints)[number];
  requestBytes: number;
  responseBytes: number;
  /** Signed once: an entry sent again carries the same usage id, as a call logged twice does. */
  authz: Record<string, string | number>;
}

/** The i-th call: 5 customers, 3 endpoints, sizes that differ per call so byte totals are meaningful. */
function call(i: number): Sent {
  const requestId = `req-${String(i).padStart(6, '0')}`;
  const customer = `cus_${i % 5}`;
  const endpoint = endpoints[i % 3]!;
  return {
    requestId,
    customer,
    endpoint,
    requestBytes: 200 + (i % 7),
    responseBytes: 1_000 + (i % 13),
    authz: signedAllow({
      customer_id: customer,
      subscription_id: `sub_${customer}`,
      plan_id: 'enterprise',
      product_id: 'petstore',
      endpoint_id: endpoint.id,
      key_id: `key_${customer}`,
      weight: endpoint.weight,
      period_start: Date.UTC(2026, 10, 1),
      request_id: requestId,
    }),
  };
}

const entryFor = (sent: Sent) =>
  httpEntry({
    requestId: sent.requestId,
    authz: sent.authz,
    method: sent.endpoint.method,
    status: 200,
    requestHeadersBytes: sent.requestBytes,
    requestBodyBytes: 0,
    responseHeadersBytes: 0,
    responseBodyBytes: sent.responseBytes,
  });

describe('ALS ingest into PostgreSQL', () => {
  it('stores exactly the unique entries sent over concurrent streams with duplicates, across a PostgreSQL outage with backpressure', async () => {
    const database = await TcpProxy.forUrl(process.env.TOLLGATE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test').start();
    const service = await startTestApp({
      mode: 'production',
      proxies: { database },
      // A small spool limit, so the outage also shows backpressure: the server stops reading rather than drop.
      env: { TOLLGATE_USAGE_BATCH_SIZE: '500', TOLLGATE_USAGE_FLUSH_MS: '100', TOLLGATE_SPOOL_FSYNC_MS: '50', TOLLGATE_SPOOL_MAX_BYTES: '100000' },
    });
    const als = new AccessLogClient(service.grpcAddress);
    cleanups.push(() => database.close(), () => service.close(), () => als.close());
    const metrics = service.app.metrics;
    const counterValue = async (counter: { get(): Promise<{ values: { value: number }[] }> }) =>
      (await counter.get()).values.reduce((sum, value) => sum + value.value, 0);
    const spoolEntries = async () => (await metrics.registry.getSingleMetric('tollgate_spool_entries')!.get()).values[0]!.value;

    const unique = 6_000;
    const calls = Array.from({ length: unique }, (_, i) => call(i));
    const streams = Array.from({ length: 4 }, () => als.open());
    // Each stream sends its share in batches of 50; every 10th call is sent again on another stream.
    const sendRange = (from: number, to: number) =>
      Promise.all(
        streams.map(async (stream, s) => {
          for (let start = from + s * 50; start < to; start += 50 * streams.length) {
            const batch = calls.slice(start, Math.min(start + 50, to));
            await stream.send(batch.map(entryFor));
            await streams[(s + 1) % streams.length]!.send(batch.filter((_, i) => i % 10 === 0).map(entryFor));
          }
        }),
      );

    await sendRange(0, unique / 2);
    await streams[0]!.sendTcp(); // TCP entries are not metered and must not disturb the stream
    await expect.poll(() => counterValue(metrics.usageEventsStored), { timeout: 10_000, interval: 50 }).toBeGreaterThan(0);

    await database.cut();
    const secondHalf = sendRange(unique / 2, unique);
    await expect.poll(() => counterValue(metrics.usageFlushFailures), { timeout: 10_000, interval: 50 }).toBeGreaterThan(0);
    const received = () => counterValue(metrics.alsEntriesReceived);
    await expect
      .poll(async () => {
        const before = await received();
        await sleep(300);
        return (await received()) === before;
      }, { timeout: 10_000 })
      .toBe(true);
    expect(await received()).toBeLessThan(unique + unique / 10);
    expect(await spoolEntries()).toBeGreaterThan(0);
    await database.restore();
    await secondHalf;

    const answers = await Promise.all(streams.map((stream) => stream.end()));
    expect(answers).toEqual(streams.map(() => ({})));
    await expect
      .poll(async () => (await service.app.db.query<{ count: number }>('SELECT count(*)::int AS count FROM usage_events'))[0]!.count, {
        timeout: 20_000,
        interval: 100,
      })
      .toBe(unique);
    // Every received entry was counted as stored or as a duplicate (a batch whose commit acknowledgement was lost in
    // the outage is stored once and counted as duplicates on its retry).
    expect(await received()).toBe(unique + unique / 10);
    await expect
      .poll(async () => (await counterValue(metrics.usageEventsStored)) + (await counterValue(metrics.usageEventsDuplicate)), { timeout: 5_000 })
      .toBe(unique + unique / 10);
    expect(await counterValue(metrics.usageEventsDuplicate)).toBeGreaterThanOrEqual(unique / 10);

    const expected = new Map<string, { calls: number; units: number; requestBytes: number; responseBytes: number }>();
    for (const sent of calls) {
      const key = `${sent.customer}/${sent.endpoint.id}`;
      const totals = expected.get(key) ?? { calls: 0, units: 0, requestBytes: 0, responseBytes: 0 };
      totals.calls += 1;
      totals.units += sent.endpoint.weight;
      totals.requestBytes += sent.requestBytes;
      totals.responseBytes += sent.responseBytes;
      expected.set(key, totals);
    }
    const rollups = await service.app.db.query<{ key: string; calls: string; units: string; request_bytes: string; response_bytes: string }>(
      `SELECT customer_id || '/' || endpoint_id AS key, sum(calls) AS calls, sum(units) AS units,
              sum(request_bytes) AS request_bytes, sum(response_bytes) AS response_bytes
       FROM usage_rollups GROUP BY 1 ORDER BY 1`,
    );
    expect(
      new Map(
        rollups.map((row) => [
          row.key,
          { calls: Number(row.calls), units: Number(row.units), requestBytes: Number(row.request_bytes), responseBytes: Number(row.response_bytes) },
        ]),
      ),
    ).toEqual(expected);
    // The rollups agree with the events they were built from.
    const [fromEvents] = await service.app.db.query<{ units: string }>('SELECT sum(weight) AS units FROM usage_events');
    expect(Number(fromEvents!.units)).toBe([...expected.values()].reduce((sum, totals) => sum + totals.units, 0));
    expect(await spoolEntries()).toBe(0);
  });
});
