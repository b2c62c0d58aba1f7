import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { type Leadership, Scheduler } from '../src/kernel/scheduler.js';

/** The scheduler on a manual clock: every pass runs because the test advanced time, never because time passed. */

/** A promise the test resolves by hand: a pass that is "still running" until the test says otherwise. */
function gate() {
  let open!: () => void;
  let fail!: (error: Error) => void;
  const promise = new Promise<void>((resolve, reject) => ((open = resolve), (fail = reject)));
  return { promise, open, fail };
}

function setUp(random?: () => number) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const scheduler = new Scheduler({ timers: clock, logger: silentLogger, ...(random ? { random } : {}) });
  return { clock, scheduler };
}

describe('the scheduler', () => {
  it('runs a pass each interval, timed from the end of the last, and nothing before it is due', async () => {
    const { clock, scheduler } = setUp();
    const startedAt: number[] = [];
    const start = clock.now();
    scheduler.every('poll', 100, async () => void startedAt.push(clock.now() - start));

    await clock.advance(99);
    expect(startedAt).toEqual([]);
    await clock.advance(1);
    expect(startedAt).toEqual([100]);
    await clock.advance(350);
    expect(startedAt).toEqual([100, 200, 300, 400]);
    expect(clock.now() - start).toBe(450);
  });

  it('runs the first pass at once when asked to, and never times a job with interval 0', async () => {
    const { clock, scheduler } = setUp();
    let immediate = 0;
    let manual = 0;
    scheduler.every('catch up', 1_000, async () => void immediate++, { immediately: true });
    const onDemand = scheduler.every('on demand', 0, async () => ++manual);
    await clock.tick();
    expect(immediate).toBe(1);
    await clock.advance(10_000);
    expect(immediate).toBe(11);
    expect(manual).toBe(0);
    expect(await onDemand.runOnce()).toBe(1);
  });

  it('never overlaps a pass with itself: runOnce() during a pass shares it, and the timer waits for it', async () => {
    const { clock, scheduler } = setUp();
    const running = gate();
    let passes = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const job = scheduler.every('slow', 100, async () => {
      passes += 1;
      concurrent += 1;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      if (passes === 1) await running.promise;
      concurrent -= 1;
      return passes;
    });
    const first = job.runOnce();
    const second = job.runOnce();
    expect(second).toBe(first);
    // The timer falls due while the pass runs: it joins the pass instead of starting another.
    const advanced = clock.advance(100);
    running.open();
    await advanced;
    expect(await first).toBe(1);
    expect(passes).toBe(1);
    // The next timed pass is an interval after the one the timer joined.
    await clock.advance(100);
    expect(passes).toBe(2);
    expect(maxConcurrent).toBe(1);
  });

  it('backs off after failures (doubling up to the cap) and returns to the interval after a success', async () => {
    const { clock, scheduler } = setUp();
    const failing = { left: 4 };
    const attemptsAt: number[] = [];
    const reported: number[] = [];
    const start = clock.now();
    scheduler.every(
      'flaky',
      1_000,
      async () => {
        attemptsAt.push(clock.now() - start);
        if (failing.left-- > 0) throw new Error('down');
      },
      { backoff: { baseMs: 100, maxMs: 300 }, onFailure: (_error, failures) => reported.push(failures) },
    );
    await clock.advance(1_000 + 100 + 200 + 300 + 300 + 1_000);
    // First pass at 1000 fails; retries after 100, 200, 300 (capped), 300; the fifth attempt succeeds; then 1000.
    expect(attemptsAt).toEqual([1_000, 1_100, 1_300, 1_600, 1_900, 2_900]);
    expect(reported).toEqual([1, 2, 3, 4]);
  });

  it('keeps running after a failure it logs itself, and runOnce() rejects with the failure', async () => {
    const { clock, scheduler } = setUp();
    let calls = 0;
    const job = scheduler.every('broken', 50, async () => {
      calls += 1;
      throw new Error(`failure ${calls}`);
    });
    await clock.advance(150);
    expect(calls).toBe(3);
    await expect(job.runOnce()).rejects.toThrow('failure 4');
  });

  it('adds the jitter to the delay', async () => {
    const { clock, scheduler } = setUp(() => 0.5);
    const startedAt: number[] = [];
    const start = clock.now();
    scheduler.every('spread', 100, async () => void startedAt.push(clock.now() - start), { jitter: 0.2 });
    await clock.advance(330);
    expect(startedAt).toEqual([110, 220, 330]);
  });

  it('skips the pass where another replica leads: runOnce() resolves undefined and the timing goes on', async () => {
    const { clock, scheduler } = setUp();
    let leading = false;
    const lead: Leadership = { run: async (pass) => (leading ? pass() : undefined), onGained: () => () => {} };
    let passes = 0;
    const job = scheduler.every('led', 100, async () => ++passes, { lead });
    await clock.advance(300);
    expect(passes).toBe(0);
    expect(await job.runOnce()).toBeUndefined();
    leading = true;
    await clock.advance(100);
    expect(passes).toBe(1);
    expect(await job.runOnce()).toBe(2);
  });

  it('runs a led pass at once when this replica becomes the leader, then keeps its interval', async () => {
    const { clock, scheduler } = setUp();
    let leading = false;
    const listeners = new Set<() => void>();
    const lead: Leadership = {
      run: async (pass) => (leading ? pass() : undefined),
      onGained: (gained) => (listeners.add(gained), () => void listeners.delete(gained)),
    };
    const startedAt: number[] = [];
    const start = clock.now();
    const job = scheduler.every('led', 30_000, async () => void startedAt.push(clock.now() - start), { lead });
    await clock.advance(1_000);
    leading = true;
    for (const gained of listeners) gained();
    await clock.tick();
    expect(startedAt).toEqual([1_000]);
    await clock.advance(30_000);
    expect(startedAt).toEqual([1_000, 31_000]);
    await job.stop();
    expect(listeners.size).toBe(0);
  });

  it('stop() ends the timing, aborts the signal and waits for the running pass', async () => {
    const { clock, scheduler } = setUp();
    const running = gate();
    let passes = 0;
    let sawAbort = false;
    let finished = false;
    scheduler.every('long', 100, async (signal) => {
      passes += 1;
      await running.promise;
      sawAbort = signal.aborted;
      finished = true;
    });
    const advanced = clock.advance(100);
    await Promise.resolve();
    expect(passes).toBe(1);
    let stopped = false;
    const stopping = scheduler.stop().then((inTime) => ((stopped = true), inTime));
    await Promise.resolve();
    expect(stopped).toBe(false);
    running.open();
    expect(await stopping).toBe(true);
    await advanced;
    expect([finished, sawAbort]).toEqual([true, true]);
    await clock.advance(1_000);
    expect(passes).toBe(1);
    expect(clock.pendingTimers).toBe(0);
    expect(() => scheduler.every('late', 100, async () => {})).toThrow('stopped');
  });

  it('stop() gives up on a pass that outlives the grace, and says so', async () => {
    const { clock, scheduler } = setUp();
    const running = gate();
    const job = scheduler.every('stuck', 0, () => running.promise);
    const pass = job.runOnce();
    const stopping = scheduler.stop(500);
    await clock.advance(499);
    let settled = false;
    void stopping.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    await clock.advance(1);
    expect(await stopping).toBe(false);
    running.open();
    await pass;
  });

  it('stops one job on its own, the others running on', async () => {
    const { clock, scheduler } = setUp();
    const counts = { a: 0, b: 0 };
    const a = scheduler.every('a', 100, async () => void counts.a++);
    scheduler.every('b', 100, async () => void counts.b++);
    await clock.advance(100);
    await a.stop();
    await clock.advance(200);
    expect(counts).toEqual({ a: 1, b: 3 });
    expect(scheduler.names).toEqual(['a', 'b']);
  });
});

describe('the manual clock', () => {
  it('fires timers in due order (ties in the order set), moving the time to each, and waits for their promises', async () => {
    const clock = new ManualClock(1_000);
    const fired: string[] = [];
    clock.after(30, () => fired.push(`c@${clock.now()}`));
    clock.after(10, async () => {
      await new Promise((resolve) => setImmediate(resolve));
      fired.push(`a@${clock.now()}`);
      clock.after(5, () => fired.push(`a2@${clock.now()}`));
    });
    clock.after(10, () => fired.push(`b@${clock.now()}`));
    const cancel = clock.after(20, () => fired.push('cancelled'));
    cancel();
    await clock.advance(30);
    expect(fired).toEqual(['a@1010', 'b@1010', 'a2@1015', 'c@1030']);
  });

  it('set() moves the wall time only; timers run on the time advance() moves', async () => {
    const clock = new ManualClock(0);
    let fired = false;
    clock.after(100, () => (fired = true));
    clock.set(1_000_000);
    await clock.tick();
    expect(fired).toBe(false);
    clock.advance(50);
    expect(clock.now()).toBe(1_000_050);
    await clock.advance(50);
    expect(fired).toBe(true);
  });
});
