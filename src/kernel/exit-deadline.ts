import { Worker } from 'node:worker_threads';
import type { Logger } from './logger.js';

/** After the deadline, how long the main thread gets to exit by itself before the watchdog thread kills the process. */
const watchdogMarginMs = 2_000;

/**
 * Ends the process when a stop outlives its deadline, whatever the stop is doing: a timer on the main thread exits
 * with a logged reason, and, should the main thread be blocked (a synchronous wait never returns, so no timer of its
 * own fires), a watchdog thread kills the process a little later. `arm` again to move the deadline; `disarm` ends both.
 */
export class ExitDeadline {
  private timer: NodeJS.Timeout | undefined;
  private watchdog: Worker | undefined;

  constructor(private readonly logger: Logger) {}

  arm(ms: number, reason: string): void {
    this.disarm();
    this.timer = setTimeout(() => {
      this.logger.error({ deadlineMs: ms }, `${reason}; exiting`);
      process.exit(1);
    }, ms);
    this.timer.unref();
    const message = `tollgate: ${reason}, and the main thread did not exit; killing the process\n`;
    this.watchdog = new Worker(
      `const { writeSync } = require('node:fs');
       const { message, pid, ms } = require('node:worker_threads').workerData;
       setTimeout(() => {
         try { writeSync(2, message); } catch {}
         process.kill(pid, 'SIGKILL');
       }, ms);`,
      { eval: true, workerData: { message, pid: process.pid, ms: ms + watchdogMarginMs }, stdout: true, stderr: true },
    );
    this.watchdog.unref();
  }

  disarm(): void {
    clearTimeout(this.timer);
    void this.watchdog?.terminate();
    this.watchdog = undefined;
  }
}
