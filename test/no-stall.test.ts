import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertScaleAccounts, scaleKey } from '../bench/scale-keys.js';
import { identityKeys } from '../src/identity/identity-records.js';
import { ManualClock } from '../src/kernel/clock.js';
import { Redis } from 'ioredis';
import { PostgresDb } from '../src/store/postgres.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, testRedisUrl, type TestApp } from './support/services.js';

/**
 * No stall on the hot path (Tollgate issue 23): Checks keep answering, in time, while a bulk import of 100,000 keys
 * lands in PostgreSQL and the background work it sets off runs — the identity rebuild writing the new keys' records
 * into Redis, a rating pass over the 50,000 new subscriptions. There is no bulk-import path in the admin API or
 * the CLI, so the import is the scale bench's generator (bench/scale-keys.ts), as a loader writing straight into
 * PostgreSQL would. The jobs run on a manual clock, a minute of it, so that each of them runs while measured;
 * the Checks, the import and the jobs' own work take real time, in this process, and the event-loop delay
 * (perf_hooks) is this process's: the app's.
 */

const importedKeys = 100_000;
/** Checks in flight at once, one after the other in each lane, for the whole time. */
const lanes = 4;
/**
 * Generous for a busy CI machine, far below the stalls they rule out (issue 23: whole seconds at 1M keys). A stall
 * longer than the Redis timeout turns counter calls into fallbacks; the test runs with this timeout, so that a busy
 * machine's scheduling alone does not.
 */
const budget = { checkP99Ms: 400, eventLoopMaxMs: 400, redisTimeoutMs: 400 };

describe('Checks during a bulk import and the background work after it', () => {
  const timers = new ManualClock(0);
  let test: TestApp;
  let envoy: FakeEnvoy;
  const latencies: number[] = [];
  let failedChecks = 0;
  let eventLoopMaxMs = 0;
  let importedKeyAllowed = false;
  let fallbacks = Number.NaN;
  let seconds = 0;

  const check = (key: string) => envoy.check({ method: 'GET', path: '/v2/products', key, host: 'api.example.com' });

  beforeAll(async () => {
    test = await startTestApp({
      mode: 'production',
      timers,
      env: {
        TOLLGATE_CATALOG: 'bench/catalog-realistic.yaml',
        TOLLGATE_REDIS_TIMEOUT_MS: String(budget.redisTimeoutMs),
        // Fewer firings per manual minute; the work per poll is the same.
        TOLLGATE_SYNC_INTERVAL_MS: '1000',
        TOLLGATE_SPOOL_FSYNC_MS: '1000',
        TOLLGATE_BILLING_INTERVAL_MS: '600000',
      },
    });
    await test.admin('POST', '/v1/customers', { id: 'probe', name: 'Probe' });
    const { body } = await test.admin('POST', '/v1/keys', { customer: 'probe', plan: 'growth' });
    envoy = new FakeEnvoy(test.grpcAddress);
    expect((await check(body.key)).allowed).toBe(true);

    const delay = monitorEventLoopDelay({ resolution: 10 });
    let running = true;
    const lane = async () => {
      while (running) {
        const started = performance.now();
        try {
          await check(body.key);
          latencies.push(performance.now() - started);
        } catch {
          failedChecks++;
        }
      }
    };
    const started = performance.now();
    delay.enable();
    const checking = Array.from({ length: lanes }, lane);
    const loader = new PostgresDb(test.env.TOLLGATE_DATABASE_URL!);
    try {
      await insertScaleAccounts(loader, 0, importedKeys);
      // Keys written straight into PostgreSQL reach the Checks' records in Redis by a rebuild (docs/OPERATIONS.md):
      // the leader's rebuild job then writes the new keys' records, while the Checks go on.
      const redis = new Redis(testRedisUrl);
      try {
        await redis.del(identityKeys(test.env.TOLLGATE_REDIS_PREFIX!).complete);
      } finally {
        await redis.quit();
      }
      // A minute of background work: the identity rebuild, version polls; and the rating pass due at start, over the
      // 50,000 new subscriptions (the next one only in 10 minutes: a pass is slow).
      await timers.advance(60_000);
    } finally {
      running = false;
      await Promise.all(checking);
      delay.disable();
      seconds = (performance.now() - started) / 1000;
      await loader.close();
    }
    eventLoopMaxMs = delay.max / 1e6;
    importedKeyAllowed = (await check(scaleKey(importedKeys - 1))).allowed;
    const scrape = await test.app.metrics.registry.metrics();
    fallbacks = [...scrape.matchAll(/^tollgate_quota_store_failures_total\{[^}]*\} (\d+)$/gm)].reduce((sum, [, count]) => sum + Number(count), 0);
  }, 240_000);

  afterAll(async () => {
    envoy?.close();
    await test?.close();
  });

  const figures = () => {
    const sorted = [...latencies].sort((a, b) => a - b);
    const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
    return { seconds: Number(seconds.toFixed(1)), checks: latencies.length, failedChecks, checkP50Ms: at(0.5), checkP99Ms: at(0.99), checkMaxMs: at(1), eventLoopMaxMs, fallbacks };
  };

  it('ran the import and its background work while every Check was answered', () => {
    expect(importedKeyAllowed).toBe(true);
    expect(failedChecks).toBe(0);
    expect(latencies.length).toBeGreaterThan(100 * lanes);
  });

  /**
   * The mirror of every key (the identity cache without Redis) failed this: a poll after the import handled all its
   * rows at once and a snapshot write serialised all of them, on the main thread (event loop stalled 2.5 s, Check p99
   * 1.07 s on a busy machine). With identity on demand nothing proportional to the keys runs on the main thread.
   */
  it('kept Checks within budget: p99, event-loop delay, no counter-store fallback', () => {
    const measured = figures();
    console.info(`no-stall figures: ${JSON.stringify(measured)}; budget ${JSON.stringify(budget)}`);
    expect(measured.checkP99Ms).toBeLessThanOrEqual(budget.checkP99Ms);
    expect(measured.eventLoopMaxMs).toBeLessThanOrEqual(budget.eventLoopMaxMs);
    expect(measured.fallbacks).toBe(0);
  });
});
