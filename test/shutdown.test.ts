import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FakeEnvoy } from './support/envoy.js';

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

/** `tollgate serve` as a process on free loopback ports, with its log collected. */
async function serve(env: Record<string, string> = {}) {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'serve'], {
    env: {
      ...process.env,
      TOLLGATE_DATA_DIR: mkdtempSync(join(tmpdir(), 'tollgate-sigterm-')),
      TOLLGATE_GRPC_HOST: '127.0.0.1',
      TOLLGATE_GRPC_PORT: String(grpcPort),
      TOLLGATE_HTTP_HOST: '127.0.0.1',
      TOLLGATE_HTTP_PORT: String(httpPort),
      TOLLGATE_ADMIN_TOKEN: 'sigterm-admin-token-0123456789',
      TOLLGATE_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { child, grpcPort, httpPort, output: '', exited: new Promise<number | null>((resolve) => child.once('exit', resolve)) };
  child.stdout.on('data', (chunk) => (server.output += chunk));
  child.stderr.on('data', (chunk) => (server.output += chunk));
  await expect.poll(() => server.output.includes('HTTP listening'), { timeout: 30_000, interval: 100 }).toBe(true);
  return server;
}

/** `tollgate serve` as a process: SIGTERM answers the Checks in flight, then exits 0. */
describe('SIGTERM', () => {
  it('drains in-flight Checks and exits cleanly', async () => {
    const server = await serve();
    const { child, grpcPort, exited } = server;
    const envoy = new FakeEnvoy(`127.0.0.1:${grpcPort}`);
    // Like Envoy, hold an established HTTP/2 connection before the burst.
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets' })).httpStatus).toBe(401);
    // Steady traffic, with SIGTERM arriving in the middle of it.
    const inFlight: Promise<{ httpStatus: number }>[] = [];
    const traffic = setInterval(() => {
      for (let i = 0; i < 5; i++) {
        const call = envoy.check({ method: 'GET', path: '/api/v1/pets' });
        call.catch(() => {}); // judged below, once all have settled
        inFlight.push(call);
      }
    }, 2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
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
    const { child, grpcPort, httpPort, exited } = await serve({ TOLLGATE_SHUTDOWN_DELAY_MS: '60000' });
    const envoy = new FakeEnvoy(`127.0.0.1:${grpcPort}`);
    expect((await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status).toBe(200);
    child.kill('SIGTERM');
    await expect.poll(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status, { timeout: 1_000, interval: 20 }).toBe(503);
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
    expect(Date.now() - secondSignal).toBeLessThan(20_000);
  });
});
