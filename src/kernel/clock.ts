/** Time source for all logic, so window and period tests are deterministic. */
export interface Clock {
  now(): number;
}

/** Cancels a timer; calling it after the timer fired does nothing. */
export type CancelTimer = () => void;

/**
 * Calls back later: what the scheduler (scheduler.ts) runs on. Real timers in production; a ManualClock in tests,
 * whose advance() fires the timers that fell due and waits for the promises their callbacks return.
 */
export interface Timers {
  after(delayMs: number, callback: () => unknown): CancelTimer;
}

/** The adapter edge: the one place server code reads the system's time and sets real timers. */
export const systemClock: Clock & Timers = {
  now: () => Date.now(),
  after: (delayMs, callback) => {
    const timer = setTimeout(callback, delayMs);
    // A pending background pass never keeps the process alive: the stop sequence ends it.
    timer.unref();
    return () => clearTimeout(timer);
  },
};

interface ManualTimer {
  due: number;
  order: number;
  callback: () => unknown;
}

/** Timers fired by one advance() at most: a callback that re-arms itself with no delay would otherwise never end. */
const maxFiringsPerAdvance = 100_000;

/**
 * A clock tests move by hand. It keeps two times, as a machine does: the wall time now() returns, which set() may
 * jump anywhere (a business date), and the elapsed time timers run on, which only advance() moves.
 */
export class ManualClock implements Clock, Timers {
  private elapsed = 0;
  private timers: ManualTimer[] = [];
  private created = 0;

  constructor(private current: number) {}

  now(): number {
    return this.current;
  }

  /** Moves the wall time only: timers keep their due times, as real timers ignore a wall-clock jump. */
  set(ms: number): void {
    this.current = ms;
  }

  after(delayMs: number, callback: () => unknown): CancelTimer {
    const timer: ManualTimer = { due: this.elapsed + Math.max(0, delayMs), order: this.created++, callback };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((held) => held !== timer);
    };
  }

  /** Timers waiting to fire. */
  get pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Moves both times forward by `ms`, firing every timer that falls due on the way, one at a time at its due time
   * (ties in the order they were set), and waiting for the promise each callback returns; timers those callbacks set
   * fire too if they fall due within `ms`. Resolves once every fired callback has settled. Without due timers the
   * time moves at once, so callers that do not await see it moved.
   */
  async advance(ms: number): Promise<void> {
    const target = this.elapsed + ms;
    for (let fired = 0; ; fired++) {
      const next = this.nextDue(target);
      if (!next) break;
      if (fired >= maxFiringsPerAdvance) throw new Error(`ManualClock.advance: more than ${maxFiringsPerAdvance} timers fired; a timer re-arms itself with no delay`);
      this.timers = this.timers.filter((held) => held !== next);
      this.current += next.due - this.elapsed;
      this.elapsed = next.due;
      await next.callback();
    }
    this.current += target - this.elapsed;
    this.elapsed = target;
  }

  /** Fires the timers due now (those set with no delay included) and waits for them. */
  tick(): Promise<void> {
    return this.advance(0);
  }

  private nextDue(until: number): ManualTimer | undefined {
    let next: ManualTimer | undefined;
    for (const timer of this.timers) {
      if (timer.due <= until && (!next || timer.due < next.due || (timer.due === next.due && timer.order < next.order))) next = timer;
    }
    return next;
  }
}
