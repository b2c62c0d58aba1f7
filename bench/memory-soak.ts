/**
 * Memory under a mixed load (Tollgate issue 24, "RSS flat over a 3-minute mixed Check and access-log load"): the real
 * server (dist/, Redis counters, PostgreSQL records on a scratch database, bench/catalog-realistic.yaml with 1,000
 * keys of 100 customers) takes paced Checks over every key and endpoint (bench/check-load.ts, in a process of its own)
 * and, at the same time, access-log streams whose entries it verifies, spools and writes to PostgreSQL. Its RSS (from
 * /proc) and V8 heap (from its own /metrics) are sampled every few seconds. After a warm-up (JIT, caches filling,
 * every key's compiled plans bound), the least-squares slope of RSS must stay under a bound: memory that grows with
 * traffic rather than with the data held is a leak that only shows over hours.
 *
 * Standalone: `npx tsx bench/memory-soak.ts`; TOLLGATE_SOAK_SECONDS shortens the load (default 180) to check that
 * the bench works. TOLLGATE_SOAK_CHECKS_PER_S and TOLLGATE_SOAK_ENTRIES_PER_S set the rates (default 2000 and 5000).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { MessageFactory, RawAccessLogClient, ScratchDatabase, signingKey } from './als-ingest.js';
import { encodeBodies, type CheckLoadOptions, type CheckLoadResult } from './check-load.js';
import { checkMethod, checkRequestFrame, realisticRequests, startTollgateWithKeys, writeFile } from './check.js';
import { buildDist } from './processes.js';

export interface MemorySample {
  /** Seconds since the load started. */
  atS: number;
  rssMiB: number;
  heapUsedMiB: number;
  /** V8's heap reserved (what of the RSS the heap holds) and memory outside it (Buffers). */
  heapTotalMiB: number;
  externalMiB: number;
}

export interface MemorySoakResult {
  durationS: number;
  warmUpS: number;
  sampleEveryS: number;
  checksPerSecond: number;
  entriesPerSecond: number;
  samples: MemorySample[];
  /** RSS at the end of the warm-up (the first sample after it), at the end, and the most over the whole run. */
  rss: { startMiB: number; endMiB: number; maxMiB: number; slopeMiBPerMin: number };
  heapUsed: { startMiB: number; endMiB: number; maxMiB: number; slopeMiBPerMin: number };
  heapTotal: { startMiB: number; endMiB: number; maxMiB: number; slopeMiBPerMin: number };
  boundMiBPerMin: number;
  passed: boolean;
  check: CheckLoadResult;
  /** Access-log entries the server committed to PostgreSQL during the run. */
  entriesStored: number;
}

/**
 * The bound: RSS may grow by at most this much per minute after the warm-up, by the least-squares slope of the samples
 * (a 3-minute run may end at most 6 MiB above where it started, GC's sawtooth aside).
 */
const rssSlopeBoundMiBPerMin = 2;
const sampleEveryS = 5;
const mib = 2 ** 20;

/** Least-squares slope of `value` against `atS`, per minute. */
function slopePerMinute(samples: readonly MemorySample[], value: (sample: MemorySample) => number): number {
  const n = samples.length;
  if (n < 2) return 0;
  const meanT = samples.reduce((sum, each) => sum + each.atS, 0) / n;
  const meanV = samples.reduce((sum, each) => sum + value(each), 0) / n;
  let covariance = 0;
  let variance = 0;
  for (const each of samples) {
    covariance += (each.atS - meanT) * (value(each) - meanV);
    variance += (each.atS - meanT) ** 2;
  }
  return (covariance / variance) * 60;
}

function rssMiB(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) / 1024;
}

function metricValue(exposition: string, name: string): number {
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(exposition)?.[1] ?? NaN);
}

export async function runMemorySoakBench(
  options = {
    durationS: Number(process.env.TOLLGATE_SOAK_SECONDS ?? 180),
    checksPerSecond: Number(process.env.TOLLGATE_SOAK_CHECKS_PER_S ?? 2_000),
    entriesPerSecond: Number(process.env.TOLLGATE_SOAK_ENTRIES_PER_S ?? 5_000),
    build: true,
  },
): Promise<MemorySoakResult> {
  const { durationS, checksPerSecond, entriesPerSecond } = options;
  // A sixth of the run, at most 30 s: long enough for the JIT and for every key's plans to be bound.
  const warmUpS = Math.min(30, Math.round(durationS / 6));
  if (options.build) buildDist();
  const database = await ScratchDatabase.create();
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-bench-soak-'));
  const stops: (() => Promise<void>)[] = [() => database.drop(), async () => rmSync(dataDir, { recursive: true, force: true })];
  try {
    const server = await startTollgateWithKeys(dataDir, { TOLLGATE_DATABASE_URL: database.url, TOLLGATE_USAGE_SIGNING_KEY: signingKey });
    stops.unshift(() => server.stop());
    const method = checkMethod();
    const frames = Array.from({ length: server.keys.length * 4 }, (_, n) => {
      const [verb, path] = realisticRequests[n % realisticRequests.length]!(n);
      return checkRequestFrame(method, server.keys[(n * 7) % server.keys.length]!, verb, path);
    });
    const metrics = async () => (await fetch(`http://127.0.0.1:${server.info.httpPort}/metrics`)).text();
    const stored = async () => metricValue(await metrics(), 'tollgate_usage_events_stored_total');
    const storedBefore = await stored();

    const load: CheckLoadOptions = { port: server.info.grpcPort, bodiesFile: writeFile('soak-bodies', encodeBodies(frames)), connections: 4, streams: 32, durationS, warmUpS: 0, rps: checksPerSecond };
    const checks = promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/check-load.ts', JSON.stringify(load)], { encoding: 'utf8' });
    // Envoy keeps a few long-lived access-log streams per replica; each here carries its share of the entries.
    const streams = 4;
    const messages = new MessageFactory(50);
    const client = new RawAccessLogClient(`127.0.0.1:${server.info.grpcPort}`);
    const perStreamPerSecond = entriesPerSecond / 50 / streams;
    const logs = Promise.all(Array.from({ length: streams }, () => client.streamAtRate(Math.round(perStreamPerSecond * durationS), () => messages.next(), perStreamPerSecond)));

    const samples: MemorySample[] = [];
    const started = performance.now();
    for (let at = 0; at <= durationS; at += sampleEveryS) {
      const wait = started + at * 1000 - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const exposition = await metrics();
      samples.push({
        atS: at,
        rssMiB: rssMiB(server.pid),
        heapUsedMiB: metricValue(exposition, 'tollgate_nodejs_heap_size_used_bytes') / mib,
        heapTotalMiB: metricValue(exposition, 'tollgate_nodejs_heap_size_total_bytes') / mib,
        externalMiB: metricValue(exposition, 'tollgate_nodejs_external_memory_bytes') / mib,
      });
    }
    const [{ stdout }] = await Promise.all([checks, logs]);
    client.close();
    const check = JSON.parse(stdout.trim().split('\n').at(-1)!) as CheckLoadResult;
    const entriesStored = (await stored()) - storedBefore;

    const measured = samples.filter((sample) => sample.atS >= warmUpS);
    const summary = (value: (sample: MemorySample) => number) => ({
      startMiB: round(value(measured[0]!)),
      endMiB: round(value(measured.at(-1)!)),
      maxMiB: round(Math.max(...samples.map(value))),
      slopeMiBPerMin: round(slopePerMinute(measured, value)),
    });
    const rss = summary((sample) => sample.rssMiB);
    return {
      durationS,
      warmUpS,
      sampleEveryS,
      checksPerSecond,
      entriesPerSecond,
      samples: samples.map((sample) => ({
        atS: sample.atS,
        rssMiB: round(sample.rssMiB),
        heapUsedMiB: round(sample.heapUsedMiB),
        heapTotalMiB: round(sample.heapTotalMiB),
        externalMiB: round(sample.externalMiB),
      })),
      rss,
      heapUsed: summary((sample) => sample.heapUsedMiB),
      heapTotal: summary((sample) => sample.heapTotalMiB),
      boundMiBPerMin: rssSlopeBoundMiBPerMin,
      passed: rss.slopeMiBPerMin <= rssSlopeBoundMiBPerMin,
      check,
      entriesStored,
    };
  } finally {
    for (const stop of stops) await stop();
  }
}

const round = (value: number) => Math.round(value * 10) / 10;

export function memorySoakSection(result: MemorySoakResult): string {
  const { rss, heapUsed: heap, heapTotal: reserved } = result;
  return `## Memory: RSS over a ${result.durationS} s mixed Check and access-log load

The real server (Redis counters, PostgreSQL on a scratch database, \`bench/catalog-realistic.yaml\` with 1000 keys of
100 customers) takes ${result.checksPerSecond} Checks/s over every key and endpoint (\`bench/check-load.ts\`) and, at the same time,
${result.entriesPerSecond} access-log entries/s on 4 streams, which it verifies, spools and writes to PostgreSQL
(\`bench/memory-soak.ts\`). Its RSS (from /proc) and V8 heap (its own /metrics) are sampled every ${result.sampleEveryS} s; the first
${result.warmUpS} s are warm-up. The bound: RSS's least-squares slope after the warm-up ≤ ${result.boundMiBPerMin} MiB per minute.

| | after warm-up (MiB) | end (MiB) | max (MiB) | slope after warm-up (MiB/min) |
|---|---|---|---|---|
| RSS | ${rss.startMiB} | ${rss.endMiB} | ${rss.maxMiB} | **${rss.slopeMiBPerMin}** |
| V8 heap used | ${heap.startMiB} | ${heap.endMiB} | ${heap.maxMiB} | ${heap.slopeMiBPerMin} |
| V8 heap reserved | ${reserved.startMiB} | ${reserved.endMiB} | ${reserved.maxMiB} | ${reserved.slopeMiBPerMin} |

**${result.passed ? 'Pass' : 'FAIL'}** (RSS slope ${rss.slopeMiBPerMin} MiB/min, bound ${result.boundMiBPerMin}). Checks answered: ${result.check.succeeded} (${result.check.failed} failed),
${result.check.requestsPerSecond.toFixed(0)}/s; access-log entries stored: ${result.entriesStored}.
RSS (MiB) every ${result.sampleEveryS} s: ${result.samples.map((sample) => sample.rssMiB.toFixed(0)).join(', ')}.
V8 heap reserved (MiB): ${result.samples.map((sample) => sample.heapTotalMiB.toFixed(0)).join(', ')}.
`;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await runMemorySoakBench();
  console.log(JSON.stringify({ ...result, samples: undefined }, null, 2));
  console.log(memorySoakSection(result));
}
