/**
 * Timers for background loops, injected like the clock: a loop asks for its next run through this, so a test can
 * see each delay the loop chose and run it at once instead of waiting.
 */
export interface Timers {
  setTimeout(run: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export type TimerHandle = { readonly timer: unknown };

/** Node's timers, unreferenced: a pending run never keeps the process alive. */
export const systemTimers: Timers = {
  setTimeout: (run, ms) => ({ timer: setTimeout(run, ms).unref() }),
  clearTimeout: (handle) => clearTimeout(handle?.timer as NodeJS.Timeout | undefined),
};

/** Timers a test runs by hand: each request waits in `scheduled` until the test runs it. */
export class ManualTimers implements Timers {
  readonly scheduled: { run: () => void; ms: number; handle: TimerHandle }[] = [];

  setTimeout(run: () => void, ms: number): TimerHandle {
    const handle = { timer: Symbol('timer') };
    this.scheduled.push({ run, ms, handle });
    return handle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    const index = this.scheduled.findIndex((entry) => entry.handle === handle);
    if (index !== -1) this.scheduled.splice(index, 1);
  }

  /** Runs the oldest pending timer and returns the delay it had asked for; undefined when none is pending. */
  runNext(): number | undefined {
    const next = this.scheduled.shift();
    next?.run();
    return next?.ms;
  }
}
