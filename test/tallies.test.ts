import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TalliedCounter, TalliedHistogram } from '../src/metrics/tallies.js';

/**
 * The hot path's tallies must be scraped exactly as prom-client's own metrics fed the same updates would be, up to
 * the order of label sets (ours follow binding, prom-client's first use; Prometheus reads either).
 */
const scraped = async (registry: Registry) => (await registry.metrics()).split('\n').sort();

const buckets = [0.0001, 0.001, 0.01, 0.1, 1];
const labelValue = fc.constantFrom('redis', 'memory', 'a "quoted"\\ value');
// Values on and around the bucket bounds, and past the last one.
const observation = fc.oneof(fc.constantFrom(0, ...buckets, 5), fc.double({ min: 0, max: 5, noNaN: true }));

describe('TalliedHistogram', () => {
  it('is scraped as a prom-client Histogram with the same observations, label sets bound in any order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(labelValue, observation), { maxLength: 60 }), fc.array(labelValue, { maxLength: 3 }), async (observations, boundOnly) => {
        const ours = new Registry();
        const theirs = new Registry();
        const tallied = new TalliedHistogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['store'] as const, buckets, registers: [ours] });
        const reference = new Histogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['store'], buckets, registers: [theirs] });
        const observers = new Map<string, ReturnType<typeof tallied.bind>>();
        // A label set bound but never observed is not shown, as prom-client shows none it has not seen.
        for (const store of boundOnly) observers.set(store, tallied.bind({ store }));
        for (const [store, value] of observations) {
          if (!observers.has(store)) observers.set(store, tallied.bind({ store }));
          observers.get(store)!.observe(value);
          reference.observe({ store }, value);
        }
        expect(await scraped(ours)).toEqual(await scraped(theirs));
        const values = async (registry: Registry) => {
          const [metric] = await registry.getMetricsAsJSON();
          return (metric!.values as { labels: object; value: number; metricName?: string }[]).map(({ labels, value, metricName }) => ({ labels, value, metricName }));
        };
        expect(new Set(await values(ours))).toEqual(new Set(await values(theirs)));
      }),
      { numRuns: 200 },
    );
  });

  it('starts again from nothing when the registry resets its metrics', async () => {
    const registry = new Registry();
    const observer = new TalliedHistogram({ name: 'check_seconds', help: 'Check.', buckets, registers: [registry] }).bind();
    observer.observe(0.5);
    registry.resetMetrics();
    expect(await registry.metrics()).toBe('# HELP check_seconds Check.\n# TYPE check_seconds histogram\n');
    observer.observe(0.005);
    expect(await registry.metrics()).toContain('check_seconds_bucket{le="0.01"} 1\ncheck_seconds_bucket{le="0.1"} 1');
  });
});

describe('TalliedCounter', () => {
  it('is scraped as a prom-client Counter with the same increments, across scrapes', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.constantFrom('allow', 'deny'), { maxLength: 20 }), { minLength: 1, maxLength: 4 }), async (scrapes) => {
        const ours = new Registry();
        const theirs = new Registry();
        const tallied = new TalliedCounter({ name: 'decisions_total', help: 'Decisions.', labelNames: ['result'] as const, registers: [ours] });
        const reference = new Counter({ name: 'decisions_total', help: 'Decisions.', labelNames: ['result'] as const, registers: [theirs] });
        const increments = { allow: tallied.bind({ result: 'allow' }), deny: tallied.bind({ result: 'deny' }) };
        for (const results of scrapes) {
          for (const result of results) {
            increments[result as 'allow' | 'deny'].inc();
            reference.inc({ result });
          }
          expect(await scraped(ours)).toEqual(await scraped(theirs));
        }
      }),
      { numRuns: 100 },
    );
  });
});
