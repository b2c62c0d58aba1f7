import { Counter, type CounterConfiguration, type LabelValues, type Metric, type MetricValueWithName, type Registry } from 'prom-client';

/**
 * Counters and histograms updated on every Check. prom-client hashes and validates the label set on every inc() and
 * observe(), even through a bound child, and observe() allocates a closure: about 1 µs per Check for its three
 * updates. A bound tally here is a plain number (or a bucket array) that the scrape reads, in prom-client's own
 * exposition: test/tallies.test.ts holds both to the same output for the same updates.
 */

export interface TallyIncrement {
  inc(): void;
}

/** A prom-client Counter whose bound label sets count in plain numbers, added to it when it is scraped. */
export class TalliedCounter<L extends string> extends Counter<L> {
  private readonly tallies: { labels: LabelValues<L>; count: number }[] = [];

  constructor(configuration: Omit<CounterConfiguration<L>, 'collect'>) {
    super({
      ...configuration,
      collect() {
        (this as TalliedCounter<L>).addTallies();
      },
    });
  }

  /** The increment of one label set; bind each set once and keep it. */
  bind(labels: LabelValues<L>): TallyIncrement {
    const tally = { labels, count: 0 };
    this.tallies.push(tally);
    return {
      inc() {
        tally.count++;
      },
    };
  }

  override reset(): void {
    super.reset();
    // Counter's constructor resets before this class's fields exist.
    if (this.tallies) for (const tally of this.tallies) tally.count = 0;
  }

  private addTallies(): void {
    for (const tally of this.tallies) {
      if (tally.count === 0) continue;
      this.inc(tally.labels, tally.count);
      tally.count = 0;
    }
  }
}

export interface TallyObserver {
  observe(value: number): void;
}

interface HistogramSeries {
  labels: LabelValues<string>;
  /** Shown even with nothing observed: prom-client's unlabelled histogram is, from its creation until a reset. */
  shownEmpty: boolean;
  /** Observations per bucket, not cumulative; the last one is +Inf. */
  buckets: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram in the registry beside prom-client's metrics, exposed exactly as a prom-client Histogram with the same
 * name, help, buckets and observations would be.
 */
export class TalliedHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  private readonly upperBounds: readonly number[];
  private readonly series = new Map<string, HistogramSeries>();

  constructor(configuration: { name: string; help: string; buckets: readonly number[]; labelNames?: readonly L[]; registers: Registry[] }) {
    this.name = configuration.name;
    this.help = configuration.help;
    this.labelNames = configuration.labelNames ?? [];
    this.upperBounds = configuration.buckets;
    // The registry asks a metric only for its name, help, type, aggregator, get() and reset().
    for (const registry of configuration.registers) registry.registerMetric(this as unknown as Metric);
    if (this.labelNames.length === 0) this.seriesOf({}).shownEmpty = true;
  }

  /** The observer of one label set (binding a set again gives the same series); keep it. */
  bind(labels: LabelValues<L> = {}): TallyObserver {
    const series = this.seriesOf(labels);
    const { upperBounds } = this;
    return {
      observe(value) {
        let bucket = 0;
        while (bucket < upperBounds.length && value > upperBounds[bucket]!) bucket++;
        series.buckets[bucket]!++;
        series.sum += value;
        series.count++;
      },
    };
  }

  private seriesOf(labels: LabelValues<L>): HistogramSeries {
    const key = JSON.stringify(this.labelNames.map((name) => labels[name]));
    let series = this.series.get(key);
    if (!series) {
      series = { labels, shownEmpty: false, buckets: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0 };
      this.series.set(key, series);
    }
    return series;
  }

  /** What the registry prints: each series' cumulative buckets, then its sum and count (as prom-client lays them out). */
  async getForPromString() {
    const values: (MetricValueWithName<string> & { sharedLabels: LabelValues<string> })[] = [];
    for (const series of this.series.values()) {
      // prom-client shows a label set only once something was observed in it (since the last reset).
      if (series.count === 0 && !series.shownEmpty) continue;
      const sharedLabels = series.labels;
      let cumulative = 0;
      this.upperBounds.forEach((bound, i) => {
        cumulative += series.buckets[i]!;
        values.push({ labels: { le: bound }, sharedLabels, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels: {}, sharedLabels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The same values with each series' labels folded into every value's own, as prom-client's get() gives them. */
  async get() {
    const metric = await this.getForPromString();
    return { ...metric, values: metric.values.map(({ sharedLabels, labels, ...value }) => ({ ...value, labels: { ...labels, ...sharedLabels } })) };
  }

  reset(): void {
    for (const series of this.series.values()) {
      series.shownEmpty = false;
      series.buckets.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }
}
