import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/kernel/logger.js';
import { currentEventRow } from '../../src/metering/event-rows.js';
import { UsageMeter } from '../../src/metering/meter.js';
import type { UsageSink } from '../../src/metering/sink.js';
import { Spool } from '../../src/metering/spool.js';
import { createMetrics } from '../../src/metrics/metrics.js';

export interface TestMeterOptions {
  batchSize: number;
  /** Spool size at which the meter reports itself saturated (backpressure); 1 GiB unless set. */
  maxSpoolBytes?: number;
  /** Wraps the sink, e.g. to fail or hold back writes. */
  wrap?: (sink: UsageSink) => UsageSink;
  /** An existing spool directory (as after a restart), left in place; else a fresh one, removed after the test. */
  dir?: string;
}

/**
 * A UsageMeter on a spool in a fresh temporary directory, with its own metrics. Nothing times a flush: full segments
 * are written at once, and tests call flush() or flushDue() (the flush job's pass) when they mean to. Its stop (which
 * writes what is left) and the directory's removal are pushed onto `cleanups`, which the caller runs in reverse order
 * after each test.
 */
export function startTestMeter(sink: UsageSink, options: TestMeterOptions, cleanups: (() => Promise<void> | void)[]) {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'tollgate-spool-'));
  if (!options.dir) cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const spool = new Spool({ dir, maxBufferedBytes: 1 << 20, currentRow: currentEventRow, logger: silentLogger });
  const metrics = createMetrics();
  const meter = new UsageMeter(spool, options.wrap ? options.wrap(sink) : sink, metrics, silentLogger, {
    batchSize: options.batchSize,
    maxSpoolBytes: options.maxSpoolBytes ?? 1 << 30,
  });
  cleanups.push(() => meter.stop(1_000));
  return { meter, spool, metrics, dir };
}
