import { createHmac } from 'node:crypto';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { UsageIdentity, UsageIds } from '../src/check/usage-identity.js';
import type { Catalog } from '../src/catalog/catalog.js';
import { loadCatalogFile, parseCatalog } from '../src/catalog/load.js';
import { loadEnvoyServices } from '../src/grpc/protos.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { Scheduler } from '../src/kernel/scheduler.js';
import { decodeStreamAccessLogsMessage } from '../src/grpc/als-decoder.js';
import type { HttpAccessLogEntryWire } from '../src/grpc/als-wire.js';
import { toUsageEvent, type MeteringContext, type UsageEvent } from '../src/metering/event.js';
import { currentEventRow, decodeCopyRow, encodeEventRow } from '../src/metering/event-rows.js';
import { usageFlushBackoff } from '../src/metering/meter.js';
import { DbUsageSink, PostgresUsageSink, type UsageSink } from '../src/metering/sink.js';
import { Spool } from '../src/metering/spool.js';
import { migrate, migrations } from '../src/store/migrations.js';
import type { Db } from '../src/store/db.js';
import { PgliteDb } from '../src/store/pglite.js';
import { PostgresDb } from '../src/store/postgres.js';
import { decodedEntries, httpEntry, type EntryFacts } from './support/access-log.js';
import { startTestMeter, type TestMeterOptions } from './support/meter.js';
import { createTestDatabase } from './support/services.js';
import { signedAllow, testUsageIdentity, testUsageSigningKey } from './support/usage.js';
import { openMigratedPglite, openPgliteCopy } from './support/pglite-template.js';
import { emptyTables } from './support/empty-tables.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-metering-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const petstore = loadCatalogFile('examples/petstore.yaml');
const periodStart = Date.parse('2026-11-01T00:00:00Z');
const startMs = Date.parse('2026-11-15T10:20:30.456Z');

/** An allowed call's metadata as the Check signs it (extra facts are signed too; `decision` may turn it into a denial's). */
const allowed = (requestId: string, extra: Record<string, string | number> = {}) =>
  signedAllow({
    customer_id: 'cus_1',
    subscription_id: 'sub_1',
    plan_id: 'pro',
    product_id: 'petstore',
    endpoint_id: 'list-pets',
    key_id: 'key_1',
    weight: 1,
    period_start: periodStart,
    request_id: requestId,
    ...extra,
  });

/** The metadata of one allowed call per name: an entry logged twice carries the same usage id. */
function callsByName() {
  const calls = new Map<string, Record<string, string | number>>();
  return (name: string, extra: Record<string, string | number> = {}) => {
    if (!calls.has(name)) calls.set(name, allowed(name, extra));
    return calls.get(name)!;
  };
}

let generatedIds = 0;

function contextFor(catalog: Catalog): MeteringContext {
  return { catalog, periodStartOf: () => periodStart, usage: testUsageIdentity, now: startMs, newUsageId: () => `generated-${++generatedIds}` };
}

/** Encodes with the canonical protos, as Envoy does, and decodes as the server does. */
function overTheWire(facts: EntryFacts): HttpAccessLogEntryWire {
  const method = (loadEnvoyServices().accessLog as unknown as Record<string, { requestSerialize(value: unknown): Buffer }>).StreamAccessLogs!;
  return decodedEntries(decodeStreamAccessLogsMessage(method.requestSerialize({ http_logs: { log_entry: [httpEntry(facts)] } })).http_logs)![0]!;
}

const eventOf = (facts: EntryFacts, catalog = petstore) => toUsageEvent(overTheWire(facts), contextFor(catalog));

describe('usage events from ALS entries', () => {
  it("takes identity from the Check's metadata after it crossed the wire, and bills an allowed 2xx call", () => {
    const authz = allowed('req-1');
    const event = eventOf({
      requestId: 'req-1',
      authz,
      method: 'POST',
      status: 201,
      startMs,
      durationMs: 1234,
      requestHeadersBytes: 300,
      requestBodyBytes: 50,
      responseHeadersBytes: 120,
      responseBodyBytes: 4000,
    });
    expect(event).toEqual({
      usageId: authz.usage_id,
      requestId: 'req-1',
      occurredAt: startMs,
      periodStart,
      customerId: 'cus_1',
      subscriptionId: 'sub_1',
      planId: 'pro',
      productId: 'petstore',
      endpointId: 'list-pets',
      keyId: 'key_1',
      method: 'POST',
      status: 201,
      weight: 1,
      requestBytes: 350,
      responseBytes: 4120,
      durationUs: 1_234_000,
      decision: 'allow',
      reason: null,
      billable: true,
      captured: null,
    } satisfies UsageEvent);
  });

  it("bills the status classes the plan lists (default 2xx, 3xx, 4xx)", () => {
    expect(eventOf({ requestId: 'a', authz: allowed('a'), status: 404 })).toMatchObject({ billable: true, reason: null });
    expect(eventOf({ requestId: 'b', authz: allowed('b'), status: 503 })).toMatchObject({ billable: false, reason: 'status_not_billable' });
    const strict = catalogWith({ planExtra: '    billable: { statuses: [2xx] }' });
    expect(eventOf({ requestId: 'c', authz: allowed('c', { plan_id: 'metered' }), status: 404 }, strict)).toMatchObject({
      billable: false,
      reason: 'status_not_billable',
    });
    expect(eventOf({ requestId: 'd', authz: allowed('d', { plan_id: 'gone' }) })).toMatchObject({ billable: false, reason: 'unknown_plan' });
  });

  it('records denied Checks and calls without ext_authz metadata, and bills neither', () => {
    const denied = eventOf({ requestId: 'e', authz: { ...allowed('e'), decision: 'deny', reason: 'rate_limited' }, status: 429 });
    expect(denied).toMatchObject({ decision: 'deny', reason: 'rate_limited', billable: false, customerId: 'cus_1', periodStart });
    const unauthenticated = eventOf({ requestId: 'f', authz: { decision: 'deny', reason: 'missing_key', request_id: 'f' }, status: 401 });
    expect(unauthenticated).toMatchObject({ decision: 'deny', reason: 'missing_key', customerId: null, periodStart: null });
    const unprotected = eventOf({ requestId: 'g', status: 200 });
    expect(unprotected).toMatchObject({ decision: null, reason: 'no_authz_metadata', billable: false, customerId: null, weight: 0 });
    // None of them has a usage id of the Check's: each gets its own, so none is taken for another.
    expect(new Set([denied.usageId, unauthenticated.usageId, unprotected.usageId]).size).toBe(3);
  });

  it('bills only metadata the Check signed: altered, invented or missing signatures are recorded, not billed', () => {
    const genuine = allowed('s1', { weight: 2 });
    const { usage_id, usage_sig, ...unsigned } = genuine;
    const foreign = signedAllow(
      { customer_id: 'cus_1', subscription_id: 'sub_1', plan_id: 'pro', endpoint_id: 'list-pets', weight: 2, period_start: periodStart },
      new UsageIdentity(['another-key-that-tollgate-never-had-0123']),
    );
    const cases: [string, Record<string, string | number>, string][] = [
      ['no signature', unsigned, 'unsigned'],
      ['weight altered', { ...genuine, weight: 1 }, 'bad_signature'],
      ['customer altered', { ...genuine, customer_id: 'cus_victim' }, 'bad_signature'],
      ['period altered', { ...genuine, period_start: periodStart - 86_400_000 }, 'bad_signature'],
      ['endpoint altered', { ...genuine, endpoint_id: 'get-pet' }, 'bad_signature'],
      ['usage id altered', { ...genuine, usage_id: `${usage_id}x` }, 'bad_signature'],
      ['invented signature', { ...genuine, usage_sig: 'AAAAAAAAAAAAAAAAAAAAAA' }, 'bad_signature'],
      ['signature without usage id', { ...unsigned, usage_sig }, 'bad_signature'],
      ['signature of another type', { ...genuine, usage_sig: 7 }, 'bad_signature'],
      ['signed with another key', foreign, 'bad_signature'],
    ];
    for (const [name, authz, reason] of cases) {
      const event = eventOf({ requestId: 's1', authz, status: 200 });
      expect({ name, ...event }).toMatchObject({ name, decision: null, reason, billable: false, usageId: expect.stringMatching(/^generated-/) });
    }
    expect(eventOf({ requestId: 's1', authz: genuine, status: 200 })).toMatchObject({ usageId: usage_id, decision: 'allow', reason: null, billable: true, weight: 2 });
  });

  it('verifies with every configured key, so a key can be rotated', () => {
    const oldKey = 'the-old-usage-signing-key-0123456789';
    const newKey = 'the-new-usage-signing-key-0123456789';
    const facts = { customer_id: 'cus_1', subscription_id: 'sub_1', plan_id: 'pro', endpoint_id: 'list-pets', weight: 1, period_start: periodStart };
    const signedBefore = signedAllow(facts, new UsageIdentity([oldKey]));
    const rotated = new UsageIdentity([newKey, oldKey]);
    const signedAfter = signedAllow(facts, rotated);
    expect(rotated.verify(signedBefore)).toMatchObject({ valid: true, usageId: signedBefore.usage_id });
    expect(rotated.verify(signedAfter)).toMatchObject({ valid: true });
    expect(new UsageIdentity([oldKey]).verify(signedAfter)).toEqual({ valid: false, reason: 'bad_signature' });
    expect(() => new UsageIdentity(['short'])).toThrow(/at least 32 characters/);
  });

  it("counts a call in the Check's billing period, whatever the log's clock says", () => {
    // Logged a moment before its subscription's period began (or by a proxy whose clock runs behind): by the clock
    // it would fall in the period before, where no report looks.
    const previousPeriodStart = Date.parse('2026-10-01T00:00:00Z');
    const byClock = { ...contextFor(petstore), periodStartOf: () => previousPeriodStart };
    const event = toUsageEvent(overTheWire({ requestId: 'early', authz: allowed('early'), startMs: periodStart - 5 }), byClock);
    expect(event).toMatchObject({ occurredAt: periodStart - 5, periodStart, billable: true });
    // An entry the Check did not sign has only the clock to go by.
    const unsigned = toUsageEvent(overTheWire({ requestId: 'early', authz: { ...allowed('early'), usage_sig: '' }, startMs: periodStart - 5 }), byClock);
    expect(unsigned).toMatchObject({ periodStart: previousPeriodStart, billable: false });
  });

  it('issues ids that never repeat, within an instance and across instances', () => {
    const a = new UsageIdentity(['a-usage-signing-key-0123456789abcdef']);
    const b = new UsageIdentity(['a-usage-signing-key-0123456789abcdef']);
    const ids = new Set<string | number>();
    for (let i = 0; i < 1_000; i++) for (const identity of [a, b]) ids.add(signedAllow({ customer_id: 'c', subscription_id: 's', plan_id: 'p', endpoint_id: 'e', weight: 1, period_start: 0 }, identity).usage_id!);
    expect(ids.size).toBe(2_000);
  });

  it('issues fixed-width ids that sort in the order issued, while the clock stands still or goes back', () => {
    const start = Date.parse('2026-11-15T10:20:30.456Z');
    let now = start;
    const usageIds = new UsageIds(() => now);
    const ids: string[] = [];
    const issue = (count: number) => {
      for (let i = 0; i < count; i++) ids.push(usageIds.next());
    };
    issue(3);
    now += 1;
    issue(2);
    now -= 60_000; // the clock is set back a minute
    issue(2);
    now += 120_000;
    issue(1);
    // A millisecond holds 36^4 ids; the next ones carry on in the millisecond after.
    issue(36 ** 4);
    expect([...ids.slice(0, 8), ...ids.slice(-2)].every((id) => /^[0-9a-z]{9}[A-Za-z0-9_-]{8}[0-9a-z]{4}$/.test(id))).toBe(true);
    // ASCII: JavaScript's string order is the byte order PostgreSQL's "C" collation compares.
    expect(ids.every((id, i) => i === 0 || ids[i - 1]! < id)).toBe(true);
    const millisecond = (id: string) => parseInt(id.slice(0, 9), 36);
    expect(ids.slice(0, 8).map(millisecond)).toEqual([start, start, start, start + 1, start + 1, start + 1, start + 1, now]);
    expect(millisecond(ids.at(-1)!)).toBe(now + 1);
    // The Check stamps them.
    const stamped = signedAllow({ customer_id: 'c', subscription_id: 's', plan_id: 'p', endpoint_id: 'e', weight: 1, period_start: 0 }, new UsageIdentity(['a-usage-signing-key-0123456789abcdef'], () => start));
    expect(millisecond(stamped.usage_id)).toBe(start);
  });

  it('verifies usage ids of the earlier format (a random prefix and a counter)', () => {
    const facts = allowed('earlier');
    const earlierId = 'Qk3vX9aBcDeFgHiJ1z';
    const signature = createHmac('sha256', testUsageSigningKey)
      .update(JSON.stringify([earlierId, facts.customer_id, facts.subscription_id, facts.plan_id, facts.period_start, facts.endpoint_id, facts.weight]))
      .digest()
      .toString('base64url', 0, 16);
    expect(testUsageIdentity.verify({ ...facts, usage_id: earlierId, usage_sig: signature })).toMatchObject({ valid: true, usageId: earlierId });
    expect(eventOf({ requestId: 'earlier', authz: { ...facts, usage_id: earlierId, usage_sig: signature } })).toMatchObject({ usageId: earlierId, billable: true });
  });

  it("captures the facts the product's and plan's capture lists name, from the logged headers", () => {
    const catalog = catalogWith({
      productExtra: '    capture:\n      - { name: units, from: response_header, header: X-Usage-Units, type: integer }',
      planExtra: '    capture:\n      - { name: price, from: response_header, header: x-custom-price, type: decimal }',
    });
    const facts = { authz: allowed('h', { plan_id: 'metered' }) };
    expect(eventOf({ ...facts, requestId: 'h', responseHeaders: { 'x-usage-units': '3', 'x-custom-price': '0.0125' } }, catalog).captured).toEqual({
      units: 3,
      price: '0.0125',
    });
    // Values that are not of the declared type are left out, never guessed.
    expect(eventOf({ ...facts, requestId: 'i', responseHeaders: { 'x-usage-units': '2.5', 'x-custom-price': 'free' } }, catalog).captured).toBeNull();
  });

  it('cuts a long text capture at 256 UTF-16 units, never through a character', () => {
    const catalog = catalogWith({ planExtra: '    capture:\n      - { name: note, from: response_header, header: x-note }' });
    const capture = (value: string) => eventOf({ authz: allowed('n', { plan_id: 'metered' }), requestId: 'n', responseHeaders: { 'x-note': value } }, catalog).captured;
    expect(capture(`${'x'.repeat(255)}\u{1F600}`)).toEqual({ note: 'x'.repeat(255) });
    expect(capture(`${'x'.repeat(254)}\u{1F600}y`)).toEqual({ note: `${'x'.repeat(254)}\u{1F600}` });
    expect(capture('x'.repeat(300))).toEqual({ note: 'x'.repeat(256) });
  });

  it('keeps every field intact through the COPY text row the spool stores', () => {
    const event = { ...eventOf({ requestId: 'j', authz: allowed('j') }), reason: 'tab\there, newline\nthere, back\\slash, nul\0' };
    const row = encodeEventRow(event);
    expect(row.endsWith('\n')).toBe(true);
    expect(currentEventRow(row.slice(0, -1))).toBe(row.slice(0, -1));
    const fields = decodeCopyRow(row.slice(0, -1));
    expect(fields.slice(0, 2)).toEqual([event.usageId, 'j']);
    expect(fields).toContain('tab\there, newline\nthere, back\\slash, nul');
    expect(fields[3]).toBe(String(periodStart));
  });

  it('reads a row spooled before usage ids, keyed by its request id, and no torn one', () => {
    const row = encodeEventRow(eventOf({ requestId: 'old', authz: allowed('old') })).slice(0, -1);
    const legacy = row.slice(row.indexOf('\t') + 1);
    expect(currentEventRow(legacy)).toBe(`old\t${legacy}`);
    expect(currentEventRow(legacy.slice(0, legacy.lastIndexOf('\t')))).toBeUndefined();
  });
});

describe('spool', () => {
  it('replays what a killed process appended, dropping a torn last row', async () => {
    const dir = tempDir();
    const first = new Spool({ dir, maxBufferedBytes: 1 << 20, currentRow: currentEventRow, logger: silentLogger });
    cleanups.push(() => first.close());
    first.append(rowsFor(['k1', 'k2']), 2);
    first.seal();
    first.append(rowsFor(['k3']), 1);
    // A crash mid-write leaves part of a row at the end of the active segment; no close() ever runs.
    const active = readdirSync(dir).sort().at(-1)!;
    appendFileSync(join(dir, active), 'k4\tpartial');
    const replayed = new Spool({ dir, maxBufferedBytes: 1 << 20, currentRow: currentEventRow, logger: silentLogger });
    cleanups.push(() => replayed.close());
    expect(replayed.pendingEvents).toBe(3);
    const ids = [];
    for (const segment of replayed.sealedSegments()) ids.push(...requestIds(await replayed.read(segment)));
    expect(ids).toEqual(['k1', 'k2', 'k3']);
  });

  it('replays a segment spooled before usage ids, each row keyed by its request id', async () => {
    const dir = tempDir();
    const legacyRow = (id: string) => {
      const row = encodeEventRow(eventOf({ requestId: id, authz: allowed(id) }));
      return row.slice(row.indexOf('\t') + 1);
    };
    writeFileSync(join(dir, 'usage-v1-000000000001.copy'), legacyRow('old-1') + legacyRow('old-2'));
    const spool = new Spool({ dir, maxBufferedBytes: 1 << 20, currentRow: currentEventRow, logger: silentLogger });
    cleanups.push(() => spool.close());
    const rows = Buffer.concat((await spool.read(spool.sealedSegments()[0]!)).chunks).toString('utf8').split('\n').filter(Boolean);
    expect(rows.map((row) => decodeCopyRow(row).slice(0, 2))).toEqual([
      ['old-1', 'old-1'],
      ['old-2', 'old-2'],
    ]);
  });

  it('reads back segments it dropped from memory, and deletes segments only once told they are committed', async () => {
    const dir = tempDir();
    const spool = new Spool({ dir, maxBufferedBytes: 1, currentRow: currentEventRow, logger: silentLogger });
    cleanups.push(() => spool.close());
    spool.append(rowsFor(['m1']), 1);
    spool.seal();
    spool.append(rowsFor(['m2']), 1);
    spool.seal();
    const [older, newer] = spool.sealedSegments();
    expect(newer!.chunks).toBeUndefined(); // over the memory budget: on disk only
    expect(requestIds(await spool.read(newer!))).toEqual(['m2']);
    spool.remove([older!]);
    expect(readdirSync(dir)).toHaveLength(1);
    expect(spool.pendingEvents).toBe(1);
  });
});

/** The dedup and rollup statement on both sinks: PGlite's, and the production writer's COPY with its fallback. */
const backends: { name: string; open(): Promise<{ db: Db; sink(): UsageSink; close(): Promise<void> }> }[] = [
  {
    name: 'PGlite',
    open: async () => {
      const db = await openMigratedPglite();
      return { db, sink: () => new DbUsageSink(db), close: () => db.close() };
    },
  },
  {
    name: 'PostgreSQL',
    open: async () => {
      const database = await createTestDatabase({ migrated: true });
      const db = new PostgresDb(database.url);
      return {
        db,
        sink: () => new PostgresUsageSink(database.url, silentLogger),
        close: async () => {
          await db.close();
          await database.drop();
        },
      };
    },
  },
];

describe.each(backends)('usage ids on $name', (backend) => {
  let opened: Awaited<ReturnType<typeof backend.open>>;
  beforeAll(async () => {
    opened = await backend.open();
    await migrate(opened.db);
  });
  afterAll(() => opened.close());

  afterEach(() => emptyTables(opened.db, ['usage_events', 'usage_rollups', 'customer_first_calls']));

  it('stores each usage id once, across and within batches, and rolls up only new rows', async () => {
    const { db } = opened;
    const { meter, metrics } = meterOn(opened.sink(), { batchSize: 100 });
    const call = callsByName();
    // A denied call before any allowed one: recorded, but not a first call.
    record(meter, [eventOf({ requestId: 'r0', authz: allowed('r0', { decision: 'deny', reason: 'rate_limited' }), startMs: startMs - 10_000 })]);
    record(meter, ['r1', 'r2', 'r3'].map((id) => eventOf({ requestId: id, authz: call(id), startMs })));
    await meter.flush();
    // A replayed segment (r1) and a call logged twice in one batch (r4).
    record(meter, ['r4', 'r5', 'r1', 'r4'].map((id) => eventOf({ requestId: id, authz: call(id), startMs })));
    await meter.flush();
    record(meter, ['r3', 'r6', 'r6'].map((id) => eventOf({ requestId: id, authz: call(id, { endpoint_id: 'get-pet' }), startMs })));
    // Logged late, an allowed call earlier than every other: it becomes the customer's first call.
    record(meter, [eventOf({ requestId: 'r7', authz: call('r7'), startMs: startMs - 5_000 })]);
    await meter.flush();
    const [events] = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM usage_events');
    expect(events!.count).toBe(8);
    const [times] = await db.query(
      `SELECT (extract(epoch FROM occurred_at) * 1000)::bigint::text AS occurred_at, (extract(epoch FROM period_start) * 1000)::bigint::text AS period_start
       FROM usage_events WHERE request_id = 'r1'`,
    );
    expect(times).toEqual({ occurred_at: String(startMs), period_start: String(periodStart) });
    const rollups = await db.query<{ endpoint_id: string; calls: string; units: string; denied_calls: string }>(
      'SELECT endpoint_id, calls, units, denied_calls FROM usage_rollups ORDER BY endpoint_id',
    );
    expect(rollups).toEqual([
      { endpoint_id: 'get-pet', calls: '1', units: '1', denied_calls: '0' },
      { endpoint_id: 'list-pets', calls: '6', units: '6', denied_calls: '1' },
    ]);
    const [firstCall] = await db.query<{ customer_id: string; first_call_at: Date }>('SELECT customer_id, first_call_at FROM customer_first_calls');
    expect(firstCall).toEqual({ customer_id: 'cus_1', first_call_at: new Date(startMs - 5_000) });
    expect((await metrics.usageEventsStored.get()).values[0]!.value).toBe(8);
    expect((await metrics.usageEventsDuplicate.get()).values[0]!.value).toBe(4);
  });

  it("bills every call of a client that repeats one x-request-id, and none it cannot prove was checked", async () => {
    const { db } = opened;
    const { meter } = meterOn(opened.sink(), { batchSize: 100 });
    // Five allowed calls, one client-chosen request id (kept by a proxy such as Istio's inbound sidecar).
    record(meter, Array.from({ length: 5 }, () => eventOf({ requestId: 'same-id', authz: allowed('same-id'), startMs })));
    const forged = allowed('same-id', { customer_id: 'cus_victim', weight: 100 });
    // The same calls claimed again with altered metadata, or none: recorded, not billed, counted for no one.
    record(meter, [
      eventOf({ requestId: 'same-id', authz: { ...forged, customer_id: 'cus_1' }, startMs }),
      eventOf({ requestId: 'same-id', authz: { ...allowed('same-id'), weight: 100 }, startMs }),
      eventOf({ requestId: 'same-id', authz: { ...forged, usage_sig: 'AAAAAAAAAAAAAAAAAAAAAA' }, startMs }),
      eventOf({ requestId: 'same-id', startMs }),
    ]);
    await meter.flush();
    const events = await db.query<{ billable: boolean; reason: string | null; n: number }>(
      `SELECT billable, reason, count(*)::int AS n FROM usage_events WHERE request_id = 'same-id' GROUP BY 1, 2 ORDER BY 2 NULLS FIRST`,
    );
    expect(events).toEqual([
      { billable: true, reason: null, n: 5 },
      { billable: false, reason: 'bad_signature', n: 3 },
      { billable: false, reason: 'no_authz_metadata', n: 1 },
    ]);
    const rollups = await db.query('SELECT customer_id, calls, units, billable_calls, billable_units, denied_calls FROM usage_rollups');
    expect(rollups).toEqual([{ customer_id: 'cus_1', calls: '5', units: '5', billable_calls: '5', billable_units: '5', denied_calls: '0' }]);
  });
});

describe('migration 8 on PGlite', () => {
  it('keeps the events stored before it, keyed by their request id, and stores new calls with the same request id', async () => {
    // A copy of the run's template as it was before migration 8 (test/global-setup.ts), rather than a new cluster.
    const db = await openPgliteCopy(process.env.TOLLGATE_TEST_PGDATA_BEFORE_8);
    cleanups.push(() => db.close());
    await migrate(db, migrations.filter((migration) => migration.version < 8));
    await db.query(
      `INSERT INTO usage_events (request_id, occurred_at, weight, request_bytes, response_bytes, billable, decision, customer_id)
       VALUES ('legacy-1', now(), 1, 10, 20, true, 'allow', 'cus_1')`,
    );
    expect(await migrate(db, migrations.filter((migration) => migration.version <= 8))).toEqual([8]);
    expect(await db.query('SELECT usage_id, request_id, customer_id FROM usage_events')).toEqual([{ usage_id: 'legacy-1', request_id: null, customer_id: 'cus_1' }]);
    // Today's writer needs today's schema (the later migrations' tables).
    await migrate(db);
    const { meter } = pgliteMeter(db, { batchSize: 10 });
    const call = allowed('legacy-1');
    record(meter, [eventOf({ requestId: 'legacy-1', authz: call }), eventOf({ requestId: 'legacy-1', authz: call })]);
    await meter.flush();
    expect(await db.query('SELECT usage_id, request_id FROM usage_events ORDER BY request_id NULLS FIRST')).toEqual([
      { usage_id: 'legacy-1', request_id: null },
      { usage_id: call.usage_id, request_id: 'legacy-1' },
    ]);
  });
});

describe('usage writer on PostgreSQL', () => {
  it('inserts a batch without per-row duplicate checks first, and falls back to skipping duplicates for a while after one', async () => {
    const { database, db } = await migratedTestDatabase();
    const statements: string[] = [];
    const originalQuery = pg.Client.prototype.query;
    const query = vi.spyOn(pg.Client.prototype, 'query').mockImplementation(function (this: pg.Client, ...args: unknown[]) {
      const sql = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string }).text ?? '';
      if (sql.includes('SAVEPOINT')) statements.push(sql);
      else if (sql.includes('INSERT INTO usage_events')) statements.push(sql.includes('ON CONFLICT (usage_id)') ? 'insert skipping duplicates' : 'insert');
      return originalQuery.apply(this, args as never);
    });
    cleanups.push(() => query.mockRestore());
    const { meter } = meterOn(new PostgresUsageSink(database.url, silentLogger), { batchSize: 100 });
    const call = callsByName();
    const flush = async (ids: string[]) => {
      record(meter, ids.map((id) => eventOf({ requestId: id, authz: call(id), startMs })));
      await meter.flush();
    };
    await flush(['w1', 'w2']);
    await flush(['w3', 'w3']);
    await flush(['w4']);
    expect(statements).toEqual([
      'SAVEPOINT assuming_no_duplicates',
      'insert',
      'SAVEPOINT assuming_no_duplicates',
      'insert',
      'ROLLBACK TO SAVEPOINT assuming_no_duplicates',
      'insert skipping duplicates',
      'insert skipping duplicates',
    ]);
    const [events] = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM usage_events');
    expect(events!.count).toBe(4);
  });
});

describe('usage writer on PostgreSQL, refused events', () => {
  it('sets aside only the events PostgreSQL refuses, and stores the rest of their segment and the segments around it', async () => {
    const { database, db } = await migratedTestDatabase();
    await setsAsideOnlyRefusedEvents(new PostgresUsageSink(database.url, silentLogger), db);
  });
});

describe('metering on PGlite', () => {
  let db: PgliteDb;
  beforeAll(async () => {
    db = await openMigratedPglite();
  });
  afterAll(() => db.close());
  afterEach(() => emptyTables(db, ['usage_events', 'usage_rollups']));

  it('keeps events in the spool while the database fails, then writes them once it recovers', async () => {
    let failing = true;
    const { meter, spool } = pgliteMeter(db, {
      batchSize: 100,
      wrap: (sink) => ({
        write: (chunks) => (failing ? Promise.reject(Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' })) : sink.write(chunks)),
        close: () => sink.close(),
      }),
    });
    record(meter, ['o1', 'o2', 'o3'].map((id) => eventOf({ requestId: id, authz: allowed(id) })));
    await expect(meter.flush()).rejects.toThrow('connection refused');
    expect(spool.pendingEvents).toBe(3);
    failing = false;
    await meter.flush();
    expect(spool.pendingEvents).toBe(0);
    const [row] = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM usage_events');
    expect(row!.count).toBe(3);
  });

  it('retries from the flush job alone while the database fails, backing off, and writes once it recovers', async () => {
    let failing = true;
    let attempts = 0;
    const { meter, spool, metrics } = pgliteMeter(db, {
      batchSize: 2,
      wrap: (sink) => ({
        write: (chunks) => (attempts++, failing ? Promise.reject(Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' })) : sink.write(chunks)),
        close: () => sink.close(),
      }),
    });
    // The job as src/app.ts registers it.
    const clock = new ManualClock(0);
    const scheduler = new Scheduler({ timers: clock, logger: silentLogger });
    scheduler.every('usage flush', 1_000, () => meter.flushDue(), { immediately: true, backoff: usageFlushBackoff, onFailure: () => {} });
    cleanups.push(() => scheduler.stop().then(() => {}));

    record(meter, ['r1'].map((id) => eventOf({ requestId: id, authz: allowed(id) })));
    await clock.tick();
    expect(attempts).toBe(1);
    // A full segment is not written at once while writes fail: the job's retries alone go to the database.
    record(meter, ['r2', 'r3'].map((id) => eventOf({ requestId: id, authz: allowed(id) })));
    await clock.advance(199);
    expect(attempts).toBe(1);
    await clock.advance(1);
    expect(attempts).toBe(2);
    await clock.advance(400);
    expect(attempts).toBe(3);
    failing = false;
    await clock.advance(799);
    expect([attempts, spool.pendingEvents]).toEqual([3, 3]);
    await clock.advance(1);
    expect(spool.pendingEvents).toBe(0);
    expect((await metrics.usageFlushFailures.get()).values).toEqual([
      expect.objectContaining({ labels: { outcome: 'retried' }, value: 3 }),
      expect.objectContaining({ labels: { outcome: 'rejected' }, value: 0 }),
    ]);
    const [row] = await db.query<{ count: number }>(`SELECT count(*)::int AS count FROM usage_events WHERE request_id LIKE 'r_'`);
    expect(row!.count).toBe(3);
    // Recovered: full segments are written at once again, with no job pass.
    record(meter, ['r4', 'r5'].map((id) => eventOf({ requestId: id, authz: allowed(id) })));
    await vi.waitFor(() => expect(spool.pendingEvents).toBe(0));
  });

  it('sets aside only the events the database refuses, and stores the rest of their segment and the segments around it', () =>
    setsAsideOnlyRefusedEvents(new DbUsageSink(db), db));

  it('spends a bounded number of writes on a segment the database refuses throughout, then sets the rest aside', async () => {
    let writes = 0;
    const { meter, metrics, dir } = pgliteMeter(db, {
      batchSize: 1_000,
      wrap: (sink) => ({
        write: () => (writes++, Promise.reject(Object.assign(new Error('invalid input syntax for type json'), { code: '22P02' }))),
        close: () => sink.close(),
      }),
    });
    record(meter, Array.from({ length: 1_000 }, (_, i) => eventOf({ requestId: `x${i}`, authz: allowed(`x${i}`) })));
    await meter.flush();
    // The whole segment, then at most 1,000 halves split, and one write for each half left untried on the way up.
    expect(writes).toBeLessThanOrEqual(1 + 1_000 + 10);
    const [file] = readdirSync(join(dir, 'rejected'));
    expect(readFileSync(join(dir, 'rejected', file!), 'utf8').split('\n').filter(Boolean)).toHaveLength(1_000);
    expect((await metrics.usageEventsRejected.get()).values[0]!.value).toBe(1_000);
  });

  it('stores every event of a segment but the few the database refuses, however they are scattered', async () => {
    const { meter, metrics, dir } = pgliteMeter(db, { batchSize: 2_000 });
    const poisoned = new Set([3, 250, 251, 700, 1_023, 1_024, 1_500, 1_777, 1_998, 1_999]);
    record(meter, 
      Array.from({ length: 2_000 }, (_, i) => {
        const event = eventOf({ requestId: `y${i}`, authz: allowed(`y${i}`) });
        return poisoned.has(i) ? { ...event, captured: { note: '\ud83d' } } : event;
      }),
    );
    await meter.flush();
    const [stored] = await db.query<{ count: number }>(`SELECT count(*)::int AS count FROM usage_events WHERE request_id LIKE 'y%'`);
    expect(stored!.count).toBe(1_990);
    const [file] = readdirSync(join(dir, 'rejected'));
    const setAside = readFileSync(join(dir, 'rejected', file!), 'utf8').split('\n').filter(Boolean).map(requestIdOfRow);
    expect(setAside.sort()).toEqual([...poisoned].map((i) => `y${i}`).sort());
    expect((await metrics.usageEventsRejected.get()).values[0]!.value).toBe(10);
  });

  it('never lets a later process replace what an earlier one set aside', async () => {
    const refusing = (sink: UsageSink): UsageSink => ({
      write: () => Promise.reject(Object.assign(new Error('invalid input syntax for type json'), { code: '22P02' })),
      close: () => sink.close(),
    });
    const first = pgliteMeter(db, { batchSize: 1, wrap: refusing });
    record(first.meter, [eventOf({ requestId: 'first', authz: allowed('first') })]);
    await first.meter.flush();
    await first.meter.stop(1_000);
    // The same spool directory, as after a restart: segment numbers start again from 1.
    const second = pgliteMeter(db, { batchSize: 1, wrap: refusing, dir: first.dir });
    record(second.meter, [eventOf({ requestId: 'second', authz: allowed('second') })]);
    await second.meter.flush();
    await second.meter.stop(1_000);
    const kept = readdirSync(join(first.dir, 'rejected')).map((file) => requestIdOfRow(readFileSync(join(first.dir, 'rejected', file), 'utf8').trim()));
    expect(kept.sort()).toEqual(['first', 'second']);
  });

  it('lets paused callers go once a refused segment leaves the spool under its limit', async () => {
    const { meter, spool } = pgliteMeter(db, {
      batchSize: 1,
      maxSpoolBytes: 1,
      wrap: (sink) => ({ write: () => Promise.reject(Object.assign(new Error('value too long'), { code: '22001' })), close: () => sink.close() }),
    });
    record(meter, [eventOf({ requestId: 'v1', authz: allowed('v1') })]);
    expect(meter.saturated).toBe(true);
    const drained = meter.drained();
    await meter.flush();
    expect(spool.pendingBytes).toBe(0);
    // Released by the flush that set the segment aside, not by a later write.
    let released = false;
    void drained.then(() => (released = true));
    await Promise.resolve();
    expect(released).toBe(true);
  });

  it('asks the caller to pause while the spool is over its limit, and releases it once written', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let writing!: () => void;
    const written = new Promise<void>((resolve) => (writing = resolve));
    const { meter } = pgliteMeter(db, {
      batchSize: 2,
      maxSpoolBytes: 1,
      wrap: (sink) => ({ write: async (chunks) => (writing(), await gate, sink.write(chunks)), close: () => sink.close() }),
    });
    record(meter, ['p1', 'p2'].map((id) => eventOf({ requestId: id, authz: allowed(id) })));
    expect(meter.saturated).toBe(true);
    let drained = false;
    const waiting = meter.drained().then(() => (drained = true));
    // The full segment's write has begun and is held: only its commit may let the caller go.
    await written;
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    release();
    await waiting;
    expect(meter.saturated).toBe(false);
  });
});

function rowsFor(requestIds: string[]): Buffer {
  return Buffer.from(requestIds.map((id) => encodeEventRow(eventOf({ requestId: id, authz: allowed(id) }))).join(''));
}

/** Spools events as the receiver spools a message's rows. */
function record(meter: { record(rows: Buffer, events: number): void }, events: UsageEvent[]): void {
  meter.record(Buffer.from(events.map(encodeEventRow).join('')), events.length);
}

function requestIds(rows: { chunks: Buffer[] }): string[] {
  return Buffer.concat(rows.chunks)
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map(requestIdOfRow);
}

const requestIdOfRow = (row: string) => decodeCopyRow(row)[1]!;

function catalogWith(options: { productExtra?: string; planExtra?: string }): Catalog {
  return parseCatalog(`version: 1
products:
  - id: petstore
    name: PetStore
    endpoints:
      - { id: list-pets, method: GET, path: /api/v1/pets }
${options.productExtra ?? ''}
plans:
  - id: metered
    product: petstore
    name: Metered
    entitlements: ["*"]
${options.planExtra ?? ''}
`);
}

/** Shared by both sinks: PostgreSQL refuses two events of a segment; everything else is stored, those two set aside. */
async function setsAsideOnlyRefusedEvents(sink: UsageSink, db: Db): Promise<void> {
  const { meter, metrics, dir } = meterOn(sink, { batchSize: 8 });
  const event = (id: string) => eventOf({ requestId: id, authz: allowed(id) });
  // PostgreSQL's jsonb refuses a lone surrogate; no capture makes one, so these events are made by hand.
  const poisoned = (id: string) => ({ ...event(id), captured: { note: '\ud83d' } });
  record(meter, ['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8'].map(event));
  record(meter, [event('t1'), poisoned('p1'), event('t2'), event('t3'), event('t4'), event('t5'), poisoned('p2'), event('t6')]);
  record(meter, ['u1', 'u2'].map(event));
  await meter.flush();
  const stored = await db.query<{ request_id: string }>('SELECT request_id FROM usage_events ORDER BY request_id');
  expect(stored.map((row) => row.request_id)).toEqual(['s1', 's2', 's3', 's4', 's5', 's6', 's7', 's8', 't1', 't2', 't3', 't4', 't5', 't6', 'u1', 'u2']);
  const [rollup] = await db.query<{ calls: string }>('SELECT sum(calls)::text AS calls FROM usage_rollups');
  expect(rollup!.calls).toBe('16');
  const rejected = readdirSync(join(dir, 'rejected'));
  expect(rejected).toHaveLength(1);
  const rows = readFileSync(join(dir, 'rejected', rejected[0]!), 'utf8').split('\n').filter(Boolean);
  expect(rows.map(requestIdOfRow)).toEqual(['p1', 'p2']);
  expect((await metrics.usageFlushFailures.get()).values.filter((value) => value.value > 0)).toEqual([expect.objectContaining({ labels: { outcome: 'rejected' }, value: 1 })]);
  expect((await metrics.usageEventsRejected.get()).values[0]!.value).toBe(2);
  expect((await metrics.usageEventsStored.get()).values[0]!.value).toBe(16);
}

/** A fresh, migrated PostgreSQL database, dropped after the test. */
async function migratedTestDatabase() {
  const database = await createTestDatabase({ migrated: true });
  const db = new PostgresDb(database.url);
  cleanups.push(async () => {
    await db.close();
    await database.drop();
  });
  await migrate(db);
  return { database, db };
}

function pgliteMeter(db: PgliteDb, options: TestMeterOptions) {
  return meterOn(new DbUsageSink(db), options);
}

function meterOn(sink: UsageSink, options: TestMeterOptions) {
  return startTestMeter(sink, options, cleanups);
}
