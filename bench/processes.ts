import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** Builds dist/, which the benchmark servers run (as `npm start` does). */
export const buildDist = () => execFileSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });

export interface BenchProcess<Info> {
  info: Info;
  pid: number;
  /** CPU time the process has used so far (user + system), in microseconds: from /proc, so Linux only. */
  cpuMicros(): number;
  stop(): Promise<void>;
}

/** CPU time a process has used so far (user + system, all threads), in microseconds: from /proc, so Linux only. */
export function processCpuMicros(pid: number): number {
  // Fields 14 and 15 of /proc/PID/stat (utime, stime), in clock ticks of 10 ms; the name before them may hold spaces.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** Starts a benchmark server script and waits for the JSON line it prints once it listens. */
export async function startBenchProcess<Info>(script: string, args: string[] = []): Promise<BenchProcess<Info>> {
  // TOLLGATE_BENCH_PROFILE_DIR=dir writes a V8 CPU profile of each server process there, for finding hot spots.
  const profileDir = process.env.TOLLGATE_BENCH_PROFILE_DIR;
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  // TOLLGATE_BENCH_NODE_ARGS='--flag …' passes V8 and Node flags to each server process, for trying them side by side.
  const nodeArgs = process.env.TOLLGATE_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child: ChildProcess = spawn(process.execPath, [...profile, ...nodeArgs, '--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  return {
    info: JSON.parse(line) as Info,
    pid: child.pid!,
    cpuMicros: () => processCpuMicros(child.pid!),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Starts the compiled Tollgate server (bench/dist-server.ts) on ephemeral loopback ports, silent, with this environment. */
export function startTollgate(env: Record<string, string>) {
  const local = {
    TOLLGATE_GRPC_HOST: '127.0.0.1',
    TOLLGATE_GRPC_PORT: '0',
    TOLLGATE_HTTP_HOST: '127.0.0.1',
    TOLLGATE_HTTP_PORT: '0',
    TOLLGATE_LOG_LEVEL: 'silent',
  };
  return startBenchProcess<{ grpcPort: number; httpPort: number }>('bench/dist-server.ts', [JSON.stringify({ ...local, ...env })]);
}
