import { spawn } from 'node:child_process';
import { finished } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createLogger, nonBlockingDestination } from '../src/kernel/logger.js';

/** Logging must never block the process (Tollgate issue 20: a stop hung on a full stdout). */
describe('non-blocking log destination', () => {
  it('drops lines while a real pipe is full, then notes how many once its reader catches up, and survives EPIPE', async () => {
    // `cat` echoes what it reads, but its stdout is not read until later: the pipe chain fills up.
    const reader = spawn('cat', [], { stdio: ['pipe', 'pipe', 'ignore'] });
    reader.stdout.pause();
    const destination = nonBlockingDestination(reader.stdin, 64 * 1024);
    const logger = createLogger('info', destination);
    const started = Date.now();
    for (let i = 0; i < 20_000; i++) logger.info({ i, padding: 'x'.repeat(200) }, 'filling');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(destination.dropped()).toBeGreaterThan(0);

    let echoed = '';
    reader.stdout.on('data', (chunk) => (echoed += chunk));
    reader.stdout.resume();
    await new Promise((resolve) => reader.stdin.once('drain', resolve));
    logger.info('caught up');
    await expect.poll(() => echoed.includes('caught up'), { timeout: 5_000 }).toBe(true);
    expect(echoed).toMatch(/"dropped":\d+,"msg":"log lines dropped: the log reader was not keeping up"/);

    // The reader goes away: writes fail with EPIPE, which must neither throw nor block.
    reader.kill('SIGKILL');
    await new Promise((resolve) => reader.once('exit', resolve));
    const before = destination.dropped();
    const pipeGone = finished(reader.stdin).catch(() => {});
    for (let i = 0; i < 100; i++) logger.info({ i }, 'after the reader left');
    // Once those writes have met the EPIPE and the stream is done, the next lines are dropped, not written.
    await pipeGone;
    for (let i = 0; i < 100; i++) logger.info({ i }, 'after the reader left');
    expect(destination.dropped()).toBeGreaterThanOrEqual(before + 100);
  });
});
