import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IdentityCache } from '../src/identity/identity-cache.js';
import { createCheckHandler } from '../src/check/check-handler.js';
import { memoizePeriods } from '../src/check/decide.js';
import type { Decision } from '../src/check/decision.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { ManualClock } from '../src/kernel/clock.js';
import { createLogger, silentLogger } from '../src/kernel/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { ResilientCounterStore } from '../src/counters/resilient.js';
import { periodContaining } from '../src/rating/period.js';
import { spanNames, startTracing, tracingSettings, type Tracing } from '../src/tracing/index.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { OtlpReceiver, type ExportedSpan } from './support/otlp-receiver.js';
import { startTestApp, testRedisUrl, type TestApp } from './support/services.js';
import { testUsageIdentity } from './support/usage.js';

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const otlpKind = { internal: 1, server: 2, client: 3, consumer: 5 };
const otlpStatusError = 2;

/** Stops a production-mode app and removes the counters it kept in Redis. */
async function closeApp(service: TestApp): Promise<void> {
  await service.close();
  const redis = new Redis(testRedisUrl);
  const keys = await redis.keys(`${service.env.TOLLGATE_REDIS_PREFIX}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}

/** Spans are exported only when the test flushes: the batch delay is longer than any test. */
const exportOnFlush = { OTEL_BSP_SCHEDULE_DELAY: '600000' };

describe('tracing on: spans exported over OTLP/HTTP (JSON) to a local receiver', () => {
  let receiver: OtlpReceiver;
  let service: TestApp;
  let envoy: FakeEnvoy;

  beforeAll(async () => {
    receiver = await OtlpReceiver.start();
    service = await startTestApp({
      mode: 'production',
      env: {
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'tollgate-under-test',
        ...exportOnFlush,
        // Rating and the Stripe sync run when the test asks, not on timers.
        TOLLGATE_BILLING_INTERVAL_MS: '0',
        TOLLGATE_STRIPE_WEBHOOK_SECRET: 'whsec_tracing_test',
        TOLLGATE_STRIPE_SYNC_INTERVAL_MS: '3600000',
      },
    });
    envoy = new FakeEnvoy(service.grpcAddress);
  });

  afterAll(async () => {
    envoy?.close();
    if (service) await closeApp(service);
    await receiver?.close();
  });

  async function newKey(plan: string) {
    const customerId = `traced-${hex(4)}`;
    expect((await service.admin('POST', '/v1/customers', { id: customerId, name: 'Traced' })).status).toBe(201);
    const created = await service.admin('POST', '/v1/keys', { customer: customerId, plan });
    expect(created.status).toBe(201);
    await service.app.identities.refresh();
    return { key: created.body.key as string, customerId };
  }

  const exported = async () => {
    await service.app.tracing.forceFlush();
    return receiver.spans();
  };

  it('continues the caller trace from traceparent: a server span for the Check, with the decision and counter spans as children', async () => {
    const { key, customerId } = await newKey('pro');
    const traceId = hex(16);
    const callerSpanId = hex(8);
    const outcome = await envoy.check({
      method: 'GET',
      path: '/api/v1/pets',
      key,
      headers: { traceparent: `00-${traceId}-${callerSpanId}-01`, tracestate: 'caller=t61rcWkgMzE' },
    });
    expect(outcome.allowed).toBe(true);

    const spans = (await exported()).filter((span) => span.traceId === traceId);
    const check = spans.find((span) => span.name === spanNames.check);
    expect(check, 'the Check span').toBeDefined();
    expect(check!.parentSpanId).toBe(callerSpanId);
    expect(check!.kind).toBe(otlpKind.server);
    expect(check!.traceState).toBe('caller=t61rcWkgMzE');
    expect(check!.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.method': 'Check',
      'tollgate.decision': 'allow',
      'tollgate.customer.id': customerId,
      'tollgate.plan.id': 'pro',
      'tollgate.endpoint.id': 'list-pets',
      'tollgate.request_id': outcome.requestHeaders['x-request-id'],
    });
    expect(check!.attributes['tollgate.reason']).toBeUndefined();
    expect(check!.resource).toMatchObject({ 'service.name': 'tollgate-under-test', 'service.version': expect.any(String) });

    const decide = spans.find((span) => span.name === spanNames.checkDecide);
    const count = spans.find((span) => span.name === spanNames.checkCount);
    expect(decide?.parentSpanId).toBe(check!.spanId);
    expect(count?.parentSpanId).toBe(check!.spanId);
    expect(count!.attributes['tollgate.limits']).toBeGreaterThan(0);
    expect(spans).toHaveLength(3);
    // Identifiers and codes only: the key is in no attribute of any span.
    expect(JSON.stringify(receiver.requests.map((request) => request.body.toString('utf8')))).not.toContain(key);
  });

  it('records a denial with its reason, and no counter span when nothing was counted', async () => {
    const traceId = hex(16);
    const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', headers: { traceparent: `00-${traceId}-${hex(8)}-01` } });
    expect(outcome.httpStatus).toBe(401);
    const spans = (await exported()).filter((span) => span.traceId === traceId);
    expect(spans.map((span) => span.name).sort()).toEqual([spanNames.check, spanNames.checkDecide].sort());
    expect(spans.find((span) => span.name === spanNames.check)!.attributes).toMatchObject({
      'tollgate.decision': 'deny',
      'tollgate.reason': 'missing_key',
      'tollgate.denial.status': 401,
    });
  });

  it('cuts a long client-sent request id to the attribute length limit', async () => {
    const traceId = hex(16);
    await envoy.check({ method: 'GET', path: '/api/v1/pets', headers: { traceparent: `00-${traceId}-${hex(8)}-01`, 'x-request-id': 'r'.repeat(10_000) } });
    const check = (await exported()).find((span) => span.traceId === traceId && span.name === spanNames.check)!;
    expect(check.attributes['tollgate.request_id']).toBe('r'.repeat(256));
  });

  it('records nothing for a Check whose caller did not sample its trace, and starts a new trace without a valid traceparent', async () => {
    const { key } = await newKey('pro');
    const unsampled = hex(16);
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key, headers: { traceparent: `00-${unsampled}-${hex(8)}-00` } })).allowed).toBe(true);
    const before = new Set((await exported()).map((span) => span.spanId));
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key, headers: { traceparent: 'not-a-traceparent' } })).allowed).toBe(true);
    const spans = await exported();
    expect(spans.some((span) => span.traceId === unsampled)).toBe(false);
    const fresh = spans.filter((span) => !before.has(span.spanId) && span.name === spanNames.check);
    expect(fresh).toHaveLength(2);
    expect(fresh.map((span) => span.parentSpanId)).toEqual(['', '']);
  });

  it('gives an access-log batch a span on receipt and its database write a span of its own', async () => {
    const { key } = await newKey('pro');
    const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    const als = new AccessLogClient(service.grpcAddress);
    try {
      const stream = als.open();
      await stream.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata })]);
      expect(await stream.end()).toEqual({});
    } finally {
      als.close();
    }
    await service.app.metering.meter.flush();
    const spans = await exported();
    const received = spans.find((span) => span.name === spanNames.ingestReceive);
    expect(received?.kind).toBe(otlpKind.consumer);
    expect(received!.attributes['tollgate.ingest.entries']).toBe(1);
    const stored = spans.find((span) => span.name === spanNames.ingestStore && span.attributes['tollgate.ingest.stored'] === 1);
    expect(stored?.kind).toBe(otlpKind.client);
    expect(stored!.attributes).toMatchObject({ 'db.system.name': 'postgresql', 'tollgate.ingest.events': 1 });
  });

  it('gives a rating pass and a Stripe sync pass their own spans', async () => {
    await service.app.ratingLoop.runOnce();
    await service.app.stripe.sync!.pass();
    const spans = await exported();
    const rating = spans.find((span) => span.name === spanNames.ratingPass);
    expect(rating?.parentSpanId).toBe('');
    expect(rating!.attributes).toMatchObject({ 'tollgate.leader': true, 'tollgate.rating.rated': expect.any(Number) });
    const batches = spans.filter((span) => span.name === spanNames.ratingBatch && span.traceId === rating!.traceId);
    expect(batches.every((batch) => batch.parentSpanId === rating!.spanId)).toBe(true);
    expect(batches.length).toBeGreaterThan(0);
    const sync = spans.find((span) => span.name === spanNames.stripeSyncPass);
    expect(sync!.attributes).toMatchObject({ 'tollgate.leader': true, 'tollgate.stripe.suspended': 0 });
  });
});

describe('tracing off', () => {
  it('exports nothing, with an endpoint set but OTEL_SDK_DISABLED=true, and the Check works', async () => {
    const receiver = await OtlpReceiver.start();
    const service = await startTestApp({
      mode: 'production',
      env: { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', ...exportOnFlush },
    });
    const envoy = new FakeEnvoy(service.grpcAddress);
    try {
      expect(service.app.tracing.enabled).toBe(false);
      const customer = `untraced-${hex(4)}`;
      await service.admin('POST', '/v1/customers', { id: customer, name: 'Untraced' });
      const { key } = (await service.admin('POST', '/v1/keys', { customer, plan: 'pro' })).body as { key: string };
      await service.app.identities.refresh();
      const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key, headers: { traceparent: `00-${hex(16)}-${hex(8)}-01` } });
      expect(outcome.allowed).toBe(true);
      await service.app.tracing.forceFlush();
    } finally {
      envoy.close();
      await closeApp(service);
    }
    // The stop shut tracing down too: whatever it would have exported has been sent by now.
    expect(receiver.requests).toHaveLength(0);
    await receiver.close();
  });

  it('never reads the trace headers of a Check, and reads them once tracing is on', async () => {
    const read = new Set<string>();
    const headers = new Proxy({ 'x-request-id': 'req-1', traceparent: `00-${hex(16)}-${hex(8)}-01` } as Record<string, string>, {
      get: (target, name) => {
        if (typeof name === 'string') read.add(name);
        return target[name as string];
      },
    });
    const request = { attributes: { request: { http: { method: 'GET', path: '/api/v1/pets', host: 'api.example.com', headers } } } };
    const checkWith = (tracing: Tracing | undefined) => {
      const clock = new ManualClock(Date.UTC(2026, 10, 23));
      const local = new MemoryCounterStore(clock, 'tracing');
      const handler = createCheckHandler({
        catalog: () => loadCatalogFile('examples/petstore.yaml'),
        identities: { lookup: () => undefined } as unknown as IdentityCache,
        counters: new ResilientCounterStore(local, 'closed', local, silentLogger),
        clock,
        options: { keyHeader: 'x-api-key', keyFromBearer: true, headerPrefix: 'x-tollgate-' },
        periodOf: memoizePeriods(periodContaining),
        usage: testUsageIdentity,
        metrics: createMetrics(),
        logger: silentLogger,
        tracing,
      });
      return new Promise<Decision>((resolve) => handler(request as never, { respond: resolve } as never));
    };

    expect(await checkWith(undefined)).toMatchObject({ allowed: false, code: 'missing_key' });
    expect(read.has('traceparent')).toBe(false);
    const receiver = await OtlpReceiver.start();
    const tracing = startTracing(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url, ...exportOnFlush }), { version: 'test', logger: silentLogger });
    try {
      expect(await checkWith(tracing)).toMatchObject({ allowed: false, code: 'missing_key' });
      expect(read.has('traceparent')).toBe(true);
    } finally {
      await tracing.shutdown();
      await receiver.close();
    }
  });
});

describe('the OTLP exporter', () => {
  it('sends protobuf by default (http/protobuf), carrying the caller trace id', async () => {
    const receiver = await OtlpReceiver.start();
    const tracing = startTracing(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url.replace('/v1/traces', ''), ...exportOnFlush }), { version: 'test', logger: silentLogger });
    try {
      const traceId = hex(16);
      tracing.check!.start({ traceparent: `00-${traceId}-${hex(8)}-01` }, 'req-1').end({ allowed: true, reason: '' });
      await tracing.forceFlush();
      expect(receiver.requests).toHaveLength(1);
      expect(receiver.requests[0]!.path).toBe('/v1/traces');
      expect(receiver.requests[0]!.contentType).toBe('application/x-protobuf');
      expect(receiver.requests[0]!.body.includes(Buffer.from(traceId, 'hex'))).toBe(true);
    } finally {
      await tracing.shutdown();
      await receiver.close();
    }
  });

  it('logs a refused export once, and its recovery', async () => {
    const receiver = await OtlpReceiver.start();
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger(
      'info',
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
          done();
        },
      }),
    );
    const tracing = startTracing(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', ...exportOnFlush }), { version: 'test', logger });
    const oneSpan = () => tracing.span('test.work', {}, () => undefined);
    try {
      receiver.status = 400;
      oneSpan();
      await expect(tracing.forceFlush()).rejects.toThrow();
      oneSpan();
      await expect(tracing.forceFlush()).rejects.toThrow();
      receiver.status = 200;
      oneSpan();
      await tracing.forceFlush();
      expect(lines.filter((line) => line.msg === 'trace export failed; spans are dropped while the collector does not answer')).toHaveLength(1);
      expect(lines.filter((line) => line.msg === 'trace export resumed')).toHaveLength(1);
      expect(receiver.spans().map((span) => span.name)).toEqual(['test.work']);
    } finally {
      await tracing.shutdown();
      await receiver.close();
    }
  });

  it('marks a span failed when its work throws, recording the message and passing the error on', async () => {
    const receiver = await OtlpReceiver.start();
    const tracing = startTracing(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', ...exportOnFlush }), { version: 'test', logger: silentLogger });
    try {
      await expect(tracing.span('test.pass', {}, (scope) => scope.child('test.step', { step: 1 }, async () => Promise.reject(new Error('step broke'))))).rejects.toThrow('step broke');
      await tracing.forceFlush();
      const spans: ExportedSpan[] = receiver.spans();
      const step = spans.find((span) => span.name === 'test.step')!;
      const pass = spans.find((span) => span.name === 'test.pass')!;
      expect(step.parentSpanId).toBe(pass.spanId);
      expect(step.statusCode).toBe(otlpStatusError);
      expect(pass.statusCode).toBe(otlpStatusError);
      expect(step.events[0]).toMatchObject({ name: 'exception', attributes: { 'exception.message': 'step broke' } });
    } finally {
      await tracing.shutdown();
      await receiver.close();
    }
  });
});
