import { describe, expect, it } from 'vitest';
import { RedisClockOffset } from '../src/counters/redis-clock.js';

describe('RedisClockOffset', () => {
  it('is unknown before the first sample', () => {
    expect(new RedisClockOffset().deadline(0, 50)).toBeUndefined();
  });

  it('puts the deadline at the budget in Redis time, less the reply way back, from the fastest round trip', () => {
    const offset = new RedisClockOffset();
    // Redis is 1,000 ms ahead. A 20 ms round trip (e.g. a stall), then a 2 ms one.
    offset.record(100, 1_110, 120);
    offset.record(200, 1_201, 202);
    // The offset lies in [999, 1001]; at its lowest, with 1 ms for the reply back.
    expect(offset.deadline(300, 50)).toBe(300 + 999 + 50 - 1);
    // A slower sample later does not displace the faster one.
    offset.record(400, 1_430, 440);
    expect(offset.deadline(300, 50)).toBe(300 + 999 + 50 - 1);
  });

  it("starts over when Redis's clock is stepped", () => {
    const offset = new RedisClockOffset();
    offset.record(100, 1_101, 102);
    offset.record(200, 5_201, 202); // 4 s ahead now: no overlap with [999, 1001]
    expect(offset.deadline(300, 50)).toBe(300 + 4_999 + 50 - 1);
  });

  it('keeps only the recent samples', () => {
    const offset = new RedisClockOffset(2);
    offset.record(100, 1_100, 100); // exact, but it will age out
    offset.record(200, 1_205, 210);
    offset.record(300, 1_305, 310);
    expect(offset.deadline(0, 50)).toBe(995 + 50 - 5);
  });
});
