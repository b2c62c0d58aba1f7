/**
 * Check throughput and latency: Tollgate (Redis counters, a realistic catalog, 1,000 keys of 100 customers) against
 * a null grpc-js ext_authz server on the same machine, beside the candidate transports (bench/null-servers.ts).
 * Two kinds of traffic: one key and one request, by h2load; and requests over all 1,000 keys and every endpoint, by
 * bench/check-load.ts. Reports throughput ratios at saturation and the added p99 at half of the null server's rate.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createTestDatabase } from '../test/support/services.js';
import { unlinkKeys } from '../test/support/test-run.js';
import type { CheckLoadOptions, CheckLoadResult } from './check-load.js';
import { encodeBodies } from './check-load.js';
import type { NullServerKind } from './null-servers.js';
import { checkMethod, checkRequestFrame, realisticRequests } from './check-requests.js';
import { buildDist, startBenchProcess, startTollgate, type BenchProcess } from './processes.js';

export interface LoadResult extends CheckLoadResult {
  /** Server CPU (all its threads) per request: less sensitive than throughput to what else the machine runs. */
  cpuMicrosPerRequest: number;
}

/** The servers measured: the null grpc-js server is the baseline every ratio is taken against. */
export const serverNames = ['grpc-js', 'connect', 'own', 'bare', 'tollgate'] as const;
export type ServerName = (typeof serverNames)[number];

export interface SaturationResult {
  /** The median round's figures per server (by throughput). */
  servers: Partial<Record<ServerName, LoadResult>>;
  /** Median over the rounds of each server's throughput divided by the null grpc-js server's in the same round. */
  ratios: Partial<Record<ServerName, number>>;
  /** Tollgate's ratio in each round. */
  tollgateRatios: number[];
}

export interface CheckBenchResult {
  forks: number;
  rounds: number;
  durationS: number;
  warmUpS: number;
  keys: number;
  customers: number;
  bodies: number;
  /** Share of this machine's CPU time that the hypervisor gave to other guests (steal, /proc/stat) while measuring. */
  stealShare: number;
  singleKey: SaturationResult;
  manyKeys: SaturationResult;
  /** Half of the null server's saturation rate on many keys (issue 24's target) and on one key (issue 3's bench). */
  halfLoad: HalfLoadResult;
  halfLoadOneKey: HalfLoadResult;
  /** Allowed Checks counted by Tollgate's own metric, over every fork. */
  allowDecisions: number;
}

export interface HalfLoadResult {
  rate: number;
  /** The median round's figures (by Tollgate's added p99). */
  null: LoadResult;
  tollgate: LoadResult;
  addedP99Ms: number;
  addedP50Ms: number;
  /** Tollgate's p99 minus the null server's, per round. */
  addedP99sMs: number[];
}

export { checkMethod, checkRequestFrame, realisticRequests };

const workDir = mkdtempSync(join(tmpdir(), 'tollgate-h2load-'));

const adminToken = 'bench-admin-token-0123456789';
const customers = 100;
const keysPerCustomer = 10;

/**
 * Tollgate in production shape: records in PostgreSQL (the hot path never queries it; a scratch database of its own
 * unless `env` names one), counters in Redis; `env` adds to or overrides its environment.
 */
export async function startTollgateWithKeys(dataDir: string, env: Record<string, string> = {}) {
  const redisUrl = process.env.TOLLGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redisPrefix = env.TOLLGATE_REDIS_PREFIX ?? `bench${process.pid}`;
  // A shared database would keep every run's keys, and each start would rebuild all of them into Redis meanwhile.
  const scratch = env.TOLLGATE_DATABASE_URL ? undefined : await createTestDatabase();
  const started = await startTollgate({
    TOLLGATE_CATALOG: 'bench/catalog-realistic.yaml',
    TOLLGATE_DATA_DIR: dataDir,
    TOLLGATE_ADMIN_TOKEN: adminToken,
    ...(scratch ? { TOLLGATE_DATABASE_URL: scratch.url } : {}),
    TOLLGATE_REDIS_URL: redisUrl,
    TOLLGATE_REDIS_PREFIX: redisPrefix,
    TOLLGATE_REDIS_FAILURE_MODE: 'closed',
    ...env,
  }).catch(async (error: unknown) => {
    await scratch?.drop();
    throw error;
  });
  // Stopped, it leaves no counters or identity records behind in Redis, and no database.
  const server = { ...started, stop: () => started.stop().then(() => Promise.all([removeKeys(redisUrl, redisPrefix), scratch?.drop()])).then(() => {}) };
  const admin = async (path: string, body: unknown) => {
    const response = await fetch(`http://127.0.0.1:${server.info.httpPort}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
    return response.json() as Promise<Record<string, unknown>>;
  };
  try {
    const keys: string[] = [];
    const run = `${process.pid}-${Date.now()}`;
    for (let c = 0; c < customers; c++) {
      const customer = `bench-${run}-${c}`;
      await admin('/v1/customers', { id: customer, name: `Bench ${c}` });
      const first = (await admin('/v1/keys', { customer, plan: 'growth' })) as { key: string; apiKey: { subscriptionId: string } };
      keys.push(first.key);
      const more = await Promise.all(
        Array.from({ length: keysPerCustomer - 1 }, () => admin('/v1/keys', { customer, subscription: first.apiKey.subscriptionId }) as Promise<{ key: string }>),
      );
      keys.push(...more.map((created) => created.key));
    }
    // The identity cache of the replica that took the writes refreshes at once; give it a moment to land.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    return { ...server, keys };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

async function removeKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl);
  try {
    await unlinkKeys(redis, `${prefix}:*`);
  } finally {
    redis.disconnect();
  }
}

export function writeFile(name: string, bytes: Buffer): string {
  const file = join(workDir, `${name}-${randomUUID()}.bin`);
  writeFileSync(file, bytes);
  return file;
}

export const warmUpS = 1;

export interface Load {
  durationS: number;
  clients: number;
  streams: number;
  /** Paced at this many requests per second over all clients; unset, as fast as the server answers. */
  rps?: number;
}

/** Loads a server with one request, as h2load does best. */
export function h2load(server: BenchProcess<unknown>, port: number, body: string, options: Load): LoadResult {
  const cpuBefore = server.cpuMicros();
  const log = join(workDir, `h2load-${randomUUID()}.log`);
  const args = [
    `http://127.0.0.1:${port}/envoy.service.auth.v3.Authorization/Check`,
    '-d', body,
    '-H', 'content-type: application/grpc',
    '-H', 'te: trailers',
    '-t', '1',
    '-c', String(options.clients),
    '-m', String(options.streams),
    '-D', String(options.durationS),
    '--warm-up-time', String(warmUpS),
    '--log-file', log,
    ...(options.rps ? ['--rps', String(Math.max(1, Math.floor(options.rps / options.clients)))] : []),
  ];
  const output = execFileSync('h2load', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(output)?.[1]);
  const [, , succeeded, failed] = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(output)!.map(Number) as number[];
  const entries = readFileSync(log, 'utf8');
  rmSync(log);
  const durations = entries
    .trim()
    .split('\n')
    .map((line) => Number(line.split('\t')[2]))
    .filter((value) => Number.isFinite(value))
    .sort((a, b) => a - b);
  const percentile = (p: number) => durations[Math.min(durations.length - 1, Math.floor((p / 100) * durations.length))]! / 1000;
  // h2load counts requests after the warm-up only; the CPU covers both, at about the same rate.
  const requests = rps * (options.durationS + warmUpS);
  return { requestsPerSecond: rps, succeeded: succeeded!, failed: failed!, p50Ms: percentile(50), p99Ms: percentile(99), cpuMicrosPerRequest: (server.cpuMicros() - cpuBefore) / requests };
}

/** Loads a server with many requests (bench/check-load.ts), in a process of its own. */
export function mixedLoad(server: BenchProcess<unknown>, port: number, bodiesFile: string, options: Load): LoadResult {
  const cpuBefore = server.cpuMicros();
  const load: CheckLoadOptions = { port, bodiesFile, connections: options.clients, streams: options.streams, durationS: options.durationS, warmUpS, ...(options.rps ? { rps: options.rps } : {}) };
  const output = execFileSync(process.execPath, ['--import', 'tsx', 'bench/check-load.ts', JSON.stringify(load)], { encoding: 'utf8' });
  const result = JSON.parse(output.trim().split('\n').at(-1)!) as CheckLoadResult;
  const requests = result.requestsPerSecond * (options.durationS + warmUpS);
  return { ...result, cpuMicrosPerRequest: (server.cpuMicros() - cpuBefore) / requests };
}

/**
 * This machine's CPU time so far (the first line of /proc/stat): all of it, and the part the hypervisor gave to other
 * guests (steal). The fields after steal, guest time, are already counted in user and nice.
 */
function cpuTicks(): { total: number; stolen: number } {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: ticks.reduce((sum, each) => sum + each, 0), stolen: ticks[7]! };
}

/** Adds up the CPU time, and the stolen part of it, spent while measuring (not while starting or warming servers). */
export class StealMeter {
  private total = 0;
  private stolen = 0;

  measure<T>(work: () => T): T {
    const before = cpuTicks();
    const result = work();
    const after = cpuTicks();
    this.total += after.total - before.total;
    this.stolen += after.stolen - before.stolen;
    return result;
  }

  get share(): number {
    return this.total === 0 ? 0 : this.stolen / this.total;
  }
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
/** The run whose throughput is the median, so its latencies and counts stay together. */
export const medianRun = (runs: LoadResult[]) => runs.find((run) => run.requestsPerSecond === median(runs.map((each) => each.requestsPerSecond)))!;

type TollgateProcess = Awaited<ReturnType<typeof startTollgateWithKeys>>;
type Round = Partial<Record<ServerName, LoadResult>>;

interface Servers {
  processes: Record<ServerName, BenchProcess<unknown>>;
  ports: Record<ServerName, number>;
  /** One request (GET /v2/products with the first key), for h2load. */
  singleBody: string;
  /** Requests over every key and endpoint, for bench/check-load.ts. */
  bodiesFile: string;
  bodies: number;
}

/**
 * Measures `names` one after the other, each round starting one further along the list, so that drift on a shared
 * machine (other tenants, CPU frequency) hits all alike and none always runs on another's heels.
 */
export function rotate<Name extends string>(firstRound: number, rounds: number, names: readonly Name[], measure: (name: Name) => LoadResult): Partial<Record<Name, LoadResult>>[] {
  const results: Partial<Record<Name, LoadResult>>[] = [];
  for (let round = firstRound; round < firstRound + rounds; round++) {
    const result: Partial<Record<Name, LoadResult>> = {};
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length]!;
      result[name] = measure(name);
    }
    results.push(result);
  }
  return results;
}

/**
 * Runs `measure` in `forks` fresh sets of server processes, as JMH forks JVMs: one process's JIT and heap layout
 * can run a few percent faster or slower for its whole life, so results pool several. Each fork first loads every
 * server once, unmeasured, so that none is measured while still compiling its hot path.
 */
async function inForks<T>(forks: number, warmUp: (servers: Servers) => void, measure: (servers: Servers, fork: number) => T[]): Promise<{ results: T[]; allowDecisions: number; keys: number; bodies: number }> {
  const results: T[] = [];
  let allowDecisions = 0;
  let keys = 0;
  let bodies = 0;
  const method = checkMethod();
  for (let fork = 0; fork < forks; fork++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-'));
    const started: BenchProcess<unknown>[] = [];
    try {
      const nulls = {} as Record<Exclude<ServerName, 'tollgate'>, BenchProcess<{ port: number }>>;
      for (const kind of ['grpc-js', 'connect', 'own', 'bare'] as const satisfies readonly NullServerKind[]) {
        started.push((nulls[kind] = await startBenchProcess<{ port: number }>('bench/null-servers.ts', [kind])));
      }
      const tollgate: TollgateProcess = await startTollgateWithKeys(dataDir);
      started.push(tollgate);
      keys = tollgate.keys.length;
      const frames = Array.from({ length: tollgate.keys.length * 4 }, (_, n) => {
        const [verb, path] = realisticRequests[n % realisticRequests.length]!(n);
        return checkRequestFrame(method, tollgate.keys[(n * 7) % tollgate.keys.length]!, verb, path);
      });
      bodies = frames.length;
      const servers: Servers = {
        processes: { ...nulls, tollgate },
        ports: { 'grpc-js': nulls['grpc-js'].info.port, connect: nulls.connect.info.port, own: nulls.own.info.port, bare: nulls.bare.info.port, tollgate: tollgate.info.grpcPort },
        singleBody: writeFile('single', checkRequestFrame(method, tollgate.keys[0]!, 'GET', '/v2/products')),
        bodiesFile: writeFile('bodies', encodeBodies(frames)),
        bodies: frames.length,
      };
      warmUp(servers);
      results.push(...measure(servers, fork));
      // The admin calls' keep-alive connection has idled out by now; a stale one can be cut as it is reused, so retry once.
      const { httpPort } = tollgate.info;
      const scrape = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      const metrics = await scrape().catch(scrape);
      allowDecisions += Number(/tollgate_check_decisions_total\{result="allow",reason="",plan="growth"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    } finally {
      await Promise.all(started.map((server) => server.stop()));
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  return { results, allowDecisions, keys, bodies };
}

function saturationOf(rounds: Round[]): SaturationResult {
  const servers: SaturationResult['servers'] = {};
  const ratios: SaturationResult['ratios'] = {};
  for (const name of serverNames) {
    const runs = rounds.map((round) => round[name]).filter((run): run is LoadResult => run !== undefined);
    if (runs.length === 0) continue;
    servers[name] = medianRun(runs);
    ratios[name] = median(rounds.map((round) => round[name]!.requestsPerSecond / round['grpc-js']!.requestsPerSecond));
  }
  return { servers, ratios, tollgateRatios: rounds.map((round) => round.tollgate!.requestsPerSecond / round['grpc-js']!.requestsPerSecond) };
}

/** Paced rounds all reach the same throughput, so the median half-load round is the one with the median added p99. */
function halfLoadResult(rounds: Round[], rate: number): HalfLoadResult {
  const addedP99sMs = rounds.map((round) => round.tollgate!.p99Ms - round['grpc-js']!.p99Ms);
  const medianRound = rounds[addedP99sMs.indexOf(median(addedP99sMs))]!;
  return {
    rate,
    null: medianRound['grpc-js']!,
    tollgate: medianRound.tollgate!,
    addedP99Ms: medianRound.tollgate!.p99Ms - medianRound['grpc-js']!.p99Ms,
    addedP50Ms: medianRound.tollgate!.p50Ms - medianRound['grpc-js']!.p50Ms,
    addedP99sMs,
  };
}

/**
 * Many short rounds rather than a few long ones, in several forks: on the shared machine single rounds' ratios ranged
 * from 0.5 to 1.3 (the null server alone, under constant load, did anywhere from 6k to 18k req/s in half-second
 * slices), and the median of 9 rounds in one set of processes moved by up to 0.25 between runs.
 */
export async function runCheckBench(options = { durationS: 3, forks: 3, roundsPerFork: 5 }): Promise<CheckBenchResult> {
  buildDist();
  const saturate = { durationS: options.durationS, clients: 4, streams: 32 };
  const steal = new StealMeter();
  const warmUp = (servers: Servers) => {
    for (const name of serverNames) h2load(servers.processes[name], servers.ports[name], servers.singleBody, saturate);
    mixedLoad(servers.processes.tollgate, servers.ports.tollgate, servers.bodiesFile, saturate);
  };
  const saturation = await inForks(options.forks, warmUp, (servers, fork) => {
    const first = fork * options.roundsPerFork;
    return steal.measure(() => [
      ...rotate(first, options.roundsPerFork, serverNames, (name) => h2load(servers.processes[name], servers.ports[name], servers.singleBody, saturate)).map((round) => ({ kind: 'single' as const, round })),
      ...rotate(first, options.roundsPerFork, ['grpc-js', 'bare', 'tollgate'], (name) => mixedLoad(servers.processes[name], servers.ports[name], servers.bodiesFile, saturate)).map((round) => ({ kind: 'many' as const, round })),
    ]);
  });
  const singleKey = saturationOf(saturation.results.filter((each) => each.kind === 'single').map((each) => each.round));
  const manyKeys = saturationOf(saturation.results.filter((each) => each.kind === 'many').map((each) => each.round));
  const rate = Math.floor(manyKeys.servers['grpc-js']!.requestsPerSecond / 2);
  const oneKeyRate = Math.floor(singleKey.servers['grpc-js']!.requestsPerSecond / 2);
  const paced = { durationS: options.durationS, clients: 4, streams: 8 };
  const halfLoad = await inForks(options.forks, warmUp, (servers, fork) =>
    steal.measure(() => [
      ...rotate(fork * options.roundsPerFork, options.roundsPerFork, ['grpc-js', 'tollgate'], (name) => mixedLoad(servers.processes[name], servers.ports[name], servers.bodiesFile, { ...paced, rps: rate })).map((round) => ({ kind: 'many' as const, round })),
      ...rotate(fork * options.roundsPerFork, options.roundsPerFork, ['grpc-js', 'tollgate'], (name) => h2load(servers.processes[name], servers.ports[name], servers.singleBody, { ...paced, rps: oneKeyRate })).map((round) => ({ kind: 'single' as const, round })),
    ]),
  );
  const halfLoadOf = (kind: 'many' | 'single', pacedRate: number) => halfLoadResult(halfLoad.results.filter((each) => each.kind === kind).map((each) => each.round), pacedRate);
  return {
    forks: options.forks,
    rounds: options.forks * options.roundsPerFork,
    durationS: options.durationS,
    warmUpS,
    keys: saturation.keys,
    customers,
    bodies: saturation.bodies,
    stealShare: steal.share,
    singleKey,
    manyKeys,
    halfLoad: halfLoadOf('many', rate),
    halfLoadOneKey: halfLoadOf('single', oneKeyRate),
    allowDecisions: saturation.allowDecisions + halfLoad.allowDecisions,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [durationS, forks, roundsPerFork] = process.argv.slice(2).map(Number);
  console.log(JSON.stringify(await runCheckBench({ durationS: durationS || 3, forks: forks || 3, roundsPerFork: roundsPerFork || 5 }), null, 2));
}
