import { Decimal } from 'decimal.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/kernel/logger.js';
import type { UsageEvent } from '../src/metering/event.js';
import { encodeEventRow } from '../src/metering/event-rows.js';
import { DbUsageSink, PostgresUsageSink, type UsageSink } from '../src/metering/sink.js';
import type { Db } from '../src/store/db.js';
import { migrate } from '../src/store/migrations.js';
import { PgliteDb } from '../src/store/pglite.js';
import { PostgresDb } from '../src/store/postgres.js';
import { createTestDatabase } from './support/services.js';
import { openMigratedPglite } from './support/pglite-template.js';
import { emptyTables } from './support/empty-tables.js';

/**
 * The usage insert keeps four summaries of the events it stores (usage_rollups, usage_daily_rollups,
 * usage_captured_rollups, customer_first_calls), from the new events only, in one statement. Whatever the mix of
 * events and duplicates, and whichever of its variants runs, each summary must equal the same summary made here, in
 * TypeScript, from the events that were new.
 */

const day = 86_400_000;
const midnight = Date.parse('2026-11-15T00:00:00Z');
const periods = [Date.parse('2026-11-01T00:00:00Z'), Date.parse('2026-11-14T12:00:00Z')];

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Batches of events of every kind the insert treats apart, with duplicates within and across batches. */
function eventBatches(seed: number, batches: number, size: number): UsageEvent[][] {
  const next = random(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)]!;
  const made: UsageEvent[] = [];
  return Array.from({ length: batches }, () =>
    Array.from({ length: size }, () => {
      if (made.length > 0 && next() < 0.08) return { ...pick(made), occurredAt: midnight }; // logged again: same usage id
      const customerId = next() < 0.05 ? null : pick(['cus_a', 'cus_b', 'cus_c']);
      const decision = pick(['allow', 'allow', 'allow', 'allow', 'deny', null] as const);
      const billable = decision === 'allow' && next() < 0.8;
      const captured =
        next() < 0.3 ? { price: pick(['0.25', '12.5', '3', '-1', 'n/a', '1e3']), tokens: Math.floor(next() * 1000), model: 'gpt' } : null;
      const event: UsageEvent = {
        usageId: `u${seed}-${made.length}`,
        requestId: next() < 0.5 ? `r${made.length}` : null,
        // Around two UTC midnights, so a batch spans days.
        occurredAt: midnight + Math.floor((next() - 0.5) * 3 * day),
        periodStart: next() < 0.05 ? null : pick(periods),
        customerId,
        subscriptionId: customerId === null || next() < 0.05 ? null : `sub_${customerId}_${pick([1, 2])}`,
        planId: 'pro',
        productId: 'petstore',
        endpointId: next() < 0.1 ? null : pick(['list-pets', 'get-pet', 'create-pet']),
        keyId: 'key_1',
        method: 'GET',
        status: 200,
        weight: 1 + Math.floor(next() * 10),
        requestBytes: Math.floor(next() * 5000),
        responseBytes: Math.floor(next() * 50_000),
        durationUs: 1500,
        decision,
        reason: billable ? null : decision === 'deny' ? 'rate_limited' : 'status_not_billable',
        billable,
        captured,
      };
      made.push(event);
      return event;
    }),
  );
}

type Summaries = Record<'rollups' | 'daily' | 'captured' | 'firstCalls', string[]>;

/** The four summaries of `events` (each usage id once), as rows in a canonical text form. */
function expectedSummaries(events: UsageEvent[]): Summaries {
  const rollups = new Map<string, bigint[]>();
  const daily = new Map<string, bigint[]>();
  const captured = new Map<string, Decimal>();
  const firstCalls = new Map<string, number>();
  const add = (map: Map<string, bigint[]>, key: string, values: bigint[]) => {
    const sums = map.get(key) ?? values.map(() => 0n);
    map.set(key, sums.map((sum, i) => sum + values[i]!));
  };
  for (const e of events) {
    const allow = e.decision === 'allow';
    // A first call needs only a customer; every other summary a customer, a subscription and a period.
    if (allow && e.customerId !== null) firstCalls.set(e.customerId, Math.min(firstCalls.get(e.customerId) ?? Infinity, e.occurredAt));
    if (e.customerId === null || e.subscriptionId === null || e.periodStart === null) continue;
    const endpoint = e.endpointId ?? '';
    if (e.decision !== null) {
      const w = BigInt(e.weight);
      add(rollups, [e.customerId, e.subscriptionId, e.periodStart, endpoint].join('|'), [
        allow ? 1n : 0n, allow ? w : 0n, e.billable ? 1n : 0n, e.billable ? w : 0n, allow ? 0n : 1n,
        allow ? BigInt(e.requestBytes) : 0n, allow ? BigInt(e.responseBytes) : 0n,
      ]);
      add(daily, [e.customerId, new Date(e.occurredAt).toISOString().slice(0, 10), endpoint].join('|'), [allow ? 1n : 0n, allow ? w : 0n, allow ? 0n : 1n]);
    }
    if (!e.billable || !e.captured) continue;
    for (const [name, value] of Object.entries(e.captured)) {
      if (!/^[0-9]{1,30}([.][0-9]{1,30})?$/.test(String(value))) continue;
      const key = [e.customerId, e.subscriptionId, e.periodStart, endpoint, name].join('|');
      captured.set(key, (captured.get(key) ?? new Decimal(0)).plus(String(value)));
    }
  }
  const rows = (map: Map<string, unknown>) => [...map].map(([key, value]) => `${key}|${Array.isArray(value) ? value.join('|') : String(value)}`).sort();
  return {
    rollups: rows(rollups),
    daily: rows(daily),
    captured: [...captured].map(([key, amount]) => `${key}|${amount.toString()}`).sort(),
    firstCalls: [...firstCalls].map(([customer, at]) => `${customer}|${at}`).sort(),
  };
}

/** The same summaries as the database holds them. */
async function storedSummaries(db: Db): Promise<Summaries> {
  const epochMs = (column: string) => `(extract(epoch FROM ${column}) * 1000)::bigint`;
  const texts = async (sql: string) => (await db.query<{ row: string }>(sql)).map((r) => r.row).sort();
  const captured = await db.query<{ key: string; amount: string }>(
    `SELECT concat_ws('|', customer_id, subscription_id, ${epochMs('period_start')}, endpoint_id, name) AS key, amount::text AS amount FROM usage_captured_rollups`,
  );
  return {
    rollups: await texts(
      `SELECT concat_ws('|', customer_id, subscription_id, ${epochMs('period_start')}, endpoint_id, calls, units, billable_calls, billable_units,
         denied_calls, request_bytes, response_bytes) AS row FROM usage_rollups`,
    ),
    daily: await texts(`SELECT concat_ws('|', customer_id, to_char(day, 'YYYY-MM-DD'), endpoint_id, calls, units, denied_calls) AS row FROM usage_daily_rollups`),
    // Compared as numbers: PostgreSQL keeps a sum's largest scale (12.50), decimal.js drops trailing zeros.
    captured: captured.map(({ key, amount }) => `${key}|${new Decimal(amount).toString()}`).sort(),
    firstCalls: await texts(`SELECT concat_ws('|', customer_id, ${epochMs('first_call_at')}) AS row FROM customer_first_calls`),
  };
}

/** Writes the batches, one transaction each, and checks what the sink counted new against the distinct usage ids. */
async function writeAll(sink: UsageSink, batches: UsageEvent[][]): Promise<UsageEvent[]> {
  const stored = new Map<string, UsageEvent>();
  for (const batch of batches) {
    const before = stored.size;
    for (const event of batch) if (!stored.has(event.usageId)) stored.set(event.usageId, event);
    expect(await sink.write([Buffer.from(batch.map(encodeEventRow).join(''))])).toBe(stored.size - before);
  }
  return [...stored.values()];
}

const summaryTables = ['usage_events', 'usage_rollups', 'usage_daily_rollups', 'usage_captured_rollups', 'customer_first_calls', 'event_outbox'];

describe('usage summaries on PostgreSQL', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let db: PostgresDb;
  beforeAll(async () => {
    database = await createTestDatabase({ migrated: true });
    db = new PostgresDb(database.url);
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  // The writer inserts a batch as if it held no duplicate and, after one did, skips duplicates for the next writes
  // (test/metering.test.ts): batches with duplicates take both statements, batches without only the first.
  it.each([
    { queueEvents: false, seed: 1 },
    { queueEvents: true, seed: 2 },
  ])('equal the summaries of the new events, batch after batch, with events queued: $queueEvents', async ({ queueEvents, seed }) => {
    await emptyTables(db, summaryTables);
    const sink = new PostgresUsageSink(database.url, silentLogger, { queueEvents });
    try {
      const batches = eventBatches(seed, 8, 400);
      const stored = await writeAll(sink, batches);
      expect(await storedSummaries(db)).toEqual(expectedSummaries(stored));
      const [outbox] = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM event_outbox');
      expect(outbox!.count).toBe(queueEvents ? stored.length : 0);
    } finally {
      await sink.close();
    }
  });

  it('equal them when no batch holds a duplicate (every write takes the statement assuming none)', async () => {
    await emptyTables(db, summaryTables);
    const sink = new PostgresUsageSink(database.url, silentLogger);
    try {
      const unique = eventBatches(3, 1, 3_000)[0]!.filter((event, i, all) => all.findIndex((other) => other.usageId === event.usageId) === i);
      const stored = await writeAll(sink, [unique.slice(0, 1_000), unique.slice(1_000, 2_000), unique.slice(2_000)]);
      expect(stored).toHaveLength(unique.length);
      expect(await storedSummaries(db)).toEqual(expectedSummaries(stored));
    } finally {
      await sink.close();
    }
  });
});

describe('usage summaries on PGlite', () => {
  let db: PgliteDb;
  beforeAll(async () => {
    db = await openMigratedPglite();
  });
  afterAll(() => db?.close());

  it('equal the summaries of the new events, batch after batch', async () => {
    const stored = await writeAll(new DbUsageSink(db), eventBatches(4, 5, 300));
    expect(await storedSummaries(db)).toEqual(expectedSummaries(stored));
  });
});
