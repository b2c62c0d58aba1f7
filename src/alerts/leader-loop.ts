import type { Logger } from '../kernel/index.js';
import type { Db } from '../store/index.js';

export interface LeaderLoopOptions<T> {
  db: Db;
  /** The PostgreSQL advisory lock a pass holds. */
  lockId: number;
  /** Time from the end of one pass to the start of the next; 0 runs passes only when asked. */
  intervalMs: number;
  /** For the log. */
  name: string;
  logger: Logger;
  pass: () => Promise<T>;
}

/**
 * A periodic pass on one replica at a time: a pass runs holding a PostgreSQL advisory lock, and a replica that cannot
 * take it skips the pass (PGlite, one process, always leads). The next pass is scheduled when one ends, so passes
 * never overlap.
 */
export class LeaderLoop<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<T | undefined> | undefined;
  private stopped = false;

  constructor(private readonly options: LeaderLoopOptions<T>) {}

  start(): void {
    const { intervalMs, name, logger } = this.options;
    if (intervalMs <= 0 || this.stopped) return;
    this.timer = setTimeout(() => {
      void this.runOnce()
        .catch((error: unknown) => logger.error({ err: error instanceof Error ? error.stack : String(error) }, `${name} pass failed`))
        .finally(() => this.start());
    }, intervalMs);
    this.timer.unref();
  }

  /** One pass now if this replica leads (undefined if another does); concurrent calls share it. */
  runOnce(): Promise<T | undefined> {
    this.running ??= this.options.db.withAdvisoryLock(this.options.lockId, () => this.options.pass()).finally(() => (this.running = undefined));
    return this.running;
  }

  /** Stops scheduling and waits for the pass in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }
}
