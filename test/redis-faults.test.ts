import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisCounterStore } from '../src/counters/redis.js';
import { CounterStoreUnavailable } from '../src/counters/store.js';
import type { PeriodLimit, SlidingLimit } from '../src/counters/window.js';
import { testRedisUrl, uniqueName } from './support/services.js';

const start = Date.UTC(2026, 10, 1);
const perMinute: SlidingLimit = { kind: 'sliding', name: 'rl', limit: 10, windowMs: 60_000, cost: 1 };
const monthly: PeriodLimit = { kind: 'period', name: 'q', limit: 1_000, cost: 1, periodStart: start, periodEnd: Date.UTC(2026, 11, 1), enforce: true };

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A store with a 50 ms timeout whose keys are removed after the test. */
async function openStore(onLateReply?: (outcome: 'discarded' | 'evaluated') => void): Promise<RedisCounterStore> {
  const prefix = uniqueName('tgf');
  const store = new RedisCounterStore({ url: testRedisUrl, prefix, timeoutMs: 50, ...(onLateReply ? { onLateReply } : {}) });
  cleanups.push(async () => {
    const keys = await store.client.keys(`${prefix}:*`);
    if (keys.length > 0) await store.client.del(...keys);
    await store.close();
  });
  expect(await store.ready()).toBe(true);
  return store;
}

describe('Redis counter store under faults', () => {
  it('counts nothing of the calls it refused during a Redis hang once Redis runs them', async () => {
    const late: string[] = [];
    const store = await openStore((outcome) => late.push(outcome));
    const consume = () => store.consume({ scope: 's', now: start, limits: [perMinute, monthly] });
    expect((await consume()).outcomes.map((each) => each.remaining)).toEqual([9, 999]);

    // Scripts wait while writes are paused; the pause lifts by itself if the test dies before unpausing.
    const operator = new Redis(testRedisUrl);
    cleanups.push(async () => void operator.disconnect());
    await operator.call('CLIENT', 'PAUSE', '2000', 'WRITE');
    try {
      for (let wave = 0; wave < 3; wave++) {
        const answers = await Promise.allSettled(Array.from({ length: 5 }, consume));
        for (const answer of answers) expect(answer).toMatchObject({ status: 'rejected', reason: expect.any(CounterStoreUnavailable) });
      }
      expect(store.available).toBe(false);
    } finally {
      await operator.call('CLIENT', 'UNPAUSE');
    }
    // Redis runs the queued batches first, in order, then this one.
    expect((await consume()).outcomes.map((each) => each.remaining)).toEqual([8, 998]);
    expect(late.length).toBeGreaterThanOrEqual(3);
    expect(new Set(late)).toEqual(new Set(['discarded']));
    expect(await store.periodUsage('s', 'q', start)).toBe(2);
    expect(store.available).toBe(true);
  });

  it('an event-loop stall with the reply already in the socket is no timeout', async () => {
    const store = await openStore();
    const answers = Array.from({ length: 15 }, () => store.consume({ scope: 's', now: start, limits: [perMinute] }));
    // After the flush that sends them (the store's setImmediate, queued first), while Redis answers.
    await new Promise((resolve) => setImmediate(resolve));
    busyWait(200);
    const settled = await Promise.allSettled(answers);
    expect(settled.filter((each) => each.status === 'rejected')).toEqual([]);
    expect(settled.filter((each) => each.status === 'fulfilled' && each.value.allowed)).toHaveLength(10);
  });
});
