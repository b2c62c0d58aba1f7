/**
 * The scale bench (Tollgate issue 23): per key count (bench/scale-keys.ts generates them into PostgreSQL), `tollgate
 * serve` processes as deployed — edge replicas, and a control process apart when the roles exist — measured for:
 * time from process start to ready, RSS, Check throughput with keys drawn from the whole set against the same load on
 * one key, and how long a revocation takes to be enforced on every edge while Checks load them. A soak mode loads
 * them for minutes and reports counter-store fallbacks and event-loop delay.
 *
 * Settings (environment): TOLLGATE_SCALE_SIZES (key counts, comma-separated; default 100000,1000000),
 * TOLLGATE_SCALE_REBUILD=1 (generate again), TOLLGATE_SCALE_EDGES (edge replicas, default 2),
 * TOLLGATE_SCALE_EDGE_ARGS (the edges' command line, default `serve`, e.g. `serve --role edge`),
 * TOLLGATE_SCALE_CONTROL_ARGS (a control process apart, e.g. `serve --role control`, taking the admin calls; unset:
 * the first edge takes them), TOLLGATE_SCALE_ENV (JSON, more environment for every process),
 * TOLLGATE_SCALE_SETTLE_S (unloaded time after the starts, default 15), TOLLGATE_SCALE_ROUNDS / _ROUND_S
 * (throughput rounds per traffic and their length; default 3 × 5 s), TOLLGATE_SCALE_REVOCATIONS (default 50),
 * TOLLGATE_SCALE_LOAD_RPS (the Check load during revocations and the soak, over all edges; default: half the measured
 * spread throughput on each edge, and 2000 for the soak), TOLLGATE_SCALE_SOAK_S (soak length, default 600),
 * TOLLGATE_SCALE_SOAK_KEYS (default 100000).
 *
 * TOLLGATE_SCALE_PARTS (`sizes`, `soak` or `sizes,soak`, the default) chooses what runs.
 * Standalone: `npx tsx bench/scale.ts [scale] [soak]` (the sizes, the soak; both by default); `npm run bench -- scale`
 * runs this section alone and updates it in bench/RESULTS.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { freePort } from '../test/support/ports.js';
import { unlinkKeys } from '../test/support/test-run.js';
import { median, mixedLoad, warmUpS, writeFile, type LoadResult } from './check.js';
import { encodeBodies, type CheckLoadOptions, type CheckLoadResult } from './check-load.js';
import { checkMethod, checkRequestFrame, realisticRequests } from './check-requests.js';
import { buildDist, processCpuMicros } from './processes.js';
import { ensureScaleDatabase, scaleKey, scaleKeyId, type ScaleDatabase } from './scale-keys.js';

export interface ScaleOptions {
  sizes: number[];
  rebuild: boolean;
  edges: number;
  edgeArgs: string[];
  controlArgs: string[] | undefined;
  env: Record<string, string>;
  revocations: number;
  /** Paced Checks per second over all edges, during revocations and the soak; unset: see revocationLoadRps, soakLoadRps. */
  loadRps: number | undefined;
  rounds: number;
  roundS: number;
  soakS: number;
  soakKeys: number;
  /** Unloaded time after the starts, before measuring: the edges' own CPU meanwhile is their idle cost. */
  settleS: number;
}

const words = (value: string | undefined) => value?.trim().split(/\s+/).filter(Boolean);

export function scaleOptions(env: NodeJS.ProcessEnv = process.env): ScaleOptions {
  const number = (name: string, fallback: number) => (env[name] ? Number(env[name]) : fallback);
  return {
    sizes: (env.TOLLGATE_SCALE_SIZES ?? '100000,1000000').split(',').map(Number),
    rebuild: env.TOLLGATE_SCALE_REBUILD === '1',
    edges: number('TOLLGATE_SCALE_EDGES', 2),
    edgeArgs: words(env.TOLLGATE_SCALE_EDGE_ARGS) ?? ['serve'],
    controlArgs: words(env.TOLLGATE_SCALE_CONTROL_ARGS),
    env: JSON.parse(env.TOLLGATE_SCALE_ENV ?? '{}') as Record<string, string>,
    revocations: number('TOLLGATE_SCALE_REVOCATIONS', 50),
    loadRps: env.TOLLGATE_SCALE_LOAD_RPS ? Number(env.TOLLGATE_SCALE_LOAD_RPS) : undefined,
    rounds: number('TOLLGATE_SCALE_ROUNDS', 3),
    roundS: number('TOLLGATE_SCALE_ROUND_S', 5),
    soakS: number('TOLLGATE_SCALE_SOAK_S', 600),
    soakKeys: number('TOLLGATE_SCALE_SOAK_KEYS', 100_000),
    settleS: number('TOLLGATE_SCALE_SETTLE_S', 15),
  };
}

const adminToken = 'bench-scale-admin-token-0123456789';
/** Shared by every process, as replicas must share it. */
const usageSigningKey = 'bench-scale-usage-signing-key-0123456789';
const readyWaitMs = 15 * 60_000;

/** A `tollgate serve` process (the built CLI, as deployed) on free loopback ports, its log in its data directory. */
interface ServeProcess {
  name: string;
  httpPort: number;
  grpcPort: number;
  pid: number;
  /** From spawning the process to /readyz answering 200. */
  readyS: number;
  rssAtReadyMb: number;
  /** Resident memory now, and its peak so far (VmHWM), from /proc. */
  memory(): { rssMb: number; peakMb: number };
  cpuMicros(): number;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

function procStatus(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMb: Math.round(kb('VmRSS') / 1024), peakMb: Math.round(kb('VmHWM') / 1024) };
}

async function startServe(name: string, args: string[], env: Record<string, string>): Promise<ServeProcess> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const dataDir = mkdtempSync(join(tmpdir(), `tollgate-scale-${name}-`));
  const logFile = join(dataDir, 'serve.log');
  const log = openSync(logFile, 'w');
  const started = performance.now();
  // TOLLGATE_BENCH_PROFILE_DIR=dir writes a V8 CPU profile of each process there, as for the other benches' servers.
  const profileDir = process.env.TOLLGATE_BENCH_PROFILE_DIR;
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profileDir, name)}`] : [];
  const child: ChildProcess = spawn(process.execPath, [...profile, 'bin/tollgate.js', ...args], {
    env: {
      ...process.env,
      TOLLGATE_DATA_DIR: dataDir,
      TOLLGATE_GRPC_HOST: '127.0.0.1',
      TOLLGATE_GRPC_PORT: String(grpcPort),
      TOLLGATE_HTTP_HOST: '127.0.0.1',
      TOLLGATE_HTTP_PORT: String(httpPort),
      TOLLGATE_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const failed = () => new Error(`${name} (${args.join(' ')}) exited with ${child.exitCode ?? child.signalCode}:\n${readFileSync(logFile, 'utf8').slice(-4000)}`);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const http = `http://127.0.0.1:${httpPort}`;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw failed();
    if (performance.now() - started > readyWaitMs) {
      await stop();
      throw new Error(`${name} not ready within ${readyWaitMs / 1000} s`);
    }
    const ready = await fetch(`${http}/readyz`).then((response) => response.status === 200, () => false);
    if (ready) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  const readyS = (performance.now() - started) / 1000;
  return {
    name,
    httpPort,
    grpcPort,
    readyS,
    pid: child.pid!,
    rssAtReadyMb: procStatus(child.pid!).rssMb,
    memory: () => procStatus(child.pid!),
    cpuMicros: () => processCpuMicros(child.pid!),
    // A keep-alive connection idled out between scrapes can be cut as it is reused: retry once.
    metrics: () => fetch(`${http}/metrics`).then((response) => response.text()).catch(() => fetch(`${http}/metrics`).then((response) => response.text())),
    stop,
  };
}

/** The sum of a metric's series (all label values) in a Prometheus text scrape. */
export function metricSum(scrape: string, name: string): number {
  let sum = 0;
  for (const match of scrape.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([^\\s]+)$`, 'gm'))) sum += Number(match[1]);
  return sum;
}

/** What a scrape says of the stalls since the previous one: prom-client resets its event-loop histogram on each. */
interface Health {
  /** Counter-store calls answered from the failure mode (Redis errors and timeouts) and Redis replies that came late. */
  fallbacks: number;
  lateReplies: number;
  eventLoopMaxMs: number;
  eventLoopP99Ms: number;
  /** Where the RSS goes: V8's heap in use and reserved, and memory outside it (Buffers), in MB. */
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
}

async function health(server: ServeProcess): Promise<Health> {
  const scrape = await server.metrics();
  return {
    fallbacks: metricSum(scrape, 'tollgate_quota_store_failures_total'),
    lateReplies: metricSum(scrape, 'tollgate_quota_store_late_replies_total'),
    eventLoopMaxMs: metricSum(scrape, 'tollgate_nodejs_eventloop_lag_max_seconds') * 1000,
    eventLoopP99Ms: metricSum(scrape, 'tollgate_nodejs_eventloop_lag_p99_seconds') * 1000,
    heapUsedMb: Math.round(metricSum(scrape, 'tollgate_nodejs_heap_size_used_bytes') / 2 ** 20),
    heapTotalMb: Math.round(metricSum(scrape, 'tollgate_nodejs_heap_size_total_bytes') / 2 ** 20),
    externalMb: Math.round(metricSum(scrape, 'tollgate_nodejs_external_memory_bytes') / 2 ** 20),
  };
}

interface Deployment {
  edges: ServeProcess[];
  control: ServeProcess | undefined;
  /** Where the admin calls go: the control process, or the first edge. */
  admin: ServeProcess;
  redisPrefix: string;
  stop(): Promise<void>;
}

/** Redis's process id when it runs on this machine (its CPU per Check is then measured), else undefined. */
async function localRedisPid(): Promise<number | undefined> {
  const redis = new Redis(redisUrl());
  try {
    const pid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]);
    return Number.isInteger(pid) && existsSync(`/proc/${pid}/stat`) && ['localhost', '127.0.0.1', '::1'].includes(new URL(redisUrl()).hostname) ? pid : undefined;
  } finally {
    redis.disconnect();
  }
}

const redisUrl = () => process.env.TOLLGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The control process first (if apart), then the edges one at a time, so that each start is timed alone. */
async function deploy(database: ScaleDatabase, options: ScaleOptions): Promise<Deployment> {
  const redisPrefix = `benchscale${process.pid}_${database.keys}`;
  const env = {
    TOLLGATE_CATALOG: 'bench/catalog-realistic.yaml',
    TOLLGATE_DATABASE_URL: database.url,
    TOLLGATE_REDIS_URL: redisUrl(),
    TOLLGATE_REDIS_PREFIX: redisPrefix,
    TOLLGATE_ADMIN_TOKEN: adminToken,
    TOLLGATE_USAGE_SIGNING_KEY: usageSigningKey,
    ...options.env,
  };
  const started: ServeProcess[] = [];
  const stop = async () => {
    await Promise.all(started.map((each) => each.stop()));
    const redis = new Redis(redisUrl());
    try {
      await unlinkKeys(redis, `${redisPrefix}:*`);
    } finally {
      redis.disconnect();
    }
  };
  try {
    const control = options.controlArgs ? await startServe('control', options.controlArgs, env) : undefined;
    if (control) started.push(control);
    const edges: ServeProcess[] = [];
    for (let edge = 0; edge < options.edges; edge++) {
      edges.push(await startServe(`edge${edge}`, options.edgeArgs, env));
      started.push(edges.at(-1)!);
    }
    return { edges, control, admin: control ?? edges[0]!, redisPrefix, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Waits for the complete marker of the identity records (src/identity/identity-records.ts): until the leader has
 * rebuilt them from PostgreSQL, a key not yet written answers 503 identity_unavailable. Seconds waited.
 */
async function identityRecordsComplete(redisPrefix: string, limitS = 3_600): Promise<number> {
  const redis = new Redis(redisUrl());
  const started = performance.now();
  try {
    while ((await redis.exists(`${redisPrefix}:{identity}:complete`)) === 0) {
      if (performance.now() - started > limitS * 1000) throw new Error(`the identity records were not complete after ${limitS} s`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return (performance.now() - started) / 1000;
  } finally {
    redis.disconnect();
  }
}

const method = checkMethod();

/** Bodies for bench/check-load.ts over every endpoint, with key `keyOf(n)`. */
function bodiesFile(name: string, count: number, keyOf: (n: number) => number): string {
  const frames = Array.from({ length: count }, (_, n) => {
    const [verb, path] = realisticRequests[n % realisticRequests.length]!(n);
    return checkRequestFrame(method, scaleKey(keyOf(n)), verb, path);
  });
  return writeFile(name, encodeBodies(frames));
}

type RoundResult = LoadResult & { redisCpuMicrosPerRequest: number | undefined };

const randomIndex = (keys: number) => Math.floor(Math.random() * keys);

export interface ThroughputResult {
  /** Requests per second over one key (key 0), and over keys drawn uniformly from the whole set: medians of rounds. */
  singleKeyRps: number;
  spreadRps: number;
  /** Median over rounds of spread / single within the round (the target: ≥ 0.9). */
  ratio: number;
  ratios: number[];
  /** Server CPU per Check, medians over rounds. */
  singleKeyCpuMicros: number;
  spreadCpuMicros: number;
  /** Redis's CPU per Check (the counters' script, the identity reads), medians over rounds; absent when Redis is not local. */
  singleKeyRedisCpuMicros?: number;
  spreadRedisCpuMicros?: number;
  spreadP99Ms: number;
  /** Distinct requests per spread round (each with a key drawn afresh), and Checks that failed over all rounds. */
  bodiesPerRound: number;
  failed: number;
}

/**
 * Alternating rounds on the first edge, the same loader and the same request mix, only the keys differ: key 0 in
 * every request, or a key drawn uniformly from all of them, fresh for each request of a round (as many bodies as a
 * round sends at the rates seen), so a cache cannot serve the spread from a small hot set.
 */
function measureThroughput(edge: ServeProcess, keys: number, options: ScaleOptions, redisPid: number | undefined): ThroughputResult {
  const load = { durationS: options.roundS, clients: 4, streams: 32 };
  const bodiesPerRound = Math.min(keys, 20_000 * options.roundS);
  const single = bodiesFile('scale-single', 2_000, () => 0);
  const server = { info: undefined, pid: edge.pid, cpuMicros: () => edge.cpuMicros(), stop: async () => {} };
  mixedLoad(server, edge.grpcPort, single, load); // warm-up: JIT, connections
  const rounds: { single: RoundResult; spread: RoundResult }[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const spread = bodiesFile(`scale-spread-${round}`, bodiesPerRound, () => randomIndex(keys));
    // Alternate which goes first, so that drift on the shared machine hits both alike.
    const first = round % 2 === 0 ? 'single' : 'spread';
    const measured: Partial<Record<'single' | 'spread', RoundResult>> = {};
    for (const traffic of first === 'single' ? (['single', 'spread'] as const) : (['spread', 'single'] as const)) {
      const redisBefore = redisPid === undefined ? 0 : processCpuMicros(redisPid);
      const result = mixedLoad(server, edge.grpcPort, traffic === 'single' ? single : spread, load);
      const requests = result.requestsPerSecond * (load.durationS + warmUpS);
      measured[traffic] = { ...result, redisCpuMicrosPerRequest: redisPid === undefined ? undefined : (processCpuMicros(redisPid) - redisBefore) / requests };
    }
    rmSync(spread);
    rounds.push(measured as { single: RoundResult; spread: RoundResult });
  }
  rmSync(single);
  const ratios = rounds.map((round) => round.spread.requestsPerSecond / round.single.requestsPerSecond);
  return {
    singleKeyRps: median(rounds.map((round) => round.single.requestsPerSecond)),
    spreadRps: median(rounds.map((round) => round.spread.requestsPerSecond)),
    ratio: median(ratios),
    ratios,
    singleKeyCpuMicros: median(rounds.map((round) => round.single.cpuMicrosPerRequest)),
    spreadCpuMicros: median(rounds.map((round) => round.spread.cpuMicrosPerRequest)),
    ...(redisPid === undefined
      ? {}
      : {
          singleKeyRedisCpuMicros: median(rounds.map((round) => round.single.redisCpuMicrosPerRequest!)),
          spreadRedisCpuMicros: median(rounds.map((round) => round.spread.redisCpuMicrosPerRequest!)),
        }),
    spreadP99Ms: median(rounds.map((round) => round.spread.p99Ms)),
    bodiesPerRound,
    failed: rounds.reduce((sum, round) => sum + round.single.failed + round.spread.failed, 0),
  };
}

/** bench/check-load.ts in the background, paced; resolves with its result when its duration is over. */
function backgroundLoad(edge: ServeProcess, bodies: string, rps: number, durationS: number): { result: Promise<CheckLoadResult>; kill(): void } {
  const load: CheckLoadOptions = { port: edge.grpcPort, bodiesFile: bodies, connections: 2, streams: 32, durationS, warmUpS: 1, rps };
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/check-load.ts', JSON.stringify(load)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  const result = new Promise<CheckLoadResult>((resolve, reject) =>
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(output.trim().split('\n').at(-1)!) as CheckLoadResult) : reject(new Error(`check-load exited with ${code}`)))),
  );
  result.catch(() => {}); // killed on purpose when the revocations are done
  return { result, kill: () => child.kill('SIGTERM') };
}

/** The CheckResponse's gRPC status code for key `index` (0: allowed; 16: 401, the key unknown or revoked; 14: 503), undefined when the call failed. */
function checkStatus(client: grpc.Client, index: number): Promise<number | undefined> {
  const message = checkRequestFrame(method, scaleKey(index), 'GET', '/v2/products').subarray(5);
  return new Promise((resolve) =>
    client.makeUnaryRequest(
      '/envoy.service.auth.v3.Authorization/Check',
      (bytes: Buffer) => bytes,
      (bytes: Buffer) => method.responseDeserialize(bytes) as { status?: { code?: number } },
      message,
      { deadline: Date.now() + 5_000 },
      (error, response) => resolve(error ? undefined : (response?.status?.code ?? 0)),
    ),
  );
}

const allowedCode = 0;
/** What a revoked key gets: 401. A 503 (identity or counters unavailable for a moment under load) is not enforcement. */
const revokedCode = 16;

/** Allowed, after at most a few transient answers (503, a failed call): the load may briefly outrun Redis's timeout. */
async function allowedBeforeRevocation(client: grpc.Client, index: number): Promise<void> {
  const seen: (number | undefined)[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const code = await checkStatus(client, index);
    if (code === allowedCode) return;
    seen.push(code);
    if (code !== undefined && code !== 14) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`key ${index} not allowed before its revocation (gRPC status codes ${seen.join(', ')})`);
}

export interface RevocationResult {
  revoked: number;
  /** From the admin call's start to the last edge denying the key, in ms. */
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Revoked keys some edge still allowed when the wait (30 s) ended; they count at the wait in the percentiles. */
  notEnforced: number;
  /** The admin calls alone (the write and its reply), median. */
  adminCallP50Ms: number;
  /** The Check load running meanwhile, over all edges, as measured by the loaders; probes come on top. */
  loadRps: number;
}

const enforcementWaitMs = 30_000;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/**
 * Revokes random keys through the admin API, one every 200 ms, while Checks load every edge; each key's latency is
 * until a Check with it is denied on every edge (each edge probed every 10 ms).
 */
async function measureRevocation(deployment: Deployment, keys: number, loadRps: number, options: ScaleOptions): Promise<RevocationResult> {
  const loadBodies = bodiesFile('scale-revocation-load', Math.min(keys, 50_000), () => randomIndex(keys));
  const loads = deployment.edges.map((edge) => backgroundLoad(edge, loadBodies, loadRps / deployment.edges.length, 3_600));
  const clients = deployment.edges.map((edge) => new grpc.Client(`127.0.0.1:${edge.grpcPort}`, grpc.credentials.createInsecure()));
  const chosen = new Set<number>();
  while (chosen.size < Math.min(options.revocations, keys - 1)) chosen.add(1 + randomIndex(keys - 1)); // key 0 is the single-key load's
  const latencies: number[] = [];
  const adminCalls: number[] = [];
  let notEnforced = 0;
  try {
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // the loads under way
    const revokeOne = async (index: number) => {
      for (const client of clients) await allowedBeforeRevocation(client, index);
      const started = performance.now();
      const response = await fetch(`http://127.0.0.1:${deployment.admin.httpPort}/v1/keys/${scaleKeyId(index)}/revoke`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } });
      if (!response.ok) throw new Error(`revoke ${scaleKeyId(index)}: ${response.status} ${await response.text()}`);
      adminCalls.push(performance.now() - started);
      const deniedAt = await Promise.all(
        clients.map(async (client) => {
          while (performance.now() - started < enforcementWaitMs) {
            if ((await checkStatus(client, index)) === revokedCode) return performance.now();
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          return undefined;
        }),
      );
      if (deniedAt.some((at) => at === undefined)) {
        notEnforced++;
        latencies.push(enforcementWaitMs);
      } else latencies.push(Math.max(...(deniedAt as number[])) - started);
    };
    const pending: Promise<void>[] = [];
    for (const index of chosen) {
      pending.push(revokeOne(index));
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await Promise.all(pending);
  } finally {
    for (const load of loads) load.kill();
    for (const client of clients) client.close();
    rmSync(loadBodies);
  }
  const sorted = latencies.sort((a, b) => a - b);
  const adminSorted = adminCalls.sort((a, b) => a - b);
  return {
    revoked: sorted.length,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1) ?? NaN,
    notEnforced,
    adminCallP50Ms: percentile(adminSorted, 50),
    loadRps,
  };
}

export interface ScaleRun {
  keys: number;
  database: Omit<ScaleDatabase, 'url'>;
  edges: number;
  edgeArgs: string;
  controlArgs: string | undefined;
  /** Per process, in start order (control first when apart). */
  starts: { name: string; readyS: number; rssAtReadyMb: number }[];
  /**
   * From the last start until the identity records in Redis were complete (the control's background rebuild from
   * PostgreSQL); 0 when there are none to wait for (no Redis identities). Checks are measured after it.
   */
  identityRebuildS: number;
  /** The busiest edge's CPU while unloaded after the starts (settleS), in % of one core. */
  edgeIdleCpuPercent: number;
  throughput: ThroughputResult;
  revocation: RevocationResult;
  /** The edges' memory after all the load: now and peak (VmHWM), the largest over edges. */
  edgeRssAfterLoadMb: number;
  edgePeakRssMb: number;
  /** Over the whole run, summed over edges (fallbacks, late replies) or the largest (event-loop delay). */
  health: Health;
}

async function runSize(keys: number, options: ScaleOptions): Promise<ScaleRun> {
  console.log(`scale: ${keys} keys…`);
  const database = await ensureScaleDatabase(keys, { rebuild: options.rebuild });
  console.log(database.reused ? `scale: reusing database with ${keys} keys (generated in ${database.generationS.toFixed(1)} s)` : `scale: generated ${keys} keys in ${database.generationS.toFixed(1)} s`);
  const deployment = await deploy(database, options);
  try {
    const starts = [...(deployment.control ? [deployment.control] : []), ...deployment.edges].map(({ name, readyS, rssAtReadyMb }) => ({ name, readyS, rssAtReadyMb }));
    console.log(`scale: ready ${JSON.stringify(starts)}`);
    const identityRebuildS = await identityRecordsComplete(deployment.redisPrefix);
    console.log(`scale: identity records complete after ${identityRebuildS.toFixed(1)} s`);
    const cpuBefore = deployment.edges.map((edge) => edge.cpuMicros());
    await new Promise((resolve) => setTimeout(resolve, options.settleS * 1000));
    const edgeIdleCpuPercent = Math.max(...deployment.edges.map((edge, i) => (edge.cpuMicros() - cpuBefore[i]!) / (options.settleS * 1e4)));
    await Promise.all(deployment.edges.map(health)); // starts the event-loop window here
    const throughput = measureThroughput(deployment.edges[0]!, keys, options, await localRedisPid());
    console.log(`scale: throughput ${JSON.stringify(throughput)}`);
    // Half of what the first edge managed over spread keys, on each edge (as the Check bench's half load): loaded, not
    // saturated, since a saturated edge answers everything late, probes and admin calls included.
    const loadRps = options.loadRps ?? Math.round((throughput.spreadRps / 2) * deployment.edges.length);
    const revocation = await measureRevocation(deployment, keys, loadRps, options);
    console.log(`scale: revocation ${JSON.stringify(revocation)}`);
    const memories = deployment.edges.map((edge) => edge.memory());
    const healths = await Promise.all(deployment.edges.map(health));
    return {
      keys,
      database: { keys: database.keys, reused: database.reused, generationS: database.generationS, indexS: database.indexS },
      edges: deployment.edges.length,
      edgeArgs: options.edgeArgs.join(' '),
      controlArgs: options.controlArgs?.join(' '),
      starts,
      identityRebuildS,
      edgeIdleCpuPercent,
      throughput,
      revocation,
      edgeRssAfterLoadMb: Math.max(...memories.map((memory) => memory.rssMb)),
      edgePeakRssMb: Math.max(...memories.map((memory) => memory.peakMb)),
      health: combine(healths),
    };
  } finally {
    await deployment.stop();
  }
}

const combine = (healths: Health[]): Health => ({
  fallbacks: healths.reduce((sum, each) => sum + each.fallbacks, 0),
  lateReplies: healths.reduce((sum, each) => sum + each.lateReplies, 0),
  eventLoopMaxMs: Math.max(...healths.map((each) => each.eventLoopMaxMs)),
  eventLoopP99Ms: Math.max(...healths.map((each) => each.eventLoopP99Ms)),
  // The largest edge's, as the RSS reported beside them.
  heapUsedMb: Math.max(...healths.map((each) => each.heapUsedMb)),
  heapTotalMb: Math.max(...healths.map((each) => each.heapTotalMb)),
  externalMb: Math.max(...healths.map((each) => each.externalMb)),
});

export interface SoakResult {
  keys: number;
  durationS: number;
  edges: number;
  loadRps: number;
  /** What the loaders measured, over all edges. */
  checks: number;
  failedChecks: number;
  p99Ms: number;
  /** Counter-store fallbacks and late Redis replies over the soak, all edges (the target: no fallback). */
  fallbacks: number;
  lateReplies: number;
  /** Event-loop delay per 10-second window (largest over edges): the worst window's max, and the median window's p99. */
  eventLoopMaxMs: number;
  eventLoopMedianP99Ms: number;
  /** Windows whose largest event-loop delay passed the Redis timeout (50 ms): a stall long enough to cause a fallback. */
  windowsOverRedisTimeout: number;
  windows: number;
  edgeRssMb: { first: number; last: number; max: number };
}

/** The soak's default load over all edges: a fifth of what one edge did over spread keys on a quiet machine (9.4k/s). */
const soakLoadRps = 2_000;

/** Paced Checks over all keys on every edge for `soakS`, the servers' own loops (rating, polls) running as usual. */
export async function runSoak(options: ScaleOptions): Promise<SoakResult> {
  const keys = options.soakKeys;
  const loadRps = options.loadRps ?? soakLoadRps;
  const database = await ensureScaleDatabase(keys, { rebuild: false });
  const deployment = await deploy(database, options);
  const bodies = bodiesFile('scale-soak', Math.min(keys, 50_000), () => randomIndex(keys));
  try {
    await Promise.all(deployment.edges.map(health));
    const loads = deployment.edges.map((edge) => backgroundLoad(edge, bodies, loadRps / deployment.edges.length, options.soakS));
    const windows: Health[] = [];
    const rss: number[] = [];
    const until = performance.now() + (options.soakS + 1) * 1000;
    while (performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, Math.max(0, until - performance.now()))));
      windows.push(combine(await Promise.all(deployment.edges.map(health))));
      rss.push(Math.max(...deployment.edges.map((edge) => edge.memory().rssMb)));
    }
    const results = await Promise.all(loads.map((load) => load.result));
    const checks = results.reduce((sum, each) => sum + each.succeeded + each.failed, 0);
    const totals = windows.at(-1)!; // the counters are totals since start; the event-loop figures are per window
    return {
      keys,
      durationS: options.soakS,
      edges: deployment.edges.length,
      loadRps,
      checks,
      failedChecks: results.reduce((sum, each) => sum + each.failed, 0),
      p99Ms: Math.max(...results.map((each) => each.p99Ms)),
      fallbacks: totals.fallbacks,
      lateReplies: totals.lateReplies,
      eventLoopMaxMs: Math.max(...windows.map((each) => each.eventLoopMaxMs)),
      eventLoopMedianP99Ms: median(windows.map((each) => each.eventLoopP99Ms)),
      windowsOverRedisTimeout: windows.filter((each) => each.eventLoopMaxMs > 50).length,
      windows: windows.length,
      edgeRssMb: { first: rss[0]!, last: rss.at(-1)!, max: Math.max(...rss) },
    };
  } finally {
    rmSync(bodies);
    await deployment.stop();
  }
}

export interface ScaleBenchResult {
  options: Omit<ScaleOptions, 'env'> & { env: string };
  runs: ScaleRun[];
  soak: SoakResult | undefined;
}

/** The sizes, the soak, or both (as the full `npm run bench` does). */
export async function runScaleBench(options: ScaleOptions = scaleOptions(), parts: { sizes: boolean; soak: boolean } = { sizes: true, soak: true }): Promise<ScaleBenchResult> {
  buildDist();
  const runs: ScaleRun[] = [];
  if (parts.sizes) for (const keys of options.sizes) runs.push(await runSize(keys, options));
  return { options: { ...options, env: JSON.stringify(options.env) }, runs, soak: parts.soak ? await runSoak(options) : undefined };
}

/** Which parts the command line asks for: `scale` the sizes, `soak` the soak; both when it names neither. */
export function scaleParts(parts: string[] = (process.env.TOLLGATE_SCALE_PARTS ?? 'sizes,soak').split(',')): { sizes: boolean; soak: boolean } {
  const sizes = parts.includes('sizes') || parts.includes('scale');
  const soak = parts.includes('soak');
  return sizes || soak ? { sizes, soak } : { sizes: true, soak: true };
}

/** A figure, or a dash when there is none (no Check answered in a round gives no ratio). */
const fixed = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '—');
const n = (value: number) => value.toLocaleString('en-US');

export function scaleSection(result: ScaleBenchResult): string {
  const { options } = result;
  const deployment = `${options.edges} edge replica(s) running \`tollgate ${options.edgeArgs.join(' ')}\`${options.controlArgs ? `, the admin calls to a control process apart (\`tollgate ${options.controlArgs.join(' ')}\`)` : ', the admin calls to the first'}${options.env !== '{}' ? `, with ${options.env}` : ''}`;
  const rows = result.runs.map((run) => {
    const edges = run.starts.filter((start) => start.name.startsWith('edge'));
    const t = run.throughput;
    const r = run.revocation;
    return `| ${n(run.keys)} | ${fixed(run.database.generationS, 1)}${run.database.reused ? ' (reused)' : ''} | ${edges.map((edge) => fixed(edge.readyS, 1)).join(' / ')} | ${edges.map((edge) => edge.rssAtReadyMb).join(' / ')} | ${fixed(run.identityRebuildS, 1)} | ${run.edgeRssAfterLoadMb} / ${run.edgePeakRssMb} | ${fixed(t.singleKeyRps)} | ${fixed(t.spreadRps)} | **${fixed(t.ratio, 2)}** (${t.ratios.map((ratio) => fixed(ratio, 2)).join(', ')}) | ${n(r.loadRps)} | ${fixed(r.p50Ms)} / ${fixed(r.p90Ms)} / **${fixed(r.p99Ms)}** / ${fixed(r.maxMs)}${r.notEnforced ? ` (${r.notEnforced} not within 30 s)` : ''} | ${fixed(run.edgeIdleCpuPercent)} | ${run.health.fallbacks} | ${fixed(run.health.eventLoopMaxMs)} |`;
  });
  const soak = result.soak;
  return `## Scale: keys in the millions

Keys in the real format generated straight into PostgreSQL (\`bench/scale-keys.ts\`: half as many customers and
subscriptions, two keys each, all on the Growth plan of \`bench/catalog-realistic.yaml\`), counters in Redis; ${deployment}.
Each process is the built CLI started alone; **ready** is from its spawn to \`/readyz\` answering 200; then
${options.settleS} s unloaded (the busiest edge's CPU meanwhile: **idle edge CPU**). **Throughput**:
${options.rounds} alternating rounds of ${options.roundS} s on the first edge by \`bench/check-load.ts\` (4 connections ×
32 streams, every endpoint), on key 0 alone or on a key drawn uniformly from the whole set for each request; the
ratio is spread / one key within a round, median over rounds (target ≥ 0.9). **Revocation**: ${options.revocations}
random keys revoked through the admin API, one every 200 ms, while paced Checks (keys drawn from the whole set; unless
set, half of the spread figure on each edge, as below) load every edge; each latency runs from the admin call to the last edge denying a
Check with that key (each edge probed every 10 ms); target p99 ≤ 1,000 ms. Fallbacks: counter-store calls answered
from the failure mode (\`tollgate_quota_store_failures_total\`), summed over edges; event-loop delay: the largest
\`tollgate_nodejs_eventloop_lag_max_seconds\` (perf_hooks monitorEventLoopDelay) over the run.

| keys | generation (s) | ready per edge (s) | RSS at ready per edge (MB) | identity records complete (s after ready) | edge RSS after load / peak (MB) | one key (req/s) | spread (req/s) | spread / one key | load during revocations (Checks/s) | revoke → denied everywhere p50 / p90 / p99 / max (ms) | idle edge CPU (% of a core) | fallbacks | event-loop max (ms) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.length > 0 ? rows.join('\n') : '| (sizes not run) |'}
${
  soak
    ? `
### Soak: ${n(soak.keys)} keys, ${soak.durationS} s

${soak.edges} edges under ${n(soak.loadRps)} paced Checks/s (keys over the whole set), the servers' own loops (identity
polls and reloads, rating passes) running as configured: **${soak.fallbacks} counter-store fallbacks** (target 0) and
${soak.lateReplies} late Redis replies; event-loop delay per 10-s window: worst ${fixed(soak.eventLoopMaxMs)} ms, median
window p99 ${fixed(soak.eventLoopMedianP99Ms, 1)} ms, ${soak.windowsOverRedisTimeout} of ${soak.windows} windows with a
stall over the Redis timeout (50 ms). Checks ${n(soak.checks)} (${soak.failedChecks} failed), p99 ${fixed(soak.p99Ms, 1)} ms;
edge RSS ${soak.edgeRssMb.first} → ${soak.edgeRssMb.last} MB (max ${soak.edgeRssMb.max}).
`
    : ''
}
\`\`\`json
${JSON.stringify(result, null, 2)}
\`\`\`
`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runScaleBench(scaleOptions(), scaleParts(process.argv.slice(2)));
  console.log(JSON.stringify(result, null, 2));
  console.log(scaleSection(result));
  process.exit(0);
}
