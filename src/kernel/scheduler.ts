/**
 * The one place background work is timed. Every periodic pass in the service (identity sync, usage flush and fsync,
 * rating, Stripe sync, alert evaluation and delivery, file polls) is a named job here, so they all share one set of
 * rules, and tests run them by advancing a ManualClock instead of sleeping.
 *
 * Registering a job is one line in the composition root (src/app.ts); the module only exposes its pass:
 *
 *   const stripeSync = scheduler.every('Stripe sync', config.stripe.syncIntervalMs, (signal) => sync.pass(signal), { lead: leadership });
 *
 * - A pass never overlaps itself: the next one is timed from the end of the last, and `runOnce()` during a pass
 *   shares it.
 * - `lead` makes the job run only on the leader (store's `Leadership`: one replica holds it at a time): elsewhere the
 *   pass is skipped, `runOnce()` resolving undefined. When this replica becomes the leader, the job runs a pass at
 *   once instead of waiting out its interval.
 * - A failed pass is logged (or handed to `onFailure`) and the next one waits longer: `backoff` doubles the delay
 *   from `interval` up to `maxMs`; a success returns to the interval. `jitter` spreads replicas apart.
 * - `stop()` ends the timing, aborts the passes' signal (a long pass may stop early) and waits for a running pass,
 *   at most `graceMs`.
 *
 * In tests, give the scheduler a ManualClock: `await clock.advance(ms)` runs the passes that fall due and resolves
 * once they have finished, so "nothing happened" is asserted after the passes ran, not after a sleep.
 */
import type { CancelTimer, Timers } from './clock.js';
import type { Logger } from './logger.js';

/** Whether this replica leads, for the jobs that run on the leader only. */
export interface Leadership {
  /** Runs `pass` as the leader, or resolves undefined at once (the pass not run) while this replica does not lead. */
  run<T>(pass: () => Promise<T>): Promise<T | undefined>;
  /** Calls `gained` each time this replica becomes the leader; returns the unsubscribe. */
  onGained(gained: () => void): () => void;
}

/** The leadership of a process that is alone by construction (PGlite's data directory is locked to one): always held. */
export const soleLeadership: Leadership = { run: (pass) => pass(), onGained: () => () => {} };

export interface JobOptions {
  /** Runs the first pass at start (catching up after a restart) instead of one interval later. */
  immediately?: boolean;
  /** Adds up to this fraction of the delay at random (0 to 1), so replicas started together drift apart. */
  jitter?: number;
  /** After consecutive failures, waits min(maxMs, baseMs × 2^(failures − 1)) instead of the interval. */
  backoff?: { baseMs: number; maxMs: number };
  lead?: Leadership;
  /** Reports a failed pass instead of the scheduler's log line (consecutive failures counted from 1). */
  onFailure?: (error: unknown, failures: number) => void;
}

export interface Job<T> {
  readonly name: string;
  /** One pass now, shared with one in progress; undefined when another replica leads. Rejects if the pass fails. */
  runOnce(): Promise<T | undefined>;
  /** Ends this job's timing and waits for its running pass. */
  stop(): Promise<void>;
}

export interface SchedulerDeps {
  timers: Timers;
  logger: Logger;
  /** For the jitter; Math.random unless a test wants it fixed. */
  random?: () => number;
}

export class Scheduler {
  private readonly jobs = new Set<ScheduledJob<unknown>>();
  private readonly stopping = new AbortController();

  constructor(private readonly deps: SchedulerDeps) {}

  /**
   * Runs `pass` every `intervalMs` (from the end of one pass to the start of the next). An interval of 0 or less
   * times nothing: the job runs only when runOnce() is called (tests, the CLI).
   */
  every<T>(name: string, intervalMs: number, pass: (signal: AbortSignal) => Promise<T>, options: JobOptions = {}): Job<T> {
    if (this.stopping.signal.aborted) throw new Error(`the scheduler is stopped; job ${name} not added`);
    const job = new ScheduledJob<T>(name, intervalMs, pass, options, this.deps, this.stopping.signal);
    this.jobs.add(job as ScheduledJob<unknown>);
    job.start();
    return job;
  }

  /** The jobs' names, for the log and tests. */
  get names(): string[] {
    return [...this.jobs].map((job) => job.name);
  }

  /**
   * Ends all timing, aborts the passes' signal and waits for the running passes, at most `graceMs` (timed on the
   * scheduler's timers). Whether every pass finished in time.
   */
  async stop(graceMs = Number.POSITIVE_INFINITY): Promise<boolean> {
    this.stopping.abort();
    const finished = Promise.all([...this.jobs].map((job) => job.stop())).then(() => true);
    if (graceMs === Number.POSITIVE_INFINITY) return finished;
    let cancel: CancelTimer | undefined;
    const late = new Promise<false>((resolve) => (cancel = this.deps.timers.after(graceMs, () => resolve(false))));
    try {
      return await Promise.race([finished, late]);
    } finally {
      cancel?.();
    }
  }
}

class ScheduledJob<T> implements Job<T> {
  private cancelTimer: CancelTimer | undefined;
  private running: Promise<T | undefined> | undefined;
  private failures = 0;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;

  constructor(
    readonly name: string,
    private readonly intervalMs: number,
    private readonly pass: (signal: AbortSignal) => Promise<T>,
    private readonly options: JobOptions,
    private readonly deps: SchedulerDeps,
    private readonly signal: AbortSignal,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.unsubscribe = this.options.lead?.onGained(() => this.runSoon());
    this.schedule(this.options.immediately ? 0 : this.delay());
  }

  runOnce(): Promise<T | undefined> {
    this.running ??= this.lead().finally(() => (this.running = undefined));
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    await this.running?.catch(() => {});
  }

  private lead(): Promise<T | undefined> {
    const { lead } = this.options;
    return lead ? lead.run(() => this.pass(this.signal)) : this.pass(this.signal);
  }

  /** A new leader's pass now: the work the old leader left must not wait out an interval. */
  private runSoon(): void {
    // No timer pending means a pass is running (it re-arms the timer when done) or the job has stopped.
    if (!this.cancelTimer) return;
    this.cancelTimer();
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.signal.aborted) return;
    // The timer's callback returns the pass, so a ManualClock's advance() waits for it (and the re-arming).
    this.cancelTimer = this.deps.timers.after(delayMs, () => this.timed());
  }

  private async timed(): Promise<void> {
    this.cancelTimer = undefined;
    try {
      await this.runOnce();
      this.failures = 0;
    } catch (error) {
      this.failures += 1;
      try {
        if (this.options.onFailure) this.options.onFailure(error, this.failures);
        else this.deps.logger.error({ job: this.name, failures: this.failures, err: error instanceof Error ? error.stack : String(error) }, `${this.name} pass failed`);
      } catch {
        // A failing report must not end the job's timing.
      }
    }
    this.schedule(this.delay());
  }

  private delay(): number {
    const { backoff, jitter } = this.options;
    const base = backoff && this.failures > 0 ? Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(this.failures - 1, 30)) : this.intervalMs;
    return jitter ? base + base * jitter * (this.deps.random ?? Math.random)() : base;
  }
}
