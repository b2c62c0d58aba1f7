import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeEnvoy } from './support/envoy.js';
import { busyMachineSlackMs, processTestTimeoutMs, processWaitMs, serve, serveAdminToken, timeToExit } from './support/serve-process.js';

/** `tollgate serve` as a process: SIGTERM answers the Checks in flight, then exits 0. */
describe('SIGTERM', { timeout: processTestTimeoutMs }, () => {
  it('drains in-flight Checks and exits cleanly', async () => {
    const server = await serve();
    const { child, grpcPort, exited } = server;
    const envoy = new FakeEnvoy(`127.0.0.1:${grpcPort}`);
    // Like Envoy, hold an established HTTP/2 connection before the burst.
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets' })).httpStatus).toBe(401);
    // Steady traffic, with SIGTERM arriving in the middle of it: once calls are being answered, and kept up until the
    // server refuses one or exits, so that calls arrive after the signal too, however fast or slow the machine.
    const inFlight: Promise<{ httpStatus: number }>[] = [];
    let answeredSoFar = 0;
    let refused!: () => void;
    const firstRefusal = new Promise<void>((resolve) => (refused = resolve));
    const traffic = setInterval(() => {
      for (let i = 0; i < 5; i++) {
        const call = envoy.check({ method: 'GET', path: '/api/v1/pets' });
        call.then(() => answeredSoFar++, refused); // judged below, once all have settled
        inFlight.push(call);
      }
    }, 2);
    await expect.poll(() => answeredSoFar, { timeout: 10_000, interval: 5 }).toBeGreaterThanOrEqual(20);
    child.kill('SIGTERM');
    await Promise.race([firstRefusal, exited]);
    clearInterval(traffic);
    const answers = await Promise.allSettled(inFlight);
    envoy.close();
    expect(await exited).toBe(0);
    // Calls that reached the server before the signal are answered; later ones are refused as UNAVAILABLE (Envoy
    // retries them elsewhere or applies its failure mode), never answered half-done.
    const answered = answers.filter((a) => a.status === 'fulfilled');
    for (const answer of answered) expect(answer.value.httpStatus).toBe(401);
    for (const answer of answers) if (answer.status === 'rejected') expect((answer.reason as { code: number }).code).toBe(14);
    expect(answered.length).toBeGreaterThan(0);
    expect(server.output).toContain('"signal":"SIGTERM"');
    expect(server.output).toContain('"msg":"stopped"');
  });

  it('with a shutdown delay, reports not ready but goes on answering Checks, until the delay is over or a second signal', async () => {
    const { child, grpcPort, httpPort, exited } = await serve({ env: { TOLLGATE_SHUTDOWN_DELAY_MS: '60000' } });
    const envoy = new FakeEnvoy(`127.0.0.1:${grpcPort}`);
    expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
    child.kill('SIGTERM');
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status, { timeout: processWaitMs, interval: 20 }).toBe(503);
    // Well inside the delay: still answered on the connection Envoy holds, and on a new one.
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets' })).httpStatus).toBe(401);
    const late = new FakeEnvoy(`127.0.0.1:${grpcPort}`);
    expect((await late.check({ method: 'GET', path: '/api/v1/pets' })).httpStatus).toBe(401);
    late.close();
    envoy.close();
    // A second signal drains at once, well before the minute is over.
    const secondSignal = Date.now();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - secondSignal).toBeLessThan(45_000);
  });
});

/** Stops that must end whatever the surroundings do (Tollgate issue 20): each step is bounded, logging never blocks. */
describe('stops that end', { timeout: processTestTimeoutMs }, () => {
  it('exits when the reader of its log went away and left the pipe full', async () => {
    // A FIFO opened here at both ends: the server logs into it, nobody reads, and the test fills it up, like a
    // harness that exited without closing the pipe it had handed on.
    const fifoDir = mkdtempSync(join(tmpdir(), 'tollgate-fifo-'));
    const fifo = join(fifoDir, 'log');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    try {
      const readStdout = () => {
        const chunk = Buffer.alloc(65536);
        try {
          return chunk.toString('utf8', 0, readSync(reader, chunk));
        } catch {
          return ''; // EAGAIN: nothing written since
        }
      };
      const server = await serve({ env: { TOLLGATE_SHUTDOWN_GRACE_MS: '3000' }, stdout: writer, readStdout });
      const filler = Buffer.alloc(4096, 'x');
      for (;;) {
        try {
          writeSync(writer, filler);
        } catch (error) {
          expect((error as NodeJS.ErrnoException).code).toBe('EAGAIN');
          break;
        }
      }
      const signalled = Date.now();
      server.child.kill('SIGTERM');
      const { code, ms } = await timeToExit(server, signalled);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(3_000 + busyMachineSlackMs);
    } finally {
      closeSync(reader);
      closeSync(writer);
      rmSync(fifoDir, { recursive: true, force: true });
    }
  });

  it('exits when its stdout and stderr are closed right after the signal', async () => {
    const server = await serve();
    const signalled = Date.now();
    server.child.kill('SIGTERM');
    server.child.stdout!.destroy();
    server.child.stderr!.destroy();
    const { code, ms } = await timeToExit(server, signalled);
    expect(code).toBe(0);
    expect(ms).toBeLessThan(10_000 + busyMachineSlackMs);
  });

  it('exits when its data directory is deleted right after the signal', async () => {
    const server = await serve({ env: { TOLLGATE_SHUTDOWN_GRACE_MS: '3000' } });
    const signalled = Date.now();
    server.child.kill('SIGTERM');
    rmSync(server.dataDir, { recursive: true, force: true });
    const { code, ms } = await timeToExit(server, signalled);
    expect(code).not.toBeNull();
    expect(ms).toBeLessThan(3_000 + busyMachineSlackMs);
  });

  it('ends a stop with a hung step within the grace', async () => {
    const server = await serve({ env: { TOLLGATE_SHUTDOWN_GRACE_MS: '2000' } });
    // A request whose body never finishes: the HTTP server would wait for it (up to Node's 5-minute request timeout).
    const socket = connect(server.httpPort, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.on('error', () => {});
    await new Promise((resolve) =>
      socket.write(`POST /v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${serveAdminToken}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":`, resolve),
    );
    // A request sent after the half one, and answered: the server has read what reached it before.
    expect((await fetch(`http://127.0.0.1:${server.httpPort}/healthz`)).status).toBe(200);
    const signalled = Date.now();
    server.child.kill('SIGTERM');
    const { code, ms } = await timeToExit(server, signalled);
    socket.destroy();
    expect(code).toBe(0);
    expect(ms).toBeLessThan(2_000 + busyMachineSlackMs);
    expect(server.output).toContain('"msg":"stopped"');
  });
});
