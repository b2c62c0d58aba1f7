import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { seedEmbeddedDatabase } from './pglite-template.js';

export const serveAdminToken = 'sigterm-admin-token-0123456789';

/**
 * The built command (test/global-setup.ts builds dist/ when src/ changed), as users run it: no transpiling on each
 * start, which took seconds a start on a busy machine.
 */
export const builtCli = 'bin/tollgate.js';

/**
 * How long a test waits for a real process to say it has started or stopped. Generous on purpose: on a busy machine a
 * start takes many times its usual second, and the wait ends as soon as the process says so, not at this bound.
 */
export const processWaitMs = 90_000;
/**
 * What a busy machine may add to a bound a process keeps by its own timers (a stop within its grace), as the test sees
 * it: the signal, the timers and the exit all wait for a core. Far below the waits the bounds exist to rule out (a
 * request timeout of minutes, a blocked write forever).
 */
export const busyMachineSlackMs = 15_000;
/** The per-test timeout of a test file that starts processes: room for two starts at the bound above. */
export const processTestTimeoutMs = 240_000;

const started: ChildProcess[] = [];
const madeDirs: string[] = [];
/**
 * A server that failed to stop must not outlive its test, nor the data directories made for it. Run after every test
 * by test/support/after-each-test.ts (a setup file): a hook registered here, at import, would only serve the first
 * test file of a worker, as workers keep modules loaded between files.
 */
export async function stopServeProcesses(): Promise<void> {
  await Promise.all(
    started.splice(0).map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }),
  );
  for (const dir of madeDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Spawns the built `tollgate` with `args`; killed after the test if still running. */
export function spawnCli(args: string[], options: { env: NodeJS.ProcessEnv; stdout?: 'pipe' | number; stderr?: 'pipe' | 'inherit' }): ChildProcess {
  const child = spawn(process.execPath, [builtCli, ...args], { env: options.env, stdio: ['ignore', options.stdout ?? 'pipe', options.stderr ?? 'pipe'] });
  started.push(child);
  return child;
}

/**
 * Resolves once `seen()` holds, checked whenever `child` writes; rejects naming `what` (with the output so far) if the
 * process exits first or `processWaitMs` passes.
 */
export function waitForOutput(child: ChildProcess, seen: () => boolean, what: string, output: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      clearTimeout(timer);
      child.stdout?.off('data', check);
      child.stderr?.off('data', check);
      child.off('exit', exited);
      if (error) reject(error);
      else resolve();
    };
    // Listeners run after the collectors registered before them, so `output()` already holds the chunk.
    const check = () => void (seen() && done());
    const exited = (code: number | null) => done(new Error(`the process exited (${code}) before ${what}:\n${output()}`));
    const timer = setTimeout(() => done(new Error(`no sign of ${what} within ${processWaitMs} ms:\n${output()}`)), processWaitMs);
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('exit', exited);
    check();
  });
}

export interface ServeProcessOptions {
  env?: Record<string, string>;
  /** Its data directory; a fresh one by default, its embedded database copied from the run's migrated one. */
  dataDir?: string;
  /** A fresh data directory with nothing in it, as on a first start. */
  emptyDataDir?: boolean;
  /**
   * Where its stdout goes: collected (the default) or an open file descriptor; then `readStdout` reads what it wrote
   * so far (for the wait on its start line).
   */
  stdout?: 'pipe' | number;
  readStdout?: () => string;
}

/** A fresh directory, removed after the test (once its processes are gone). */
export function testDir(name = 'serve', { seeded = true } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `tollgate-${name}-`));
  madeDirs.push(dir);
  if (seeded) seedEmbeddedDatabase(dir);
  return dir;
}

/** `tollgate serve` as a process on free loopback ports, its log collected, not waited for. */
export async function spawnServe(options: ServeProcessOptions = {}) {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const dataDir = options.dataDir ?? testDir('serve', { seeded: !options.emptyDataDir });
  const child = spawnCli(['serve'], {
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
    stdout: options.stdout ?? 'pipe',
  });
  const server = { child, grpcPort, httpPort, dataDir, output: '', exited: new Promise<number | null>((resolve) => child.once('exit', resolve)) };
  child.stdout?.on('data', (chunk) => (server.output += chunk));
  child.stderr!.on('data', (chunk) => (server.output += chunk));
  return server;
}

/** The line `tollgate serve` logs once its signal handlers are in place (src/main.ts). */
export const startedLine = 'started: SIGTERM or SIGINT drains and stops';

/** `tollgate serve` as a process, once started (its signal handlers in place). */
export async function serve(options: ServeProcessOptions = {}) {
  const server = await spawnServe(options);
  // Answering HTTP comes a moment before the signal handlers are in place: a SIGTERM then would kill it outright.
  // Its log says when they are.
  if (options.stdout === undefined || options.stdout === 'pipe') {
    await waitForOutput(server.child, () => server.output.includes(startedLine), 'its start', () => server.output);
  } else {
    const read = options.readStdout;
    if (!read) throw new Error('serve() with stdout to a file descriptor needs readStdout to see its start');
    let log = '';
    await pollUntil(() => (log += read()).includes(startedLine), () => `its start (exit ${server.child.exitCode}):\n${server.output}${log}`, server.exited);
  }
  return server;
}

/** For output the test cannot listen to (a file descriptor it reads itself): checks every 50 ms, up to processWaitMs. */
async function pollUntil(seen: () => boolean, what: () => string, exited: Promise<unknown>): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (const until = Date.now() + processWaitMs; !seen(); ) {
    if (gone || Date.now() > until) throw new Error(`no sign of ${what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Milliseconds until the process exits, and its exit code. */
export async function timeToExit(server: { exited: Promise<number | null> }, since: number) {
  const code = await server.exited;
  return { code, ms: Date.now() - since };
}
