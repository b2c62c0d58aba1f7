import type { Logger } from '../kernel/index.js';
import type { Metrics } from '../metrics/index.js';
import { noTracing, spanNames, SpanKind, type SpanScope, type Tracing } from '../tracing/index.js';
import type { UsageSink } from './sink.js';
import type { Segment, Spool } from './spool.js';

export interface MeterOptions {
  /** Events per spool segment; a full segment is written at once (a partly filled one by the flush job). */
  batchSize: number;
  /** Spool size at which callers are asked to stop reading (backpressure) until writes catch up. */
  maxSpoolBytes: number;
}

type MeterMetrics = Pick<
  Metrics,
  'usageEventsSpooled' | 'usageEventsStored' | 'usageEventsDuplicate' | 'usageEventsRejected' | 'usageFlushDuration' | 'usageFlushFailures'
>;

/** When behind, up to this many segments go into one transaction: fewer round trips while catching up. */
const segmentsPerWrite = 5;
/** The flush job's backoff while the database fails (see src/app.ts). */
export const usageFlushBackoff = { baseMs: 200, maxMs: 5_000 };
/**
 * Writes spent splitting a refused segment: enough to isolate about thirty refused rows among 50,000 (about 32
 * writes each). A segment refused throughout costs this many writes (plus one per level left) before the rest of it
 * is set aside.
 */
const maxSalvageAttempts = 1_000;

/**
 * Moves usage events from the spool into the database: every event is appended to the spool first, segments are
 * written one transaction each (or a few merged), and deleted only after the commit. A full segment is written at
 * once; the flush job (flushDue, timed by the scheduler) writes the rest. While the database is down, the spool grows
 * on disk (memory stays bounded) and only the flush job retries, with backoff, oldest first.
 */
export class UsageMeter {
  /** The one write in progress: writes never overlap, so a segment is never written twice at once. */
  private writing: Promise<void> | undefined;
  /** A background write was asked for while another was running: run one more after it. */
  private writeRequested = false;
  /** Consecutive failed writes; while there are any, only the flush job writes. */
  private failures = 0;
  /** After the database refused a merged write, segments go one at a time until the culprit is set aside. */
  private isolating = false;
  private stopping = false;
  private halted = false;
  private drainWaiters: (() => void)[] = [];
  /** Events appended to the spool by this process, reported at shutdown. */
  private recorded = 0;

  constructor(
    private readonly spool: Spool,
    private readonly sink: UsageSink,
    private readonly metrics: MeterMetrics,
    private readonly logger: Logger,
    private readonly options: MeterOptions,
    /** A span per database write. */
    private readonly tracing: Pick<Tracing, 'span'> = noTracing,
  ) {}

  /**
   * The flush job's pass: flush() until the meter stops (the first pass replays what a previous process left in the
   * spool). A failure is thrown so the job backs off.
   */
  async flushDue(): Promise<void> {
    if (!this.stopping) await this.flush();
  }

  /** Appends `events` rows (event-rows.ts) to the spool, durable from here on; throws if the spool cannot be written. */
  record(rows: Buffer, events: number): void {
    if (events === 0) return;
    this.spool.append(rows, events);
    this.recorded += events;
    this.metrics.usageEventsSpooled.inc(events);
    if (this.spool.activeEvents >= this.options.batchSize) {
      this.spool.seal();
      this.writeInBackground();
    }
  }

  /** True while the spool is over its size limit: stop reading input until drained() resolves. */
  get saturated(): boolean {
    return this.spool.pendingBytes >= this.options.maxSpoolBytes && !this.stopping;
  }

  drained(): Promise<void> {
    return this.saturated ? new Promise((resolve) => this.drainWaiters.push(resolve)) : Promise.resolve();
  }

  /** Writes everything recorded so far; rejects if the database fails (the failure counted and logged). */
  async flush(): Promise<void> {
    this.spool.seal();
    try {
      await this.exclusively(() => this.writePending());
    } catch (error) {
      this.writeFailed(error as Error);
      throw error;
    }
    this.recovered();
    if (this.writeRequested) this.writeInBackground();
  }

  /**
   * Writes what is pending until done, the database fails or graceMs passes; whatever is left stays in the spool
   * for the next start.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.releaseDrainWaiters();
    let deadline: NodeJS.Timeout | undefined;
    const flushed = await Promise.race([
      this.flush().then(
        () => true,
        (error: Error) => {
          this.logger.warn({ err: error.message }, 'usage events not written before shutdown; they stay in the spool');
          return false;
        },
      ),
      new Promise<false>((resolve) => (deadline = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(deadline);
    this.halted = true;
    await this.sink.close();
    await this.spool.close();
    this.logger.info({ recorded: this.recorded, flushed, leftInSpool: this.spool.pendingEvents }, 'metering stopped');
  }

  private writeInBackground(): void {
    if (this.stopping || this.failures > 0) return;
    if (this.writing) {
      this.writeRequested = true;
      return;
    }
    this.writeRequested = false;
    this.exclusively(() => this.writePending()).then(
      () => {
        this.recovered();
        if (this.writeRequested) this.writeInBackground();
      },
      (error: Error) => this.writeFailed(error),
    );
  }

  private async exclusively(write: () => Promise<void>): Promise<void> {
    while (this.writing) await this.writing.catch(() => {});
    const run = write();
    this.writing = run;
    try {
      await run;
    } finally {
      this.writing = undefined;
    }
  }

  private async writePending(): Promise<void> {
    while (!this.halted && this.spool.sealedSegments().length > 0) await this.writeBatch(this.nextBatch());
  }

  private nextBatch(): Segment[] {
    const sealed = this.spool.sealedSegments();
    if (this.isolating) return sealed.slice(0, 1);
    const batch: Segment[] = [];
    let events = 0;
    for (const segment of sealed.slice(0, segmentsPerWrite)) {
      if (batch.length > 0 && events + segment.events > segmentsPerWrite * this.options.batchSize) break;
      batch.push(segment);
      events += segment.events;
    }
    return batch;
  }

  private writeBatch(batch: Segment[]): Promise<void> {
    const attributes = { 'db.system.name': 'postgresql', 'tollgate.ingest.segments': batch.length };
    return this.tracing.span(spanNames.ingestStore, attributes, (scope) => this.storeBatch(batch, scope), SpanKind.CLIENT);
  }

  private async storeBatch(batch: Segment[], scope: SpanScope): Promise<void> {
    const endTimer = this.metrics.usageFlushDuration.startTimer();
    const contents = await Promise.all(batch.map((segment) => this.spool.read(segment)));
    const events = contents.reduce((sum, content) => sum + content.events, 0);
    scope.set({ 'tollgate.ingest.events': events });
    let inserted: number;
    try {
      inserted = await this.sink.write(contents.flatMap((content) => content.chunks));
    } catch (error) {
      if (!refusedByDatabase(error)) throw error;
      if (batch.length > 1) {
        this.isolating = true;
        return;
      }
      const salvage = { inserted: 0, refused: [] as Buffer[], unexamined: [] as Buffer[], attemptsLeft: maxSalvageAttempts };
      await this.salvage(contents.flatMap((content) => splitRows(content.chunks)), salvage);
      const setAside = [...salvage.refused, ...salvage.unexamined];
      const file = this.spool.setAside(batch[0]!, setAside);
      this.isolating = false;
      this.metrics.usageEventsDuplicate.inc(events - salvage.inserted - setAside.length);
      scope.set({ 'tollgate.ingest.stored': salvage.inserted, 'tollgate.ingest.set_aside': setAside.length });
      if (setAside.length > 0) {
        this.metrics.usageFlushFailures.inc({ outcome: 'rejected' });
        this.metrics.usageEventsRejected.inc(setAside.length);
        this.logger.error(
          { err: (error as Error).message, file, refused: salvage.refused.length, unexamined: salvage.unexamined.length, stored: salvage.inserted },
          'the database refused usage events; they are set aside, the rest of their segment is stored',
        );
      }
      if (!this.saturated) this.releaseDrainWaiters();
      return;
    }
    endTimer();
    scope.set({ 'tollgate.ingest.stored': inserted });
    this.metrics.usageEventsStored.inc(inserted);
    this.metrics.usageEventsDuplicate.inc(events - inserted);
    this.spool.remove(batch);
    if (!this.saturated) this.releaseDrainWaiters();
  }

  /**
   * Stores what it can of rows the database refused together: each half is written on its own, and a refused half
   * split again, until the refused rows stand alone (about two writes per refused row and halving). Every half is
   * written at least once; once the budget of writes is spent, a refused half is no longer split but set aside as it
   * is. A failure other than a refusal is thrown: the segment stays in the spool and is written again later, its
   * stored rows then skipped as duplicates.
   */
  private async salvage(rows: Buffer[], salvage: { inserted: number; refused: Buffer[]; unexamined: Buffer[]; attemptsLeft: number }): Promise<void> {
    if (rows.length === 1) {
      salvage.refused.push(...rows);
      return;
    }
    if (salvage.attemptsLeft <= 0) {
      salvage.unexamined.push(...rows);
      return;
    }
    const middle = rows.length >> 1;
    for (const half of [rows.slice(0, middle), rows.slice(middle)]) {
      salvage.attemptsLeft -= 1;
      try {
        const inserted = await this.sink.write([Buffer.concat(half)]);
        salvage.inserted += inserted;
        this.metrics.usageEventsStored.inc(inserted);
      } catch (error) {
        if (!refusedByDatabase(error)) throw error;
        await this.salvage(half, salvage);
      }
    }
  }

  private recovered(): void {
    if (this.failures === 0) return;
    this.logger.info({ failures: this.failures }, 'usage writes resumed');
    this.failures = 0;
  }

  private writeFailed(error: Error): void {
    this.failures += 1;
    this.metrics.usageFlushFailures.inc({ outcome: 'retried' });
    const log = this.failures === 1 ? this.logger.warn.bind(this.logger) : this.logger.debug.bind(this.logger);
    log({ err: error.message, pending: this.spool.pendingEvents, failures: this.failures }, 'usage write failed; events stay in the spool');
  }

  private releaseDrainWaiters(): void {
    for (const resolve of this.drainWaiters.splice(0)) resolve();
  }
}

/** Newline-ended rows, each its own buffer (a view, not a copy). */
function splitRows(chunks: readonly Buffer[]): Buffer[] {
  const rows: Buffer[] = [];
  for (const chunk of chunks) {
    for (let start = 0, end = chunk.indexOf(10); end !== -1; start = end + 1, end = chunk.indexOf(10, start)) rows.push(chunk.subarray(start, end + 1));
  }
  return rows;
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity): retrying the same rows cannot succeed. */
function refusedByDatabase(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}
