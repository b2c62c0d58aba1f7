import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../src/kernel/index.js';

describe('BoundedCache', () => {
  it('holds at most its capacity, dropping the least recently used half at a time', () => {
    const cache = new BoundedCache<number>(4);
    for (const [key, value] of [['a', 1], ['b', 2], ['c', 3]] as const) cache.set(key, value);
    expect(cache.size).toBe(3);
    // a is read: it moves to the young generation, so b is the oldest and goes first.
    expect(cache.get('a')).toBe(1);
    cache.set('d', 4);
    cache.set('e', 5);
    expect(cache.size).toBeLessThanOrEqual(4);
    expect(cache.get('b')).toBeUndefined();
    expect([cache.get('a'), cache.get('d'), cache.get('e')]).toEqual([1, 4, 5]);
  });

  it('never grows past its capacity whatever is put in', () => {
    const cache = new BoundedCache<string>(100);
    for (let i = 0; i < 10_000; i++) {
      cache.set(`key${i}`, `value${i}`);
      expect(cache.size).toBeLessThanOrEqual(100);
    }
    expect(cache.get('key9999')).toBe('value9999');
  });

  it('forgets deleted and cleared entries', () => {
    const cache = new BoundedCache<number>(10);
    cache.set('a', 1);
    cache.set('b', 2);
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get('b')).toBeUndefined();
  });
});
