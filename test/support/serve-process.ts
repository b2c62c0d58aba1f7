import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect } from 'vitest';
import { freePort } from './ports.js';

export const serveAdminToken = 'sigterm-admin-token-0123456789';

const started: ChildProcess[] = [];
// A server that failed to stop must not outlive its test.
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

export interface ServeProcessOptions {
  env?: Record<string, string>;
  /** Its data directory; a fresh one by default. */
  dataDir?: string;
  /** Where its stdout goes: collected (the default) or an open file descriptor. */
  stdout?: 'pipe' | number;
}

/** `tollgate serve` as a process on free loopback ports, its log collected, not waited for. */
export async function spawnServe(options: ServeProcessOptions = {}) {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'tollgate-sigterm-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', 'serve'], {
    env: {
      ...process.env,
      TOLLGATE_DATA_DIR: dataDir,
      TOLLGATE_GRPC_HOST: '127.0.0.1',
      TOLLGATE_GRPC_PORT: String(grpcPort),
      TOLLGATE_HTTP_HOST: '127.0.0.1',
      TOLLGATE_HTTP_PORT: String(httpPort),
      TOLLGATE_ADMIN_TOKEN: serveAdminToken,
      TOLLGATE_LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', options.stdout ?? 'pipe', 'pipe'],
  });
  started.push(child);
  const server = { child, grpcPort, httpPort, dataDir, output: '', exited: new Promise<number | null>((resolve) => child.once('exit', resolve)) };
  child.stdout?.on('data', (chunk) => (server.output += chunk));
  child.stderr!.on('data', (chunk) => (server.output += chunk));
  return server;
}

/** `tollgate serve` as a process, once started (its signal handlers in place). */
export async function serve(options: ServeProcessOptions = {}) {
  const server = await spawnServe(options);
  // Answering HTTP comes a moment before the signal handlers are in place: a SIGTERM then would kill it outright.
  // Its log says when they are; a log that goes elsewhere leaves the HTTP port, and a moment, to go by.
  if (options.stdout === undefined || options.stdout === 'pipe') {
    await expect.poll(() => server.output.includes('started: SIGTERM or SIGINT drains'), { timeout: 30_000, interval: 50 }).toBe(true);
  } else {
    const answers = () => fetch(`http://127.0.0.1:${server.httpPort}/healthz`).then((response) => response.ok, () => false);
    await expect.poll(answers, { timeout: 30_000, interval: 100 }).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return server;
}

/** Milliseconds until the process exits, and its exit code. */
export async function timeToExit(server: { exited: Promise<number | null> }, since: number) {
  const code = await server.exited;
  return { code, ms: Date.now() - since };
}
