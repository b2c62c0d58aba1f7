import fc from 'fast-check';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { RedisCounterStore } from '../src/counters/redis.js';
import { CounterStoreUnavailable, type CounterStore } from '../src/counters/store.js';
import type { Limit, PeriodLimit, SlidingLimit, WalletLimit } from '../src/counters/window.js';
import { testRedisUrl, uniqueName } from './support/services.js';
import { removeRedisKeys, scanKeys, testRedisPrefix } from './support/test-run.js';

/** One contract, every CounterStore: the memory store (embedded default) and Redis (Lua) must agree exactly. */

const start = Date.UTC(2026, 10, 1, 0, 0, 0);
const minute = 60_000;
const day = 86_400_000;

const perMinute = (limit: number, name = 'rl'): SlidingLimit => ({ kind: 'sliding', name, limit, windowMs: minute, cost: 1 });
const monthly = (limit: number, cost: number, enforce = true): PeriodLimit => ({
  kind: 'period',
  name: 'q',
  limit,
  cost,
  periodStart: start,
  periodEnd: Date.UTC(2026, 11, 1),
  enforce,
});

const wallet = (cost: number, periodEnd = Date.UTC(2026, 11, 1)): WalletLimit => ({
  kind: 'wallet',
  name: 'w:USD',
  cost,
  spentName: 'ws',
  periodStart: start,
  periodEnd,
});
const rebase = (ledgerBalance: number, settled = 0) => ({
  name: 'w:USD',
  ledgerBalance,
  unsettled: [{ spentName: 'ws', periodStart: start, settled }],
});

interface Subject {
  store: CounterStore;
  clock: ManualClock;
}

const factories: [string, () => Promise<Subject>][] = [
  ['memory', async () => {
    const clock = new ManualClock(start);
    return { store: new MemoryCounterStore(clock, uniqueName('tg')), clock };
  }],
  ['redis', async () => ({ store: await connectedRedis('tgc'), clock: new ManualClock(start) })],
];

/** Every Redis store of this file writes under `<filePrefix>_<n>`, all removed after the file. */
const filePrefix = testRedisPrefix('contract');
let stores = 0;
const nextPrefix = (tag: string) => `${filePrefix}_${tag}${++stores}`;

async function connectedRedis(tag: string): Promise<RedisCounterStore> {
  const store = new RedisCounterStore({ url: testRedisUrl, prefix: nextPrefix(tag), timeoutMs: 1_000 });
  expect(await store.ready()).toBe(true);
  return store;
}

const opened: CounterStore[] = [];
afterAll(async () => {
  await Promise.all(opened.map((store) => store.close()));
  await removeRedisKeys(testRedisUrl, filePrefix);
});

describe.each(factories)('CounterStore contract: %s', (_name, make) => {
  let subject: Subject;
  let scope: string;
  beforeEach(async () => {
    subject = await make();
    opened.push(subject.store);
    scope = uniqueName('cust');
  });
  const consume = (limits: Limit[]) => subject.store.consume({ scope, now: subject.clock.now(), limits });

  it('allows up to the limit in a window, then denies with a retry time inside the window', async () => {
    for (let i = 0; i < 10; i++) {
      const result = await consume([perMinute(10)]);
      expect(result.allowed).toBe(true);
      expect(result.outcomes[0]!.remaining).toBe(9 - i);
    }
    const denied = await consume([perMinute(10)]);
    expect(denied.allowed).toBe(false);
    expect(denied.outcomes[0]).toMatchObject({ allowed: false, remaining: 0 });
    expect(denied.outcomes[0]!.retryAfterMs).toBeGreaterThan(0);
    expect(denied.outcomes[0]!.retryAfterMs).toBeLessThanOrEqual(2 * minute);
  });

  it('does not let a burst straddle the window boundary (sliding window)', async () => {
    subject.clock.set(start + minute - 1_000);
    for (let i = 0; i < 10; i++) expect((await consume([perMinute(10)])).allowed).toBe(true);
    subject.clock.advance(2_000); // 1 s into the next fixed window: the previous one still weighs ~98%
    expect((await consume([perMinute(10)])).allowed).toBe(false);
  });

  it('lets requests through again once the retry time has passed', async () => {
    for (let i = 0; i < 10; i++) await consume([perMinute(10)]);
    const denied = await consume([perMinute(10)]);
    subject.clock.advance(denied.outcomes[0]!.retryAfterMs - 1);
    expect((await consume([perMinute(10)])).allowed).toBe(false);
    subject.clock.advance(1);
    expect((await consume([perMinute(10)])).allowed).toBe(true);
  });

  it('counts a request only when every limit allows it', async () => {
    const tight = perMinute(2, 'tight');
    const loose = perMinute(100, 'loose');
    await consume([tight, loose]);
    await consume([tight, loose]);
    const denied = await consume([tight, loose]);
    expect(denied.allowed).toBe(false);
    expect(denied.outcomes.map((o) => o.allowed)).toEqual([false, true]);
    // The denied request consumed nothing from the loose limit: 2 used, 98 left after the next one.
    const next = await consume([loose]);
    expect(next.outcomes[0]!.remaining).toBe(97);
  });

  it('charges period quotas by weight and denies the request that would exceed them', async () => {
    expect((await consume([monthly(25, 10)])).outcomes[0]!.remaining).toBe(15);
    expect((await consume([monthly(25, 10)])).outcomes[0]!.remaining).toBe(5);
    const denied = await consume([monthly(25, 10)]);
    expect(denied.allowed).toBe(false);
    expect(denied.outcomes[0]).toMatchObject({ remaining: 5, retryAfterMs: Date.UTC(2026, 11, 1) - start });
    expect((await consume([monthly(25, 5)])).allowed).toBe(true);
    expect(await subject.store.periodUsage(scope, 'q', start)).toBe(25);
  });

  it('counts overage without denying when the quota is not enforced', async () => {
    await consume([monthly(10, 8, false)]);
    const over = await consume([monthly(10, 8, false)]);
    expect(over.allowed).toBe(true);
    expect(over.outcomes[0]!.remaining).toBe(0);
    expect(await subject.store.periodUsage(scope, 'q', start)).toBe(16);
  });

  it('starts a fresh quota in the next period', async () => {
    await consume([monthly(10, 10)]);
    expect((await consume([monthly(10, 1)])).allowed).toBe(false);
    const next: PeriodLimit = { ...monthly(10, 1), periodStart: Date.UTC(2026, 11, 1), periodEnd: Date.UTC(2027, 0, 1) };
    subject.clock.set(Date.UTC(2026, 11, 1));
    expect((await consume([next])).allowed).toBe(true);
  });

  it('keeps scopes apart', async () => {
    await consume([perMinute(1)]);
    expect((await consume([perMinute(1)])).allowed).toBe(false);
    const other = await subject.store.consume({ scope: `${scope}-other`, now: subject.clock.now(), limits: [perMinute(1)] });
    expect(other.allowed).toBe(true);
  });

  it('denies a request whose cost alone exceeds the limit, forever', async () => {
    const huge: SlidingLimit = { ...perMinute(5), cost: 6 };
    const denied = await consume([huge]);
    expect(denied.allowed).toBe(false);
    expect(denied.outcomes[0]!.retryAfterMs).toBeGreaterThan(0);
  });

  it('charges a wallet per request, and once it cannot pay denies and charges nothing', async () => {
    await subject.store.rebaseWallet(scope, rebase(1_000_000));
    for (const [before, after] of [[1_000_000, 700_000], [700_000, 400_000], [400_000, 100_000]]) {
      expect((await consume([wallet(300_000)])).outcomes[0]).toMatchObject({ allowed: true, limit: before, remaining: after });
    }
    const denied = await consume([wallet(300_000)]);
    expect(denied.allowed).toBe(false);
    expect(denied.outcomes[0]).toMatchObject({ allowed: false, limit: 100_000, remaining: 100_000, retryAfterMs: 0 });
    expect(await subject.store.walletBalance(scope, 'w:USD')).toBe(100_000);
    expect(await subject.store.periodUsage(scope, 'ws', start)).toBe(900_000);
  });

  it('blocks every request, free ones too, once a wallet is exhausted; an unfunded wallet is exhausted', async () => {
    expect((await consume([wallet(0)])).allowed).toBe(false);
    expect(await subject.store.walletBalance(scope, 'w:USD')).toBeUndefined();
    await subject.store.rebaseWallet(scope, rebase(500_000));
    expect((await consume([wallet(500_000)])).outcomes[0]).toMatchObject({ allowed: true, remaining: 0 });
    expect((await consume([wallet(0)])).allowed).toBe(false);
  });

  it('charges a wallet only when every limit allows, and counts nothing when the wallet denies', async () => {
    await subject.store.rebaseWallet(scope, rebase(1_000_000));
    expect((await consume([perMinute(1), wallet(100)])).allowed).toBe(true);
    expect((await consume([perMinute(1), wallet(100)])).allowed).toBe(false);
    expect(await subject.store.walletBalance(scope, 'w:USD')).toBe(999_900);
    const denied = await consume([monthly(100, 1), wallet(2_000_000)]);
    expect(denied.outcomes.map((o) => o.allowed)).toEqual([true, false]);
    expect(await subject.store.periodUsage(scope, 'q', start)).toBe(0);
    expect(await subject.store.periodUsage(scope, 'ws', start)).toBe(100);
  });

  it('rebases a wallet on the ledger balance less the spend not yet settled, exactly up to 2^53', async () => {
    await subject.store.rebaseWallet(scope, rebase(1_000_000));
    await consume([wallet(250_000)]);
    await consume([wallet(250_000)]);
    expect(await subject.store.rebaseWallet(scope, rebase(2_000_000, 200_000))).toBe(1_700_000);
    expect(await subject.store.walletBalance(scope, 'w:USD')).toBe(1_700_000);
    // A spend counter below what was settled (lost by the store) takes nothing off.
    expect(await subject.store.rebaseWallet(scope, rebase(2_000_000, 900_000))).toBe(2_000_000);

    const large = 9_000_000_000_000_000; // $90M in micro-cents, just under 2^53
    await subject.store.rebaseWallet(scope, rebase(large, 500_000));
    expect((await consume([wallet(500_001)])).outcomes[0]).toMatchObject({ allowed: true, limit: large, remaining: large - 500_001 });
    expect(await subject.store.walletBalance(scope, 'w:USD')).toBe(large - 500_001);
  });

  it('stays exact under concurrent consumers', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => consume([perMinute(20)])));
    expect(results.filter((r) => r.allowed)).toHaveLength(20);
  });
});

/** The limits a generated step asks for: two rate limits, a quota and a wallet, in any combination. */
function randomLimits(step: { which: readonly ('a' | 'b' | 'q' | 'w')[]; cost: number }): Limit[] {
  return step.which.map((which) =>
    which === 'q'
      ? { ...monthly(30, step.cost), periodEnd: start + 10 * minute }
      : which === 'w'
        ? wallet(step.cost * 150_000, start + 10 * minute)
        : { ...perMinute(which === 'a' ? 5 : 8, which), windowMs: which === 'a' ? minute : 10_000, cost: step.cost },
  );
}

describe('memory and Redis stores agree on any sequence of requests', () => {
  it('gives identical outcomes for random traffic', async () => {
    const action = fc.record({
      advanceMs: fc.integer({ min: 0, max: 45_000 }),
      which: fc.subarray(['a', 'b', 'q', 'w'] as const, { minLength: 1 }),
      cost: fc.integer({ min: 0, max: 4 }),
      rebase: fc.option(fc.record({ ledgerBalance: fc.integer({ min: -1_000_000, max: 2_000_000 }), settled: fc.integer({ min: 0, max: 1_000_000 }) })),
    });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 * minute }), fc.array(action, { minLength: 1, maxLength: 40 }), async (offset, actions) => {
        const clock = new ManualClock(start + offset);
        const memory = new MemoryCounterStore(clock, 'tg');
        const redis = await connectedRedis('tgp');
        try {
          for (const step of actions) {
            clock.advance(step.advanceMs);
            if (step.rebase) {
              const walletRebase = rebase(step.rebase.ledgerBalance, step.rebase.settled);
              expect(await redis.rebaseWallet('s', walletRebase)).toBe(await memory.rebaseWallet('s', walletRebase));
            }
            const request = { scope: 's', now: clock.now(), limits: randomLimits(step) };
            expect(await redis.consume(request)).toEqual(await memory.consume(request));
          }
        } finally {
          await Promise.all([memory.close(), redis.close()]);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('gives identical outcomes and counters when concurrent requests of several customers share one Redis call', async () => {
    const scopes = ['s1', 's2', 's3'] as const;
    const request = fc.record({
      advanceMs: fc.integer({ min: 0, max: 20_000 }),
      scope: fc.constantFrom(...scopes),
      which: fc.subarray(['a', 'b', 'q', 'w'] as const, { minLength: 1 }),
      cost: fc.integer({ min: 0, max: 4 }),
    });
    const funds = fc.integer({ min: 0, max: 3_000_000 });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(request, { minLength: 1, maxLength: 90 }), { minLength: 1, maxLength: 4 }), funds, async (bursts, ledgerBalance) => {
        const clock = new ManualClock(start);
        const memory = new MemoryCounterStore(clock, 'tg');
        const redis = await connectedRedis('tgb');
        // As a compiled plan does (check/check-plan.ts), equal limits carry one limitSetId, here across scopes and window
        // boundaries too: the Redis store encodes a repeated set once per batch, and only while its sliding windows stay
        // the same.
        const sharedLimits = new Map<string, Limit[]>();
        const limitsOf = (step: { which: readonly ('a' | 'b' | 'q' | 'w')[]; cost: number }) => {
          const limitSetId = `${step.which.join()}:${step.cost}`;
          if (!sharedLimits.has(limitSetId)) sharedLimits.set(limitSetId, randomLimits(step));
          return { limits: sharedLimits.get(limitSetId)!, limitSetId };
        };
        try {
          for (const scope of scopes) {
            expect(await redis.rebaseWallet(scope, rebase(ledgerBalance))).toBe(await memory.rebaseWallet(scope, rebase(ledgerBalance)));
          }
          for (const burst of bursts) {
            const requests = burst.map((step) => {
              clock.advance(step.advanceMs);
              return { scope: step.scope, now: clock.now(), ...limitsOf(step) };
            });
            // Sent without awaiting: the Redis store answers the whole burst from one script call (or two past its
            // batch limit), which must match one-at-a-time evaluation in arrival order.
            const together = await Promise.all(requests.map((each) => redis.consume(each)));
            const oneByOne = [];
            for (const each of requests) oneByOne.push(await memory.consume(each));
            expect(together).toEqual(oneByOne);
          }
          // What the batches wrote back: the quota and spend counters and the wallet balances.
          for (const scope of scopes) {
            for (const counter of ['q', 'ws']) {
              expect(await redis.periodUsage(scope, counter, start)).toBe(await memory.periodUsage(scope, counter, start));
            }
            expect(await redis.walletBalance(scope, 'w:USD')).toBe(await memory.walletBalance(scope, 'w:USD'));
          }
        } finally {
          await Promise.all([memory.close(), redis.close()]);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('treats a reply without every request of the batch as the store failing, for each request', async () => {
    const redis = new RedisCounterStore({ url: testRedisUrl, prefix: nextPrefix('tgt'), timeoutMs: 1_000 });
    expect(await redis.ready()).toBe(true);
    try {
      // What a proxy or a Redis-alike answering the script differently would send: one request's part of two.
      const client = redis.client as unknown as { tollgateConsumeBuffer: () => Promise<number[]> };
      client.tollgateConsumeBuffer = async () => [1, 1, 9, 0, 0];
      const answers = await Promise.allSettled([1, 2].map((i) => redis.consume({ scope: 's', now: start + i, limits: [perMinute(10)] })));
      for (const answer of answers) expect(answer).toMatchObject({ status: 'rejected', reason: expect.any(CounterStoreUnavailable) });
    } finally {
      await redis.close();
    }
  });

  it("gives every counter Redis creates the expiry its batch's last write asked for, and a wallet balance none", async () => {
    const prefix = nextPrefix('tgt');
    const redis = new RedisCounterStore({ url: testRedisUrl, prefix, timeoutMs: 1_000 });
    expect(await redis.ready()).toBe(true);
    try {
      await redis.rebaseWallet('s', rebase(1_000_000));
      const periodEnd = start + 10 * minute;
      const quota = { ...monthly(100, 2), periodEnd };
      // One batch; the quota's time to the period end shrinks with each request, and the last one's counts.
      const nows = [start + 1_000, start + 3_000, start + 5_000];
      await Promise.all(nows.map((now) => redis.consume({ scope: 's', now, limits: [perMinute(10), quota, wallet(1_000, periodEnd)] })));
      const keys = await scanKeys(redis.client, `${prefix}:*`);
      const ttls = Object.fromEntries(await Promise.all(keys.map(async (key) => [key.split(':')[2], await redis.client.pttl(key)] as const)));
      expect(Object.keys(ttls).sort()).toEqual(['q', 'rl', 'w', 'ws']);
      expect(ttls.rl).toBeGreaterThan(2 * minute - 1_000);
      expect(ttls.rl).toBeLessThanOrEqual(2 * minute);
      for (const counter of ['q', 'ws']) {
        expect(ttls[counter]).toBeGreaterThan(periodEnd - nows[2]! + day - 1_000);
        expect(ttls[counter]).toBeLessThanOrEqual(periodEnd - nows[2]! + day);
      }
      expect(ttls.w).toBe(-1);
      expect(await redis.periodUsage('s', 'q', start)).toBe(6);
      expect(await redis.walletBalance('s', 'w:USD')).toBe(997_000);
    } finally {
      await redis.close();
    }
  });

  it('reads the counters of a batch with more than a thousand of them, and answers a request with no limits', async () => {
    const redis = new RedisCounterStore({ url: testRedisUrl, prefix: nextPrefix('tgt'), timeoutMs: 5_000 });
    expect(await redis.ready()).toBe(true);
    try {
      // 64 requests (one batch) of 20 windows each: 2,560 counters, read in three MGETs.
      const limits = Array.from({ length: 20 }, (_, i) => perMinute(1, `rl${i}`));
      const first = await Promise.all(Array.from({ length: 64 }, (_, i) => redis.consume({ scope: `s${i}`, now: start + 1_000, limits })));
      expect(first.every((answer) => answer.allowed && answer.outcomes.every((outcome) => outcome.remaining === 0))).toBe(true);
      const again = await Promise.all(Array.from({ length: 64 }, (_, i) => redis.consume({ scope: `s${i}`, now: start + 2_000, limits })));
      expect(again.every((answer) => !answer.allowed && answer.outcomes.every((outcome) => !outcome.allowed))).toBe(true);
      expect(await redis.consume({ scope: 's0', now: start + 3_000, limits: [] })).toEqual({ allowed: true, outcomes: [] });
    } finally {
      await redis.close();
    }
  });

  it('keeps the expiry a counter was created with when a later batch counts it again', async () => {
    const prefix = nextPrefix('tgt');
    const redis = new RedisCounterStore({ url: testRedisUrl, prefix, timeoutMs: 1_000 });
    expect(await redis.ready()).toBe(true);
    try {
      const limits = [perMinute(10), monthly(100, 2)];
      await redis.consume({ scope: 's', now: start + 1_000, limits });
      const keys = await scanKeys(redis.client, `${prefix}:*`);
      expect(keys).toHaveLength(2);
      // Shortened so that a refreshed expiry (2 minutes, or a day past the period) would show.
      for (const key of keys) await redis.client.pexpire(key, 30_000);
      await redis.consume({ scope: 's', now: start + 2_000, limits });
      for (const key of keys) {
        const ttl = await redis.client.pttl(key);
        expect(ttl).toBeGreaterThan(25_000);
        expect(ttl).toBeLessThanOrEqual(30_000);
      }
      expect(await redis.periodUsage('s', 'q', start)).toBe(4);
      expect(Number(await redis.client.get(keys.find((key) => key.includes(':rl:'))!))).toBe(2);
    } finally {
      await redis.close();
    }
  });
});
