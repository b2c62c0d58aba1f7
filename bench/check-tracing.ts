/**
 * What tracing costs the Check: the same Tollgate as bench/check.ts (Redis counters, bench/catalog-realistic.yaml,
 * 1,000 keys of 100 customers) twice, tracing off and tracing on, measured back to back in every round. The traced
 * one exports over OTLP/HTTP (protobuf, the default) to a null collector (bench/null-collector.ts).
 *
 * The mode says what the traced server records:
 *   sampled    every CheckRequest carries a sampled W3C traceparent: every Check is recorded and exported (three
 *              spans each). The worst case.
 *   ratio      no traceparent, OTEL_TRACES_SAMPLER=parentbased_traceidratio with 0.01: one Check in a hundred
 *              recorded, as a busy production setting would.
 *   unsampled  every CheckRequest carries a traceparent its caller did not sample: the context is read, nothing
 *              is recorded.
 * Both servers get the same requests (trace headers included), so they decode the same bytes.
 *
 * Usage: tsx bench/check-tracing.ts [mode] [durationS] [forks] [roundsPerFork]; prints the result as JSON.
 * `npm run bench` runs the sampled and ratio modes into bench/RESULTS.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeBodies } from './check-load.js';
import {
  checkMethod,
  checkRequestFrame,
  h2load,
  median,
  medianRun,
  mixedLoad,
  realisticRequests,
  rotate,
  startTollgateWithKeys,
  StealMeter,
  warmUpS,
  writeFile,
  type LoadResult,
} from './check.js';
import { buildDist, startBenchProcess, type BenchProcess } from './processes.js';

export const tracingBenchModes = ['sampled', 'ratio', 'unsampled'] as const;
export type TracingBenchMode = (typeof tracingBenchModes)[number];

const variants = ['off', 'on'] as const;
type Variant = (typeof variants)[number];
type Round = Partial<Record<Variant, LoadResult>>;

export interface TracingComparison {
  /** The median round's figures (by throughput) of each server. */
  off: LoadResult;
  on: LoadResult;
  /** Median over the rounds of the traced server's throughput divided by the untraced one's in the same round. */
  ratio: number;
  ratios: number[];
}

export interface CheckTracingBenchResult {
  mode: TracingBenchMode;
  forks: number;
  rounds: number;
  durationS: number;
  warmUpS: number;
  keys: number;
  bodies: number;
  /** Share of this machine's CPU time that the hypervisor gave to other guests while measuring. */
  stealShare: number;
  singleKey: TracingComparison;
  manyKeys: TracingComparison;
  /** What the null collector received from the traced server, over every fork: evidence that spans went out. */
  exported: { requests: number; bytes: number };
}

/** The traced server's environment: everything else as the untraced one, its own Redis prefix. */
function tracingEnv(mode: TracingBenchMode, collectorPort: number): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}`,
    OTEL_SERVICE_NAME: 'tollgate-bench',
    TOLLGATE_REDIS_PREFIX: `bench${process.pid}traced`,
    ...(mode === 'ratio' ? { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' } : {}),
  };
}

/** The trace headers of one request: a caller's traceparent, sampled or not, or none. */
function traceHeaders(mode: TracingBenchMode): Record<string, string> {
  if (mode === 'ratio') return {};
  return { traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-${mode === 'sampled' ? '01' : '00'}` };
}

interface Measured {
  process: BenchProcess<unknown>;
  port: number;
  singleBody: string;
  bodiesFile: string;
}

function compare(rounds: Round[]): TracingComparison {
  const ratios = rounds.map((round) => round.on!.requestsPerSecond / round.off!.requestsPerSecond);
  return { off: medianRun(rounds.map((round) => round.off!)), on: medianRun(rounds.map((round) => round.on!)), ratio: median(ratios), ratios };
}

export async function runCheckTracingBench(
  mode: TracingBenchMode = 'sampled',
  options: { durationS: number; forks: number; roundsPerFork: number; build?: boolean } = { durationS: 3, forks: 2, roundsPerFork: 5 },
): Promise<CheckTracingBenchResult> {
  if (options.build !== false) buildDist();
  const saturate = { durationS: options.durationS, clients: 4, streams: 32 };
  const steal = new StealMeter();
  const method = checkMethod();
  const single: Round[] = [];
  const many: Round[] = [];
  const exported = { requests: 0, bytes: 0 };
  let keys = 0;
  let bodies = 0;
  for (let fork = 0; fork < options.forks; fork++) {
    const dataDirs = [mkdtempSync(join(tmpdir(), 'tollgate-bench-off-')), mkdtempSync(join(tmpdir(), 'tollgate-bench-on-'))] as const;
    const started: BenchProcess<unknown>[] = [];
    try {
      const collector = await startBenchProcess<{ port: number }>('bench/null-collector.ts');
      started.push(collector);
      const off = await startTollgateWithKeys(dataDirs[0]);
      started.push(off);
      const on = await startTollgateWithKeys(dataDirs[1], tracingEnv(mode, collector.info.port));
      started.push(on);
      keys = off.keys.length;
      const singleHeaders = traceHeaders(mode);
      const headers = Array.from({ length: keys * 4 }, () => traceHeaders(mode));
      bodies = headers.length;
      const measured = (server: typeof off): Measured => ({
        process: server,
        port: server.info.grpcPort,
        singleBody: writeFile('single', checkRequestFrame(method, server.keys[0]!, 'GET', '/v2/products', singleHeaders)),
        bodiesFile: writeFile(
          'bodies',
          encodeBodies(
            headers.map((extra, n) => {
              const [verb, path] = realisticRequests[n % realisticRequests.length]!(n);
              return checkRequestFrame(method, server.keys[(n * 7) % server.keys.length]!, verb, path, extra);
            }),
          ),
        ),
      });
      const servers: Record<Variant, Measured> = { off: measured(off), on: measured(on) };
      for (const variant of variants) {
        const server = servers[variant];
        h2load(server.process, server.port, server.singleBody, saturate);
        mixedLoad(server.process, server.port, server.bodiesFile, saturate);
      }
      const first = fork * options.roundsPerFork;
      steal.measure(() => {
        single.push(...rotate(first, options.roundsPerFork, variants, (variant) => h2load(servers[variant].process, servers[variant].port, servers[variant].singleBody, saturate)));
        many.push(...rotate(first, options.roundsPerFork, variants, (variant) => mixedLoad(servers[variant].process, servers[variant].port, servers[variant].bodiesFile, saturate)));
      });
      const stats = (await (await fetch(`http://127.0.0.1:${collector.info.port}/stats`)).json()) as { requests: number; bytes: number };
      exported.requests += stats.requests;
      exported.bytes += stats.bytes;
    } finally {
      await Promise.all(started.map((server) => server.stop()));
      for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
    }
  }
  return {
    mode,
    forks: options.forks,
    rounds: options.forks * options.roundsPerFork,
    durationS: options.durationS,
    warmUpS,
    keys,
    bodies,
    stealShare: steal.share,
    singleKey: compare(single),
    manyKeys: compare(many),
    exported,
  };
}

/** The RESULTS.md section for runs in one or more modes. */
export function tracingSection(results: CheckTracingBenchResult[]): string {
  const fixed = (value: number, digits = 2) => value.toFixed(digits);
  const rows = results.flatMap((result) =>
    (['manyKeys', 'singleKey'] as const).map((traffic) => {
      const { off, on, ratio, ratios } = result[traffic];
      return `| ${result.mode} | ${traffic === 'manyKeys' ? 'many keys' : 'one key'} | ${fixed(off.requestsPerSecond, 0)} | ${fixed(on.requestsPerSecond, 0)} | **${fixed(ratio)}×** (${ratios.map((each) => fixed(each)).join(', ')}) | ${fixed(off.cpuMicrosPerRequest, 1)} / ${fixed(on.cpuMicrosPerRequest, 1)} | ${fixed(off.p99Ms)} / ${fixed(on.p99Ms)} |`;
    }),
  );
  const first = results[0]!;
  return `## Check with tracing off and on

The same Tollgate as above (Redis counters, ${first.keys} keys), twice: tracing off, and tracing on exporting over
OTLP/HTTP (protobuf, batched) to a null collector on the same machine (\`bench/check-tracing.ts\`). Both get the same
requests, trace headers included; each round measures both back to back, ${first.rounds} rounds of ${first.durationS} s per traffic
over ${first.forks} fresh sets of processes. Modes: **sampled**, every Check carries a sampled W3C \`traceparent\`, so
every Check is recorded and exported (three spans); **ratio**, no \`traceparent\` and
\`OTEL_TRACES_SAMPLER=parentbased_traceidratio\` at 0.01; **unsampled**, a \`traceparent\` whose caller did not sample.
With tracing off the Check reads no trace header and allocates nothing for tracing.

| mode | traffic | off req/s | on req/s | on / off (rounds) | server CPU/req off / on (µs) | p99 off / on (ms) |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Exported to the null collector: ${results.map((result) => `${result.mode} ${result.exported.requests} requests, ${(result.exported.bytes / 2 ** 20).toFixed(1)} MiB`).join('; ')}.
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [mode = 'sampled', ...numbers] = process.argv.slice(2);
  if (!(tracingBenchModes as readonly string[]).includes(mode)) {
    console.error(`usage: tsx bench/check-tracing.ts [${tracingBenchModes.join('|')}] [durationS] [forks] [roundsPerFork]`);
    process.exit(2);
  }
  const [durationS, forks, roundsPerFork] = numbers.map(Number);
  console.log(JSON.stringify(await runCheckTracingBench(mode as TracingBenchMode, { durationS: durationS || 3, forks: forks || 2, roundsPerFork: roundsPerFork || 5 }), null, 2));
}
