import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { RatingLoop, type RatingWork, RollupUsageSource, SqlInvoiceRecords, SqlRatingWork, SqlSubscriptionHistories, SqlWalletRecords, WalletService } from '../src/billing/index.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { encodeEventRow } from '../src/metering/event-rows.js';
import type { UsageEvent } from '../src/metering/event.js';
import { PostgresUsageSink } from '../src/metering/sink.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { periodContaining } from '../src/rating/period.js';
import type { Db, Queryable } from '../src/store/db.js';
import { migrate } from '../src/store/migrations.js';
import { PostgresDb } from '../src/store/postgres.js';
import { createTestDatabase } from './support/services.js';

/**
 * Incremental rating on PostgreSQL: after its first (full) pass, the rating loop rates only subscriptions marked by the
 * usage insert or the subscription triggers, or due by time; and what it leaves is what a full re-rate would.
 */

const catalog = loadCatalogFile('examples/petstore.yaml');
const startedAt = Date.parse('2026-11-01T00:00:00Z');
const plans = ['metered', 'hybrid', 'pro', 'enterprise', 'pay-per-call'] as const;
const endpoints = [
  ['list-pets', 1],
  ['create-pet', 2],
  ['upload-pet-image', 10],
] as const;
const finalizeAfterMs = 5 * 60_000;
const hour = 3_600_000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A Db that records the statements run through it, in transactions too. */
function recording(db: Db, statements: string[]): Db {
  const record = (queryable: Queryable): Queryable => ({
    query: (sql, params) => {
      statements.push(sql);
      return queryable.query(sql, params);
    },
  });
  return {
    kind: db.kind,
    query: record(db).query,
    transaction: (fn) => db.transaction((tx) => fn(record(tx))),
    withAdvisoryLock: (lockId, fn) => db.withAdvisoryLock(lockId, fn),
    close: () => db.close(),
  };
}

/** `subscriptions` customers with one subscription each (plans in turn, prepaid ones with a funded wallet), since November. */
async function world(subscriptions: number) {
  const database = await createTestDatabase({ migrated: true });
  const db = new PostgresDb(database.url);
  const sink = new PostgresUsageSink(database.url, silentLogger);
  cleanups.push(async () => {
    await sink.close();
    await db.close();
    await database.drop();
  });
  await migrate(db);
  await db.query(`INSERT INTO customers (id, name) SELECT 'c' || i, 'Customer ' || i FROM generate_series(1, $1::int) i`, [subscriptions]);
  await db.query(
    `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor)
     SELECT 's' || i, 'c' || i, 'petstore', ($2::text[])[1 + i % $3::int], 'active', $4::timestamptz, $4::timestamptz
     FROM generate_series(1, $1::int) i`,
    [subscriptions, plans, plans.length, new Date(startedAt)],
  );
  await db.query(`INSERT INTO wallets (customer_id, currency) SELECT customer_id, 'USD' FROM subscriptions WHERE plan_id = 'pay-per-call'`);
  await db.query(
    `INSERT INTO wallet_entries (customer_id, currency, kind, amount, reference, description, occurred_at)
     SELECT customer_id, 'USD', 'top_up', 1000000, 'top_up:test', 'Top-up', $1::timestamptz FROM subscriptions WHERE plan_id = 'pay-per-call'`,
    [new Date(startedAt)],
  );
  const clock = new ManualClock(Date.parse('2026-11-10T00:00:00Z'));
  const statements: string[] = [];
  const rated = recording(db, statements);
  const counters = new MemoryCounterStore(clock);
  /** A rating loop as src/app.ts builds one; its statements, but for the wallets' settlement, are recorded. */
  const ratingLoop = (work: (db: Db) => RatingWork = (db) => new SqlRatingWork(db)) =>
    new RatingLoop(
      {
        invoices: new SqlInvoiceRecords(rated),
        histories: new SqlSubscriptionHistories(rated),
        catalog: () => catalog,
        clock,
        usage: new RollupUsageSource(rated),
        work: work(rated),
        wallets: new WalletService(new SqlWalletRecords(db), counters, () => catalog, clock, silentLogger),
        metrics: createMetrics(),
        logger: silentLogger,
      },
      { finalizeAfterMs },
    );
  let calls = 0;
  /** Flushes billable calls through the metering insert (as the spool does), at the clock's time. */
  const use = async (subscription: string, count: number, endpoint = 0) => {
    const [id, weight] = endpoints[endpoint % endpoints.length]!;
    const at = clock.now();
    const events = Array.from({ length: count }, (): UsageEvent => ({
      usageId: `u${++calls}`,
      requestId: null,
      occurredAt: at,
      periodStart: periodContaining(startedAt, at).start,
      customerId: `c${subscription.slice(1)}`,
      subscriptionId: subscription,
      planId: null,
      productId: 'petstore',
      endpointId: id,
      keyId: null,
      method: 'GET',
      status: 200,
      weight,
      requestBytes: 100,
      responseBytes: 100,
      durationUs: null,
      decision: 'allow',
      reason: null,
      billable: true,
      captured: null,
    }));
    await sink.write([Buffer.from(events.map(encodeEventRow).join(''))]);
  };
  /** Every invoice with its lines, and the ledger: what rating leaves behind. */
  const snapshot = async () => ({
    invoices: await db.query<{ subscription_id: string; status: string }>(
      `SELECT i.subscription_id, i.period_start, i.plan_id, i.status, i.total, i.calls, i.units, i.rated_at, i.finalized_at,
         (SELECT json_agg(json_build_object('kind', l.kind, 'plan', l.plan_id, 'amount', l.amount, 'quantity', l.quantity) ORDER BY l.position)
          FROM invoice_lines l WHERE l.invoice_id = i.id) AS lines
       FROM invoices i ORDER BY 1, 2`,
    ),
    ledger: await db.query(`SELECT customer_id, kind, amount, reference FROM wallet_entries ORDER BY customer_id, reference`),
  });
  const marks = async () => (await db.query<{ subscription_id: string }>('SELECT subscription_id FROM rating_marks ORDER BY 1')).map((row) => row.subscription_id);
  return { db, clock, statements, ratingLoop, use, snapshot, marks };
}

describe('incremental rating (PostgreSQL)', () => {
  it('after its first pass, rates only what changed: nothing at all when nothing did', async () => {
    const { db, clock, statements, ratingLoop, use, snapshot, marks } = await world(40);
    const loop = ratingLoop();
    expect(await loop.pass()).toMatchObject({ rated: 40 });
    expect(await marks()).toEqual([]);
    const before = await snapshot();

    statements.length = 0;
    clock.advance(hour);
    expect(await loop.pass()).toMatchObject({ rated: 0, finalized: 0 });
    // One read of the marks and the due subscriptions; no subscription, usage, invoice or ledger row read or written.
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/FROM rating_marks[\s\S]*FROM rating_due/);
    expect(await snapshot()).toEqual(before);

    // New usage of one subscription: the usage insert marks it, and the pass rates it alone.
    await use('s7', 5);
    await use('s7', 3, 2);
    expect(await marks()).toEqual(['s7']);
    statements.length = 0;
    expect(await loop.pass()).toMatchObject({ rated: 1 });
    expect(await marks()).toEqual([]);
    expect(statements.some((sql) => sql.includes('billed_through FROM invoices i') && !sql.includes('ANY('))).toBe(false);
    const afterUsage = await snapshot();
    const changed = afterUsage.invoices.filter((invoice, i) => JSON.stringify(invoice) !== JSON.stringify(before.invoices[i]));
    expect(changed).toMatchObject([{ subscription_id: 's7', calls: '8' }]);

    // A plan change (any write path: the trigger marks it) is rated at once, alone.
    await db.query(
      `INSERT INTO subscription_changes (subscription_id, kind, from_plan_id, to_plan_id, effective_at) VALUES ('s12', 'plan_change', 'hybrid', 'enterprise', $1)`,
      [new Date(clock.now())],
    );
    await db.query(`UPDATE subscriptions SET plan_id = 'enterprise' WHERE id = 's12'`);
    expect(await loop.pass()).toMatchObject({ rated: 1 });
    const [s12] = (await snapshot()).invoices.filter((invoice) => invoice.subscription_id === 's12');
    expect(s12).toMatchObject({ plan_id: 'enterprise' });
  });

  it('rates every subscription again when a period starts, and finalizes the ended one when it is due, unmarked', async () => {
    const { clock, ratingLoop, snapshot } = await world(10);
    const loop = ratingLoop();
    await loop.pass();
    clock.set(Date.parse('2026-12-01T00:00:00Z') - 1);
    expect(await loop.pass()).toMatchObject({ rated: 0 });
    clock.set(Date.parse('2026-12-01T00:00:00Z'));
    // November's draft again and December's first: two periods each.
    expect(await loop.pass()).toMatchObject({ rated: 20, finalized: 0 });
    clock.set(Date.parse('2026-12-01T00:00:00Z') + finalizeAfterMs);
    expect(await loop.pass()).toMatchObject({ rated: 20, finalized: 10 });
    expect(await loop.pass()).toMatchObject({ rated: 0 });
    const { invoices } = await snapshot();
    expect(invoices.map((invoice) => invoice.status)).toEqual(Array.from({ length: 10 }, () => ['finalized', 'draft']).flat());
  });

  it('leaves a mark that a crash stopped it from consuming, and rates its subscription on the next pass', async () => {
    const { clock, ratingLoop, use, snapshot, marks } = await world(10);
    await ratingLoop().pass();
    const before = await snapshot();
    await use('s3', 4);
    let crash = true;
    const loop = ratingLoop((db) =>
      beforeRated(new SqlRatingWork(db), async () => {
        if (crash) throw new Error('the process died before its commit');
      }),
    );
    clock.advance(hour);
    await expect(loop.pass()).rejects.toThrow('the process died');
    // Rolled back with the drafts: nothing written, the mark kept.
    expect(await snapshot()).toEqual(before);
    expect(await marks()).toEqual(['s3']);
    crash = false;
    // A fresh process (full first pass) or this one (marks): either way s3 is rated.
    const next = ratingLoop();
    await next.pass();
    expect(await next.pass()).toMatchObject({ rated: 0 });
    expect((await snapshot()).invoices.find((invoice) => invoice.subscription_id === 's3')).toMatchObject({ calls: '4' });
    expect(await marks()).toEqual([]);
  });

  it('keeps a mark bumped while it rated (usage committed after its read), so the next pass counts that usage', async () => {
    const { ratingLoop, use, snapshot, marks } = await world(5);
    let race = false;
    const loop = ratingLoop((db) =>
      beforeRated(new SqlRatingWork(db), async (read) => {
        // Another flush of s2 commits between this batch's usage read and its commit.
        if (race && read.has('s2')) {
          race = false;
          await use('s2', 2);
        }
      }),
    );
    await loop.pass();
    race = true;
    await use('s2', 1);
    expect(await loop.pass()).toMatchObject({ rated: 1 });
    expect(await marks()).toEqual(['s2']);
    expect((await snapshot()).invoices.find((invoice) => invoice.subscription_id === 's2')).toMatchObject({ calls: '1' });
    expect(await loop.pass()).toMatchObject({ rated: 1 });
    expect(await marks()).toEqual([]);
    expect((await snapshot()).invoices.find((invoice) => invoice.subscription_id === 's2')).toMatchObject({ calls: '3' });
  });

  it('leaves exactly what a full re-rate leaves, over random usage, plan changes, cancellations and time', async () => {
    const step = fc.oneof(
      fc.record({ use: fc.integer({ min: 1, max: 8 }), calls: fc.integer({ min: 1, max: 40 }), endpoint: fc.nat(2) }),
      fc.record({ change: fc.integer({ min: 1, max: 8 }), to: fc.constantFrom(...plans) }),
      fc.record({ cancel: fc.integer({ min: 1, max: 8 }) }),
      fc.record({ advanceHours: fc.integer({ min: 1, max: 24 * 12 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 4, maxLength: 14 }), async (steps) => {
        const { db, clock, ratingLoop, use, snapshot } = await world(8);
        try {
          const loop = ratingLoop();
          await loop.pass();
          for (const action of steps) {
            if ('use' in action) await use(`s${action.use}`, action.calls, action.endpoint);
            else if ('change' in action) await changePlan(db, `s${action.change}`, action.to, clock.now());
            else if ('cancel' in action) await cancel(db, `s${action.cancel}`, clock.now());
            else clock.advance(action.advanceHours * hour);
            await loop.pass();
            const incremental = await snapshot();
            // A new process's first pass re-rates everyone: it must find nothing to change.
            await ratingLoop().pass();
            expect(await snapshot()).toEqual(incremental);
          }
        } finally {
          await cleanups.pop()!();
        }
      }),
      { numRuns: 6 },
    );
  }, 300_000);
});

/** `work`, running `before` ahead of each `rated` (in the pass's transaction, before the marks are taken). */
function beforeRated(work: RatingWork, before: (read: ReadonlyMap<string, number>) => Promise<void>): RatingWork {
  return {
    pending: (now) => work.pending(now),
    within: (tx) => beforeRated(work.within(tx), before),
    rated: async (read, due) => {
      await before(read);
      return work.rated(read, due);
    },
  };
}

async function changePlan(db: Db, subscription: string, to: string, at: number): Promise<void> {
  const [current] = await db.query<{ plan_id: string; status: string }>('SELECT plan_id, status FROM subscriptions WHERE id = $1', [subscription]);
  if (current!.status !== 'active' || current!.plan_id === to) return;
  await db.transaction(async (tx) => {
    await tx.query(`INSERT INTO subscription_changes (subscription_id, kind, from_plan_id, to_plan_id, effective_at) VALUES ($1, 'plan_change', $2, $3, $4)`, [
      subscription,
      current!.plan_id,
      to,
      new Date(at),
    ]);
    await tx.query('UPDATE subscriptions SET plan_id = $2 WHERE id = $1', [subscription, to]);
  });
}

async function cancel(db: Db, subscription: string, at: number): Promise<void> {
  const [current] = await db.query<{ plan_id: string; status: string }>('SELECT plan_id, status FROM subscriptions WHERE id = $1', [subscription]);
  if (current!.status !== 'active') return;
  await db.transaction(async (tx) => {
    await tx.query(`INSERT INTO subscription_changes (subscription_id, kind, from_plan_id, to_plan_id, effective_at) VALUES ($1, 'cancellation', $2, NULL, $3)`, [
      subscription,
      current!.plan_id,
      new Date(at),
    ]);
    await tx.query(`UPDATE subscriptions SET status = 'canceled', canceled_at = $2 WHERE id = $1`, [subscription, new Date(at)]);
  });
}
