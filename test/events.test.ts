import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NatsConfig } from '../src/config/config.js';
import {
  capturesEvents,
  customerToken,
  eventSubject,
  subjectMatches,
  toCloudEvent,
} from '../src/events/core/cloud-event.js';
import {
  eventsOn,
  eventTypes,
  NatsEventPublisher,
  PublisherLoop,
  createEventPublishing,
  type EventPublisher,
  type OutboxEvent,
  type PublisherLoopOptions,
} from '../src/events/index.js';
import { OutboxTable } from '../src/events/outbox.js';
import { ManualClock } from '../src/kernel/clock.js';
import { Scheduler } from '../src/kernel/scheduler.js';
import { silentLogger } from '../src/kernel/logger.js';
import { encodeEventRow } from '../src/metering/event-rows.js';
import type { UsageEvent } from '../src/metering/event.js';
import { DbUsageSink } from '../src/metering/sink.js';
import { createMetrics, registerEventOutboxGauges, type Metrics } from '../src/metrics/metrics.js';
import type { Db } from '../src/store/db.js';
import { consumeTollgateEvents, type TollgateEvent } from '../examples/events-consumer.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { TestPki } from './support/certificates.js';
import { TestStream } from './support/nats.js';
import { freePort } from './support/ports.js';
import { serve } from './support/serve-process.js';
import { createTestDatabase, startTestApp, type TestApp } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { openMigratedPglite } from './support/pglite-template.js';
import { emptyTables } from './support/empty-tables.js';

/** Issue 26, item 1: usage events, alerts and finalized invoices out to NATS JetStream, exactly once. */

const natsHost = '127.0.0.1';
const natsPort = 4222;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const iso = (ms: number) => new Date(ms).toISOString();
const cloudEventsJson = 'application/cloudevents+json; charset=utf-8';

describe('events: the pure core', () => {
  it('writes a queued event as a CloudEvent 1.0, the customer as its subject', () => {
    const queued = { position: '7', id: 'e-1', type: eventTypes.alertRaised, customerId: 'acme', occurredAt: Date.UTC(2026, 10, 10), data: { id: 'alrt_1' } };
    expect(toCloudEvent(queued, '/tollgate')).toEqual({
      specversion: '1.0',
      id: 'e-1',
      source: '/tollgate',
      type: 'io.tollgate.alert.raised',
      time: '2026-11-10T00:00:00.000Z',
      subject: 'acme',
      datacontenttype: 'application/json',
      data: { id: 'alrt_1' },
    });
    expect(toCloudEvent({ ...queued, customerId: null }, '/tollgate')).not.toHaveProperty('subject');
  });

  it('routes by family and customer, one token per customer whatever its id', () => {
    expect(eventSubject('tollgate', { type: eventTypes.usageRecorded, subject: 'acme' })).toBe('tollgate.usage.acme');
    expect(eventSubject('a.b', { type: eventTypes.invoiceFinalized, subject: 'cus_1' })).toBe('a.b.invoice.cus_1');
    expect(eventSubject('tollgate', { type: eventTypes.alertRaised })).toBe('tollgate.alert._');
    // A dot would split the token; an id no customer can have (claimed by an unverified entry) goes to `_`.
    expect(customerToken('acme.eu')).toBe('acme%2Eeu');
    expect(customerToken('a.b.c')).toBe('a%2Eb%2Ec');
    for (const claimed of ['acme >', 'a*', '>', '', '.acme', 'x'.repeat(65), 'ac\nme']) expect(customerToken(claimed)).toBe('_');
    expect(customerToken(null)).toBe('_');
  });

  it('matches subject filters as NATS does, and tells whether a stream captures every event', () => {
    expect(subjectMatches('tollgate.>', 'tollgate.usage.acme')).toBe(true);
    expect(subjectMatches('tollgate.>', 'tollgate')).toBe(false);
    expect(subjectMatches('tollgate.*.acme', 'tollgate.usage.acme')).toBe(true);
    expect(subjectMatches('tollgate.*', 'tollgate.usage.acme')).toBe(false);
    expect(subjectMatches('tollgate.usage.acme', 'tollgate.usage.acme')).toBe(true);
    expect(subjectMatches('tollgate.usage.acme.x', 'tollgate.usage.acme')).toBe(false);
    expect(capturesEvents(['tollgate.>'], 'tollgate')).toBe(true);
    expect(capturesEvents(['>'], 'tollgate')).toBe(true);
    expect(capturesEvents(['tollgate.*.*'], 'tollgate')).toBe(true);
    expect(capturesEvents(['tollgate.usage.*', 'tollgate.alert.*', 'tollgate.invoice.*'], 'tollgate')).toBe(true);
    expect(capturesEvents(['tollgate.usage.*', 'tollgate.alert.*'], 'tollgate')).toBe(false);
    expect(capturesEvents(['other.>'], 'tollgate')).toBe(false);
  });
});

const periodStart = Date.UTC(2026, 10, 1);
const at = Date.UTC(2026, 10, 10, 12);

function usage(usageId: string, customerId: string | null, occurredAt: number): UsageEvent {
  const verified = customerId !== null;
  return {
    usageId,
    requestId: `req-${usageId}`,
    occurredAt,
    periodStart: verified ? periodStart : null,
    customerId,
    subscriptionId: verified ? 'sub_1' : null,
    planId: verified ? 'pro' : null,
    productId: verified ? 'petstore' : null,
    endpointId: 'list',
    keyId: verified ? 'key_1' : null,
    method: 'GET',
    status: 200,
    weight: 2,
    requestBytes: 100,
    responseBytes: 900,
    durationUs: 1_500,
    decision: verified ? 'allow' : null,
    reason: verified ? null : 'no_authz_metadata',
    billable: verified,
    captured: verified ? { region: 'eu' } : null,
  };
}

const rows = (...events: UsageEvent[]) => [Buffer.from(events.map(encodeEventRow).join(''))];

function alertEvent(n: number): OutboxEvent {
  return { type: eventTypes.alertRaised, customerId: `cus_${n}`, occurredAt: at + n, data: { id: `alrt_${n}`, type: 'quota.threshold_reached' } };
}

async function metricValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  return metric.values.find((value) => Object.entries(labels).every(([label, wanted]) => value.labels[label] === wanted))?.value ?? 0;
}

function natsSettings(stream: TestStream, servers: string[], overrides: Partial<NatsConfig> = {}): NatsConfig {
  return {
    servers,
    stream: stream.name,
    subjectPrefix: stream.prefix,
    createStream: true,
    duplicateWindowMs: 120_000,
    timeoutMs: 2_000,
    token: undefined,
    credsFile: undefined,
    tls: undefined,
    ...overrides,
  };
}

const loopOptions: PublisherLoopOptions = { source: '/tollgate-test', batchSize: 4, retentionMs: 60_000 };

describe('events: outbox and publisher against NATS JetStream (PGlite)', () => {
  let db: Db;
  let stream: TestStream;
  let metrics: Metrics;
  const clock = new ManualClock(at);
  const proxies: TcpProxy[] = [];
  const publishers: EventPublisher[] = [];

  beforeAll(async () => {
    db = await openMigratedPglite();
  });
  afterAll(() => db?.close());
  beforeEach(async () => {
    stream = await TestStream.open();
    metrics = createMetrics(new Registry());
    clock.set(at);
  });
  afterEach(async () => {
    for (const publisher of publishers.splice(0)) await publisher.close();
    for (const proxy of proxies.splice(0)) await proxy.close();
    await stream.close();
    await emptyTables(db, ['event_outbox', 'event_dead_letters', 'usage_events', 'usage_rollups', 'usage_captured_rollups', 'customer_first_calls']);
  });

  const nats = (servers = [`${natsHost}:${natsPort}`], overrides: Partial<NatsConfig> = {}) => {
    const publisher = new NatsEventPublisher(natsSettings(stream, servers, overrides), silentLogger);
    publishers.push(publisher);
    return publisher;
  };
  const proxied = async () => {
    const proxy = await new TcpProxy(natsHost, natsPort).start();
    proxies.push(proxy);
    return proxy;
  };
  const loop = (publisher: EventPublisher, options: Partial<PublisherLoopOptions> = {}) =>
    new PublisherLoop({ db, publisher, clock, metrics, logger: silentLogger }, { ...loopOptions, ...options });
  const queue = (events: OutboxEvent[]) => db.transaction((tx) => eventsOn.record(tx, events));
  const queuedIds = async () => (await db.query<{ event_id: string }>('SELECT event_id FROM event_outbox ORDER BY id')).map((row) => row.event_id);
  const unpublished = async () => Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM event_outbox WHERE published_at IS NULL'))[0]!.n);

  it('publishes every stored usage event, alert and invoice once, in outbox order, as structured CloudEvents keyed by event id', async () => {
    const sink = new DbUsageSink(db, { queueEvents: true });
    expect(await sink.write(rows(usage('u1', 'acme', at), usage('u2', 'acme.eu', at + 1), usage('u3', null, at + 2)))).toBe(3);
    // u2 again (a replayed spool segment): not stored again, so not queued again.
    expect(await sink.write(rows(usage('u2', 'acme.eu', at + 1), usage('u4', 'acme', at + 3)))).toBe(1);
    await queue([alertEvent(1), { type: eventTypes.invoiceFinalized, customerId: 'acme', occurredAt: at + 10, data: { id: 'inv_1', total_minor: '4900' } }]);
    expect(await unpublished()).toBe(6);

    expect(await loop(nats()).pass()).toEqual({ published: 6, duplicates: 0, deleted: 0 });

    const received = await stream.readAll();
    const ids = await queuedIds();
    expect(received.map((message) => message.event.id)).toEqual(ids);
    expect(received.map((message) => [message.subject, message.event.type])).toEqual([
      [`${stream.prefix}.usage.acme`, 'io.tollgate.usage.recorded'],
      [`${stream.prefix}.usage.acme%2Eeu`, 'io.tollgate.usage.recorded'],
      [`${stream.prefix}.usage._`, 'io.tollgate.usage.recorded'],
      [`${stream.prefix}.usage.acme`, 'io.tollgate.usage.recorded'],
      [`${stream.prefix}.alert.cus_1`, 'io.tollgate.alert.raised'],
      [`${stream.prefix}.invoice.acme`, 'io.tollgate.invoice.finalized'],
    ]);
    for (const message of received) {
      expect(message.msgId).toBe(message.event.id);
      expect(message.contentType).toBe(cloudEventsJson);
      expect(message.event.id).toMatch(uuid);
    }
    expect(received[0]!.event).toEqual({
      specversion: '1.0',
      id: ids[0],
      source: '/tollgate-test',
      type: 'io.tollgate.usage.recorded',
      time: iso(at),
      subject: 'acme',
      datacontenttype: 'application/json',
      data: {
        usage_id: 'u1',
        request_id: 'req-u1',
        occurred_at: iso(at),
        period_start: iso(periodStart),
        customer_id: 'acme',
        subscription_id: 'sub_1',
        plan_id: 'pro',
        product_id: 'petstore',
        endpoint_id: 'list',
        key_id: 'key_1',
        method: 'GET',
        status: 200,
        weight: 2,
        request_bytes: 100,
        response_bytes: 900,
        duration_us: 1_500,
        decision: 'allow',
        reason: null,
        billable: true,
        captured: { region: 'eu' },
      },
    });
    expect(received[2]!.event).not.toHaveProperty('subject');
    expect(received[2]!.event.data).toMatchObject({ usage_id: 'u3', customer_id: null, period_start: null, decision: null, billable: false });
    expect(received[5]!.event).toMatchObject({ subject: 'acme', time: iso(at + 10), data: { id: 'inv_1', total_minor: '4900' } });

    expect(await unpublished()).toBe(0);
    expect(await metricValue(metrics, 'tollgate_events_published_total', { type: 'io.tollgate.usage.recorded' })).toBe(4);
    expect(await metricValue(metrics, 'tollgate_events_published_total', { type: 'io.tollgate.alert.raised' })).toBe(1);
    expect(await metricValue(metrics, 'tollgate_events_published_total', { type: 'io.tollgate.invoice.finalized' })).toBe(1);
    expect(await metricValue(metrics, 'tollgate_events_publish_failures_total')).toBe(0);
    // Nothing left: a pass finds nothing to do.
    expect(await loop(nats()).pass()).toEqual({ published: 0, duplicates: 0, deleted: 0 });
  });

  it('creates the stream with the duplicate window, and refuses a stream that would not capture every event', async () => {
    await queue([alertEvent(1)]);
    expect((await loop(nats([`${natsHost}:${natsPort}`], { duplicateWindowMs: 90_000 })).pass())!.published).toBe(1);
    const { config } = await stream.info();
    expect(config.subjects).toEqual([`${stream.prefix}.>`]);
    expect(config.duplicate_window).toBe(90_000 * 1e6);

    // An operator's stream of that name, capturing the usage subjects only.
    await stream.close();
    stream = await TestStream.open();
    await stream.createCapturing([`${stream.prefix}.usage.>`]);
    await queue([alertEvent(2)]);
    const refused = await loop(nats()).pass();
    expect(String(refused!.error)).toContain(`does not capture ${stream.prefix}.>`);
    expect(refused!.published).toBe(0);
    // Not told to create it: nothing may be published either (JetStream would not store it), and nothing is lost.
    const unchecked = await loop(nats([`${natsHost}:${natsPort}`], { createStream: false })).pass();
    expect(unchecked!.error).toBeDefined();
    expect(await stream.storedCount()).toBe(0);
    expect(await unpublished()).toBe(1);
  });

  it('sets aside an event the stream refuses for good (too large), publishes those behind it, and counts and keeps it', async () => {
    await stream.createCapturing([`${stream.prefix}.>`], { max_msg_size: 2_000 });
    const large: OutboxEvent = { ...alertEvent(2), data: { id: 'alrt_2', note: 'x'.repeat(4_000) } };
    await queue([alertEvent(1), large, alertEvent(3), alertEvent(4), alertEvent(5)]);
    const [, largeId] = await queuedIds();

    // Batches of 4: JetStream stored 3 and 4 behind the refused event; sent again in the next batch, they are duplicates.
    expect(await loop(nats()).pass()).toEqual({ published: 4, duplicates: 2, deleted: 0, deadLettered: 1 });

    expect((await stream.readAll()).map((message) => message.event.data)).toEqual([1, 3, 4, 5].map((n) => alertEvent(n).data));
    expect(await unpublished()).toBe(0);
    const letters = await db.query<{ event_id: string; type: string; customer_id: string; reason: string; data: { note: string } }>(
      'SELECT event_id, type, customer_id, reason, data FROM event_dead_letters',
    );
    expect(letters).toEqual([
      { event_id: largeId, type: 'io.tollgate.alert.raised', customer_id: 'cus_2', reason: expect.stringContaining('message size exceeds maximum'), data: large.data },
    ]);
    expect(await metricValue(metrics, 'tollgate_events_dead_lettered_total', { type: 'io.tollgate.alert.raised' })).toBe(1);
    expect(await stream.storedCount()).toBe(4);
    // A failure that may pass (the broker unreachable) is never a dead letter: the events wait.
    await queue([alertEvent(6)]);
    expect((await loop(nats(['127.0.0.1:1'])).pass())!.deadLettered).toBeUndefined();
    expect(await unpublished()).toBe(1);
  });

  it('survives a NATS restart between passes: events wait in the outbox, lag shows, then go out, none lost or doubled', async () => {
    const proxy = await proxied();
    const publisher = nats([`${natsHost}:${proxy.port}`]);
    const publishing = loop(publisher);
    registerEventOutboxGauges(metrics, () => new OutboxTable(db).backlog());
    await queue([1, 2, 3, 4, 5].map(alertEvent));
    expect((await publishing.pass())!.published).toBe(5);

    await proxy.cut();
    await queue([6, 7, 8, 9, 10, 11].map(alertEvent));
    for (let attempt = 1; attempt <= 2; attempt++) {
      const failed = await publishing.pass();
      expect(failed!.published).toBe(0);
      expect(failed!.error).toBeDefined();
      expect(await metricValue(metrics, 'tollgate_events_publish_failures_total')).toBe(attempt);
    }
    expect(await metricValue(metrics, 'tollgate_events_outbox_pending')).toBe(6);
    expect(await metricValue(metrics, 'tollgate_events_outbox_lag_seconds')).toBeGreaterThan(0);

    await proxy.restore();
    expect((await publishing.pass())!.published).toBe(6);
    expect(await metricValue(metrics, 'tollgate_events_outbox_pending')).toBe(0);
    expect(await metricValue(metrics, 'tollgate_events_outbox_lag_seconds')).toBe(0);
    const received = await stream.readAll();
    expect(received.map((message) => message.event.id)).toEqual(await queuedIds());
    expect(new Set(received.map((message) => message.event.id)).size).toBe(11);
  });

  it('survives acknowledgements lost on the way back: what JetStream stored is republished, and dropped as a duplicate', async () => {
    const proxy = await proxied();
    const publishing = loop(nats([`${natsHost}:${proxy.port}`], { timeoutMs: 500 }), { batchSize: 50 });
    await queue([alertEvent(0)]);
    expect((await publishing.pass())!.published).toBe(1);

    await queue(Array.from({ length: 20 }, (_, n) => alertEvent(n + 1)));
    proxy.dropReplies();
    const unacknowledged = await publishing.pass();
    expect(unacknowledged!.error).toBeDefined();
    expect(unacknowledged!.published).toBe(0);
    // JetStream has them all the same.
    await expect.poll(() => stream.storedCount()).toBe(21);

    // NATS back on a fresh connection: the outbox republishes the 20, JetStream drops them as duplicates.
    await proxy.cut();
    await proxy.restore();
    await expect.poll(async () => (await publishing.pass())!.error, { timeout: 10_000, interval: 50 }).toBeUndefined();
    expect(await unpublished()).toBe(0);
    expect(await metricValue(metrics, 'tollgate_events_duplicates_total')).toBe(20);
    const received = await stream.readAll();
    expect(received.map((message) => message.event.id)).toEqual(await queuedIds());
    expect(await stream.storedCount()).toBe(21);
  });

  it('after a crash between the acknowledgement and the marking, the republish is dropped by JetStream (Nats-Msg-Id)', async () => {
    const real = nats();
    const crashing: EventPublisher = {
      description: real.description,
      connect: () => real.connect(),
      close: () => real.close(),
      publish: async (events) => {
        expect((await real.publish(events)).acknowledged).toBe(events.length);
        throw new Error('process killed before marking');
      },
    };
    await queue([1, 2, 3, 4, 5].map(alertEvent));
    const crashed = await loop(crashing).pass();
    expect(String(crashed!.error)).toContain('process killed before marking');
    expect(await unpublished()).toBe(5);
    expect(await stream.storedCount()).toBe(4);

    // The restarted process: a new publisher and loop, the same outbox.
    expect(await loop(nats()).pass()).toEqual({ published: 5, duplicates: 4, deleted: 0 });
    expect(await metricValue(metrics, 'tollgate_events_duplicates_total')).toBe(4);
    const received = await stream.readAll();
    expect(received.map((message) => message.event.id)).toEqual(await queuedIds());
    expect(await stream.storedCount()).toBe(5);
  });

  it('backs off on the scheduler while NATS is down, never throwing out of the pass, resumes at the interval, and stops', async () => {
    const proxy = await proxied();
    await proxy.cut();
    const timers = new ManualClock(0);
    const scheduler = new Scheduler({ timers, logger: silentLogger });
    const publishing = createEventPublishing({
      config: { nats: natsSettings(stream, [`${natsHost}:${proxy.port}`]), source: loopOptions.source, intervalMs: 1_000, batchSize: 4, retry: { baseMs: 100, maxMs: 350 }, retentionMs: 60_000 },
      db,
      clock,
      metrics,
      logger: silentLogger,
      publisher: nats([`${natsHost}:${proxy.port}`]),
    });
    await queue([1, 2, 3].map(alertEvent));
    const job = publishing.job!;
    const passes: { at: number; published?: number; failed: boolean }[] = [];
    scheduler.every(
      'event publishing',
      job.intervalMs,
      async (signal) => {
        const at = timers.now();
        try {
          const pass = await job.pass(signal);
          passes.push({ at, published: pass?.published, failed: false });
          return pass;
        } catch (error) {
          passes.push({ at, failed: true });
          throw error;
        }
      },
      job.options,
    );
    // At once, then 100, 200 and 350 ms (the cap) after each failure.
    await timers.advance(650);
    expect(passes).toEqual([0, 100, 300, 650].map((at) => ({ at, failed: true })));

    await proxy.restore();
    await timers.advance(350);
    expect(passes[4]).toEqual({ at: 1_000, published: 3, failed: false });
    await timers.advance(999);
    expect(passes).toHaveLength(5);
    await timers.advance(1);
    expect(passes[5]).toEqual({ at: 2_000, published: 0, failed: false });
    expect(await metricValue(metrics, 'tollgate_events_publish_failures_total')).toBe(4);

    await scheduler.stop();
    await publishing.stop();
    expect(timers.pendingTimers).toBe(0);
  });

  it('deletes published events once older than the retention, by the injected clock', async () => {
    const publishing = loop(nats());
    await queue([1, 2, 3].map(alertEvent));
    expect(await publishing.pass()).toMatchObject({ published: 3, deleted: 0 });
    clock.advance(60_000);
    expect(await publishing.pass()).toMatchObject({ deleted: 0 });
    await queue([4].map(alertEvent));
    clock.advance(1);
    expect(await publishing.pass()).toMatchObject({ published: 1, deleted: 3 });
    expect(await queuedIds()).toHaveLength(1);
  });

  it('queues nothing while events are off', async () => {
    const off = createEventPublishing({ config: undefined, db, clock, metrics, logger: silentLogger });
    expect(off.outbox.enabled).toBe(false);
    expect(off.loop).toBeUndefined();
    await db.transaction((tx) => off.outbox.record(tx, [alertEvent(1)]));
    expect(await new DbUsageSink(db).write(rows(usage('u1', 'acme', at)))).toBe(1);
    expect(await queuedIds()).toEqual([]);
    await off.stop();
  });
});

describe('events: NATS with mutual TLS and a token (a nats-server of the test)', () => {
  const pki = new TestPki();
  const ca = pki.ca('nats-ca');
  const serverCert = pki.issue(ca, 'nats', ['IP:127.0.0.1', 'DNS:localhost'], 'server');
  const clientCert = pki.issue(ca, 'tollgate', ['DNS:tollgate'], 'client');
  const token = 'nats-token-0123456789';
  const storeDir = mkdtempSync(join(tmpdir(), 'tollgate-nats-'));
  let server: ChildProcess;
  let port: number;
  let db: Db;
  const publishers: EventPublisher[] = [];

  beforeAll(async () => {
    port = await freePort();
    server = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir, '--tlsverify', '--tlscert', serverCert.cert, '--tlskey', serverCert.key, '--tlscacert', ca.cert, '--auth', token], { stdio: 'ignore' });
    const listening = () =>
      new Promise<boolean>((resolve) => {
        const socket = tcpConnect(port, '127.0.0.1');
        socket.once('connect', () => (socket.destroy(), resolve(true))).once('error', () => resolve(false));
      });
    for (let attempt = 0; !(await listening()); attempt++) {
      if (attempt === 200) throw new Error('nats-server did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    db = await openMigratedPglite();
  });
  afterAll(async () => {
    for (const publisher of publishers) await publisher.close();
    server?.kill('SIGTERM');
    await db?.close();
    pki.remove();
    rmSync(storeDir, { recursive: true, force: true });
  });

  const settings = (overrides: Partial<NatsConfig>): NatsConfig => ({
    servers: [`tls://127.0.0.1:${port}`],
    stream: 'TOLLGATE',
    subjectPrefix: 'tollgate',
    createStream: true,
    duplicateWindowMs: 120_000,
    timeoutMs: 2_000,
    token,
    credsFile: undefined,
    tls: { ca: ca.cert, cert: clientCert.cert, key: clientCert.key },
    ...overrides,
  });
  const passWith = (overrides: Partial<NatsConfig>) => {
    const publisher = new NatsEventPublisher(settings(overrides), silentLogger);
    publishers.push(publisher);
    return new PublisherLoop({ db, publisher, clock: new ManualClock(at), metrics: createMetrics(new Registry()), logger: silentLogger }, loopOptions).pass();
  };

  it('publishes over mutual TLS with the token, and fails, without throwing, on a wrong token or certificate', async () => {
    await db.transaction((tx) => eventsOn.record(tx, [alertEvent(1)]));
    expect(String((await passWith({ token: 'not-the-token-0000' }))!.error)).toMatch(/authorization/i);
    expect((await passWith({ tls: { ca: ca.cert, cert: undefined, key: undefined } }))!.error).toBeDefined();
    expect((await passWith({ tls: undefined }))!.error).toBeDefined();
    expect((await passWith({}))!).toEqual({ published: 1, duplicates: 0, deleted: 0 });

    const connection = await natsConnect({ servers: `127.0.0.1:${port}`, token, tls: { caFile: ca.cert, certFile: clientCert.cert, keyFile: clientCert.key } });
    expect((await (await jetstreamManager(connection)).streams.info('TOLLGATE')).state.messages).toBe(1);
    await connection.close();
  });

  it('takes a tls:// address to mean TLS: a server without it is refused', async () => {
    await db.transaction((tx) => eventsOn.record(tx, [alertEvent(2)]));
    const refused = await passWith({ servers: [`tls://${natsHost}:${natsPort}`], token: undefined, tls: undefined });
    expect(String(refused!.error)).toContain("server does not support 'tls'");
  });
});

const catalogYaml = `version: 1
products:
  - id: api
    name: API
    endpoints:
      - { id: list, method: GET, path: /api/v1/pets }
plans:
  - id: metered
    product: api
    name: Metered
    entitlements: ["*"]
    quota: { units: 4, when_exhausted: allow_overage }
    pricing: { currency: USD, usage: { model: per_unit, unit_price: "0.15" } }
    alerts:
      - { quota_percent: 50 }
`;

describe.each(['embedded', 'production'] as const)('events through the service (%s)', (mode) => {
  let service: TestApp;
  let stream: TestStream;
  let envoy: FakeEnvoy;
  let als: AccessLogClient;
  let catalogDir: string;
  const clock = new ManualClock(Date.parse('2026-11-01T00:00:00Z'));

  beforeAll(async () => {
    stream = await TestStream.open();
    catalogDir = mkdtempSync(join(tmpdir(), 'tollgate-events-'));
    writeFileSync(join(catalogDir, 'catalog.yaml'), catalogYaml);
    service = await startTestApp({
      mode,
      clock,
      env: {
        TOLLGATE_CATALOG: join(catalogDir, 'catalog.yaml'),
        TOLLGATE_NATS_URL: `nats://${natsHost}:${natsPort}`,
        TOLLGATE_NATS_STREAM: stream.name,
        TOLLGATE_NATS_SUBJECT_PREFIX: stream.prefix,
        // Passes run when the test asks (the first, at start, finds nothing).
        TOLLGATE_EVENTS_INTERVAL_MS: '3600000',
        TOLLGATE_ALERTS_EVALUATION_INTERVAL_MS: '0',
      },
    });
    await service.app.ratingLoop.stop();
    envoy = new FakeEnvoy(service.grpcAddress);
    als = new AccessLogClient(service.grpcAddress);
  });
  afterAll(async () => {
    als?.close();
    envoy?.close();
    await service?.close();
    await stream?.close();
    rmSync(catalogDir, { recursive: true, force: true });
  });

  /** One request through Envoy: the Check, then the access-log entry Envoy writes once the response is sent. */
  async function callApi(key: string, path: string) {
    const outcome = await envoy.check({ method: 'GET', path, key });
    const logs = als.open();
    await logs.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, startMs: clock.now(), status: outcome.allowed ? 200 : outcome.httpStatus })]);
    expect(await logs.end()).toEqual({});
    return outcome;
  }

  it('publishes the usage events, the alert and the finalized invoice the service stored, each once, and erasure removes queued usage', async () => {
    const customer = `events-${mode}`;
    expect((await service.admin('POST', '/v1/customers', { id: customer, name: customer })).status).toBe(201);
    const created = await service.admin('POST', '/v1/keys', { customer, plan: 'metered' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await service.app.identities.refresh();

    clock.set(Date.parse('2026-11-10T12:00:00Z'));
    const allowed = [];
    for (let i = 0; i < 3; i++) allowed.push(await callApi(created.body.key, '/api/v1/pets'));
    expect(allowed.every((outcome) => outcome.allowed)).toBe(true);
    expect((await callApi(created.body.key, '/not/a/route')).allowed).toBe(false);
    await service.app.metering.meter.flush();
    expect((await service.app.alerts.evaluation.runOnce())!.map((alert) => alert.type)).toEqual(['quota.threshold_reached']);
    clock.set(Date.parse('2026-12-01T00:06:00Z'));
    expect((await service.app.ratingLoop.runOnce())!.finalized).toBe(1);

    expect(await service.app.events.loop!.pass()).toMatchObject({ published: 6, duplicates: 0 });
    const received = await stream.readAll();
    expect(received.map((message) => message.event.type)).toEqual([
      ...Array(4).fill('io.tollgate.usage.recorded'),
      'io.tollgate.alert.raised',
      'io.tollgate.invoice.finalized',
    ]);
    expect(new Set(received.map((message) => message.event.id)).size).toBe(6);
    for (const message of received) {
      expect(message.subject.startsWith(`${stream.prefix}.`)).toBe(true);
      expect(message.event).toMatchObject({ specversion: '1.0', source: '/tollgate', subject: customer, datacontenttype: 'application/json' });
    }
    const usageData = received.slice(0, 4).map((message) => message.event.data);
    expect(usageData.filter((data) => data.billable).map((data) => data.usage_id).sort()).toEqual(allowed.map((outcome) => outcome.metadata.usage_id).sort());
    expect(usageData.filter((data) => data.decision === 'deny')).toHaveLength(1);
    expect(received[0]!.subject).toBe(`${stream.prefix}.usage.${customer}`);
    expect(received[0]!.event.time).toBe('2026-11-10T12:00:00.000Z');

    expect(received[4]!.subject).toBe(`${stream.prefix}.alert.${customer}`);
    expect(received[4]!.event.data).toMatchObject({ type: 'quota.threshold_reached', customer, current: { used_units: 3, quota_units: 4 } });
    expect(received[4]!.event.time).toBe('2026-11-10T12:00:00.000Z');

    const [invoice] = (await service.admin('GET', `/v1/customers/${customer}/invoices?status=finalized`)).body.data;
    expect(received[5]!.subject).toBe(`${stream.prefix}.invoice.${customer}`);
    expect(received[5]!.event).toMatchObject({ time: invoice.finalizedAt });
    expect(received[5]!.event.data).toEqual({
      id: invoice.id,
      customer_id: customer,
      subscription_id: created.body.apiKey.subscriptionId,
      product_id: 'api',
      plan_id: 'metered',
      period: { start: '2026-11-01T00:00:00.000Z', end: '2026-12-01T00:00:00.000Z' },
      currency: 'USD',
      mode: 'postpaid',
      total_minor: '45',
      revenue_share_minor: '0',
      calls: 3,
      units: 3,
      finalized_at: invoice.finalizedAt,
    });

    // The consumer docs/EVENTS.md shows, on the usage events.
    const consumed: TollgateEvent[] = [];
    const consumer = await consumeTollgateEvents({
      servers: `nats://${natsHost}:${natsPort}`,
      stream: stream.name,
      durable: 'analytics',
      filter: `${stream.prefix}.usage.>`,
      handle: async (event) => void consumed.push(event),
    });
    await expect.poll(() => consumed.length).toBe(4);
    await consumer.stop();
    expect(consumed).toEqual(received.slice(0, 4).map((message) => message.event));

    const scraped = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(scraped).toContain('tollgate_events_published_total{type="io.tollgate.usage.recorded"} 4');
    expect(scraped).toContain('tollgate_events_outbox_pending 0');

    // Erasure removes the customer's queued usage events with its usage; alerts and invoices stay, as in the database.
    expect((await service.admin('POST', `/v1/customers/${customer}/erase`)).status).toBe(200);
    const left = await service.app.db.query<{ type: string }>('SELECT type FROM event_outbox WHERE customer_id = $1 ORDER BY id', [customer]);
    expect(left.map((row) => row.type)).toEqual(['io.tollgate.alert.raised', 'io.tollgate.invoice.finalized']);
  });
});

describe('events: a dead NATS, then one that hangs, and SIGTERM (tollgate serve on PostgreSQL)', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let silent: Server | undefined;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => (silent ? silent.close(resolve) : resolve(undefined)));
    await database?.drop();
  });

  it('keeps serving while NATS refuses connections, logging it once, and stops within the grace while a connection hangs', async () => {
    const port = await freePort();
    const server = await serve({
      env: {
        TOLLGATE_DATABASE_URL: database.url,
        TOLLGATE_NATS_URL: `nats://127.0.0.1:${port}`,
        TOLLGATE_EVENTS_RETRY_BASE_MS: '20',
        TOLLGATE_EVENTS_RETRY_MAX_MS: '40',
        // Long enough that only the shutdown grace can end the hanging connection below.
        TOLLGATE_NATS_TIMEOUT_MS: '600000',
        TOLLGATE_SHUTDOWN_GRACE_MS: '2000',
      },
    });
    // Nothing listens on the port: every pass is refused at once.
    await expect.poll(() => server.output.includes('event publishing failed'), { timeout: 10_000, interval: 50 }).toBe(true);
    expect((await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).status).toBe(200);
    expect(server.output.match(/event publishing failed/g)).toHaveLength(1);

    // Now something accepts and never answers: the next pass waits for NATS's greeting.
    silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent!.listen(port, '127.0.0.1', resolve));
    await expect.poll(() => sockets.size, { timeout: 10_000, interval: 20 }).toBeGreaterThan(0);
    server.child.kill('SIGTERM');
    // Past the grace the process would exit with 1 (see docs/CONFIGURATION.md, TOLLGATE_SHUTDOWN_GRACE_MS).
    expect(await server.exited).toBe(0);
    // The publisher's step was the one left behind at the grace, and the stop went on without it.
    expect(server.output).toMatch(/"step":"event publishing","msg":"stop step did not end in time/);
    expect(server.output).toContain('"msg":"stopped"');
  });
});
