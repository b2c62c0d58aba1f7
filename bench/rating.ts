/**
 * Rating benchmark: one month for 10,000 customers whose usage adds up to 50,000,000 calls, rated and finalized by
 * one pass of the rating loop (leader lock, wallet settlement, usage read, rating, invoice and line writes, prepaid
 * true-ups), then the next pass with nothing changed (incremental rating: it rates nothing). Rating reads usage
 * aggregates, so the month's usage is generated as metering leaves it: usage_rollups rows per subscription and
 * endpoint (80,000 rows whose calls sum to 50M), not 50M events.
 *
 * Plans: 40% metered (graduated), 30% hybrid, 10% pro, 10% enterprise, 10% pay-per-call (prepaid, with wallets).
 *
 * Standalone: `npx tsx bench/rating.ts [--pglite]` (PostgreSQL at TOLLGATE_TEST_DATABASE_URL, default
 * postgres://postgres@127.0.0.1:5432/test; a scratch database is created and dropped).
 */
import { pathToFileURL } from 'node:url';
import { RatingLoop } from '../src/billing/rating-loop.js';
import { SqlInvoiceRecords } from '../src/billing/sql-invoice-records.js';
import { SqlSubscriptionHistories } from '../src/billing/sql-subscription-histories.js';
import { SqlRatingWork } from '../src/billing/sql-rating-work.js';
import { RollupUsageSource } from '../src/billing/sql-usage-source.js';
import { SqlWalletRecords } from '../src/billing/sql-wallet-records.js';
import { WalletService } from '../src/billing/wallet.js';
import { loadCatalogFile } from '../src/catalog/load.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { createMetrics } from '../src/metrics/metrics.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import type { Db } from '../src/store/db.js';
import { migrate } from '../src/store/migrations.js';
import { PgliteDb } from '../src/store/pglite.js';
import { PostgresDb } from '../src/store/postgres.js';
import { createTestDatabase } from '../test/support/services.js';

export interface RatingBenchOptions {
  customers?: number;
  /** Calls the month's rollups represent. */
  events?: number;
  database?: 'postgres' | 'pglite';
}

export interface RatingBenchResult {
  customers: number;
  events: number;
  rollupRows: number;
  invoicesFinalized: number;
  invoiceLines: number;
  prepaidWallets: number;
  /** The rating pass alone; generating the data is not timed. */
  seconds: number;
  /** Tollgate's CPU in that pass (PostgreSQL's not included): moves less with a busy machine than seconds. */
  nodeCpuSeconds: number;
  invoicesPerSecond: number;
  /** The next pass, with nothing changed: it finds no subscription to rate. */
  idlePassSeconds: number;
}

const month = { start: '2026-11-01T00:00:00Z', closedAt: Date.parse('2026-12-01T00:10:00Z') };
const endpoints = [
  ['list-pets', 1],
  ['get-pet', 1],
  ['create-pet', 2],
  ['update-pet', 2],
  ['delete-pet', 2],
  ['upload-pet-image', 10],
  ['analytics', 5],
  ['webhooks', 1],
] as const;

export async function runRatingBench(options: RatingBenchOptions = {}): Promise<RatingBenchResult> {
  const customers = options.customers ?? 10_000;
  const events = options.events ?? 50_000_000;
  const scratch = options.database === 'pglite' ? undefined : await createTestDatabase();
  const db: Db = scratch ? new PostgresDb(scratch.url) : await PgliteDb.open();
  try {
    await migrate(db);
    const prepaidWallets = await seedMonth(db, customers, events);
    const catalog = loadCatalogFile('examples/petstore.yaml');
    const clock = new ManualClock(month.closedAt);
    const loop = new RatingLoop(
      {
        invoices: new SqlInvoiceRecords(db),
        histories: new SqlSubscriptionHistories(db),
        catalog: () => catalog,
        clock,
        usage: new RollupUsageSource(db),
        work: new SqlRatingWork(db),
        wallets: new WalletService(new SqlWalletRecords(db), new MemoryCounterStore(clock), () => catalog, clock, silentLogger),
        metrics: createMetrics(),
        logger: silentLogger,
      },
      { finalizeAfterMs: 5 * 60_000 },
    );
    const started = performance.now();
    const cpu = process.cpuUsage();
    const run = await loop.pass();
    const seconds = (performance.now() - started) / 1000;
    const passCpu = process.cpuUsage(cpu);
    // Incremental rating: with nothing marked or due, the next pass rates nothing.
    const idleStarted = performance.now();
    await loop.pass();
    const idlePassSeconds = (performance.now() - idleStarted) / 1000;
    const [lines] = await db.query<{ count: string }>('SELECT count(*) FROM invoice_lines');
    return {
      customers,
      events,
      rollupRows: customers * endpoints.length,
      invoicesFinalized: run?.finalized ?? 0,
      invoiceLines: Number(lines!.count),
      prepaidWallets,
      seconds: Number(seconds.toFixed(2)),
      nodeCpuSeconds: Number(((passCpu.user + passCpu.system) / 1e6).toFixed(2)),
      invoicesPerSecond: Math.round((run?.finalized ?? 0) / seconds),
      idlePassSeconds: Number(idlePassSeconds.toFixed(3)),
    };
  } finally {
    await db.close();
    await scratch?.drop();
  }
}

/** Customers subscribed since the month's start, their usage rollups, and the prepaid ones' wallets; returns the wallet count. */
async function seedMonth(db: Db, customers: number, events: number): Promise<number> {
  await db.query(`INSERT INTO customers (id, name) SELECT 'c' || i, 'Customer ' || i FROM generate_series(1, $1::int) i`, [customers]);
  await db.query(
    `INSERT INTO subscriptions (id, customer_id, product_id, plan_id, status, started_at, period_anchor)
     SELECT 's' || i, 'c' || i, 'petstore',
       (ARRAY['metered', 'metered', 'metered', 'metered', 'hybrid', 'hybrid', 'hybrid', 'pro', 'enterprise', 'pay-per-call'])[1 + i % 10],
       'active', $2::timestamptz, $2::timestamptz
     FROM generate_series(1, $1::int) i`,
    [customers, month.start],
  );
  const rows = customers * endpoints.length;
  const base = Math.floor(events / rows);
  const remainder = events - base * rows;
  await db.query(
    `INSERT INTO usage_rollups (customer_id, subscription_id, period_start, endpoint_id, calls, units, billable_calls, billable_units,
       denied_calls, request_bytes, response_bytes)
     SELECT 'c' || s, 's' || s, $2::timestamptz, e.id, c.calls, c.calls * e.weight, c.calls, c.calls * e.weight, 0, 0, 0
     FROM generate_series(1, $1::int) s
     CROSS JOIN jsonb_to_recordset($3::jsonb) AS e (n int, id text, weight int)
     CROSS JOIN LATERAL (SELECT $4::bigint + CASE WHEN (s - 1) * $5::int + e.n <= $6::int THEN 1 ELSE 0 END AS calls) c`,
    [customers, month.start, JSON.stringify(endpoints.map(([id, weight], n) => ({ n: n + 1, id, weight }))), base, endpoints.length, remainder],
  );
  // Prepaid customers topped up and paid their setup fee when they purchased.
  const [wallets] = await db.query<{ count: string }>(
    `WITH prepaid AS (SELECT customer_id, id FROM subscriptions WHERE plan_id = 'pay-per-call'),
     created AS (INSERT INTO wallets (customer_id, currency) SELECT customer_id, 'USD' FROM prepaid RETURNING customer_id)
     SELECT count(*) FROM created`,
  );
  await db.query(
    `INSERT INTO wallet_entries (customer_id, currency, kind, amount, reference, description, subscription_id, period_start, occurred_at)
     SELECT customer_id, 'USD', 'top_up', 100000, 'top_up:bench', 'Top-up bench', NULL, NULL, $1::timestamptz FROM subscriptions WHERE plan_id = 'pay-per-call'
     UNION ALL
     SELECT customer_id, 'USD', 'setup_fee', -500, 'setup_fee:' || id || ':' || (extract(epoch FROM $1::timestamptz) * 1000)::bigint,
       'Setup fee, plan pay-per-call', id, $1::timestamptz, $1::timestamptz FROM subscriptions WHERE plan_id = 'pay-per-call'`,
    [month.start],
  );
  return Number(wallets!.count);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await runRatingBench({ database: process.argv.includes('--pglite') ? 'pglite' : 'postgres' }), null, 2));
}
