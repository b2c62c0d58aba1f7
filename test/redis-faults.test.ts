import { afterEach, describe, expect, it } from 'vitest';
import { RedisCounterStore } from '../src/quota/redis.js';
import type { SlidingLimit } from '../src/quota/window.js';
import { testRedisUrl, uniqueName } from './support/services.js';

const start = Date.UTC(2026, 10, 1);
const perMinute: SlidingLimit = { kind: 'sliding', name: 'rl', limit: 10, windowMs: 60_000, cost: 1 };

function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('Redis counter store under faults', () => {
  it('an event-loop stall with the reply already in the socket is no timeout', async () => {
    const store = new RedisCounterStore({ url: testRedisUrl, prefix: uniqueName('tgf'), timeoutMs: 50 });
    cleanups.push(() => store.close());
    expect(await store.ready()).toBe(true);
    const answers = Array.from({ length: 15 }, () => store.consume({ scope: 's', now: start, limits: [perMinute] }));
    await new Promise((resolve) => setImmediate(resolve));
    busyWait(200);
    const settled = await Promise.allSettled(answers);
    expect(settled.filter((each) => each.status === 'rejected')).toEqual([]);
    expect(settled.filter((each) => each.status === 'fulfilled' && each.value.allowed)).toHaveLength(10);
  });
});
