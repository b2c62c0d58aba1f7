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

/** Each value's name, labels and number, as sorted JSON lines: a duplicated series shows as a repeated line. */
const values = async (registry: Registry) => {
  const metrics = await registry.getMetricsAsJSON();
  return metrics
    .flatMap((metric) => (metric.values as { labels: object; value: number; metricName?: string }[]).map(({ labels, value, metricName }) => JSON.stringify({ labels, value, metricName })))
    .sort();
};

const expectSameScrape = async (ours: Registry, theirs: Registry) => {
  expect(await scraped(ours)).toEqual(await scraped(theirs));
  expect(await values(ours)).toEqual(await values(theirs));
};

type HistogramStep = { observe: [string, number] } | { reset: true } | { scrape: true };
const histogramSteps = fc.array(
  fc.oneof(
    { weight: 8, arbitrary: fc.tuple(labelValue, observation).map((observe): HistogramStep => ({ observe })) },
    { weight: 1, arbitrary: fc.constant<HistogramStep>({ reset: true }) },
    { weight: 2, arbitrary: fc.constant<HistogramStep>({ scrape: true }) },
  ),
  { maxLength: 60 },
);

/** Applies the steps to both registries, comparing their scrapes at each scrape step and at the end. */
async function replay(steps: HistogramStep[], ours: Registry, theirs: Registry, observe: (store: string, value: number) => void) {
  for (const step of steps) {
    if ('observe' in step) observe(...step.observe);
    else if ('reset' in step) {
      ours.resetMetrics();
      theirs.resetMetrics();
    } else {
      await expectSameScrape(ours, theirs);
    }
  }
  await expectSameScrape(ours, theirs);
}

describe('TalliedHistogram', () => {
  it('is scraped as a prom-client Histogram with the same observations and resets, label sets bound in any order', async () => {
    await fc.assert(
      fc.asyncProperty(histogramSteps, fc.array(labelValue, { maxLength: 3 }), async (steps, boundOnly) => {
        const ours = new Registry();
        const theirs = new Registry();
        const tallied = new TalliedHistogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['store'] as const, buckets, registers: [ours] });
        const reference = new Histogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['store'], buckets, registers: [theirs] });
        // A label set bound but never observed is not shown (prom-client shows none it has not seen); binding one
        // again gives the same series.
        for (const store of boundOnly) tallied.bind({ store });
        await replay(steps, ours, theirs, (store, value) => {
          tallied.bind({ store }).observe(value);
          reference.observe({ store }, value);
        });
      }),
      { numRuns: 200 },
    );
  });

  it('without labels, is scraped as prom-client shows an unlabelled Histogram: zeros from its creation until a reset', async () => {
    await fc.assert(
      fc.asyncProperty(histogramSteps, async (steps) => {
        const ours = new Registry();
        const theirs = new Registry();
        const observer = new TalliedHistogram({ name: 'check_seconds', help: 'Check.', buckets, registers: [ours] }).bind();
        const reference = new Histogram({ name: 'check_seconds', help: 'Check.', buckets, registers: [theirs] });
        await expectSameScrape(ours, theirs);
        await replay(steps, ours, theirs, (_store, value) => {
          observer.observe(value);
          reference.observe(value);
        });
      }),
      { numRuns: 100 },
    );
  });
});

describe('TalliedCounter', () => {
  it('is scraped as a prom-client Counter with the same increments and resets, across scrapes', async () => {
    const step = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom('allow', 'deny') },
      { weight: 1, arbitrary: fc.constant('reset') },
      { weight: 2, arbitrary: fc.constant('scrape') },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
        const ours = new Registry();
        const theirs = new Registry();
        const tallied = new TalliedCounter({ name: 'decisions_total', help: 'Decisions.', labelNames: ['result'] as const, registers: [ours] });
        const reference = new Counter({ name: 'decisions_total', help: 'Decisions.', labelNames: ['result'] as const, registers: [theirs] });
        const increments = { allow: tallied.bind({ result: 'allow' }), deny: tallied.bind({ result: 'deny' }) };
        for (const each of steps) {
          if (each === 'allow' || each === 'deny') {
            increments[each].inc();
            reference.inc({ result: each });
          } else if (each === 'reset') {
            ours.resetMetrics();
            theirs.resetMetrics();
          } else {
            await expectSameScrape(ours, theirs);
          }
        }
        await expectSameScrape(ours, theirs);
      }),
      { numRuns: 100 },
    );
  });
});
