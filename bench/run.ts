/**
 * `npm run bench`: every benchmark, each against a baseline measured in the same run, written to bench/RESULTS.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { alsDecoderSection, runAlsDecoderPieceBench } from './als-decoder-piece.js';
import type { AlsIngestResult } from './als-ingest.js';
import { checkPiecesSection, runCheckPiecesBench } from './check-pieces.js';
import { runCheckBench, serverNames, type CheckBenchResult, type SaturationResult, type ServerName } from './check.js';
import { runCheckTracingBench, tracingSection, type CheckTracingBenchResult } from './check-tracing.js';
import { redisBatchSection, runRedisBatchPieceBench } from './redis-batch-piece.js';
import { runScaleBench, scaleOptions, scaleParts, scaleSection } from './scale.js';

const optional = async <T>(module: string, exportName: string): Promise<(() => Promise<T>) | undefined> => {
  if (!existsSync(new URL(module, import.meta.url))) return undefined;
  return (await import(module))[exportName] as () => Promise<T>;
};

const fixed = (value: number, digits = 2) => value.toFixed(digits);

const serverLabels: Record<ServerName, string> = {
  'grpc-js': 'null server, grpc-js (baseline)',
  connect: 'null server, @connectrpc/connect-node',
  own: "null server, Tollgate's transport (src/grpc/transport.ts)",
  bare: 'bare node:http2 responder (the ceiling)',
  tollgate: 'Tollgate, full Check',
};

function saturationTable(result: SaturationResult): string {
  const rows = serverNames
    .filter((name) => result.servers[name])
    .map((name) => {
      const run = result.servers[name]!;
      const ratio = name === 'tollgate' ? `**${fixed(result.ratios[name]!)}×**` : `${fixed(result.ratios[name]!)}×`;
      return `| ${serverLabels[name]} | ${fixed(run.requestsPerSecond, 0)} | ${ratio} | ${fixed(run.cpuMicrosPerRequest, 1)} | ${fixed(run.p50Ms)} / ${fixed(run.p99Ms)} | ${run.failed} |`;
    });
  return ['| server | req/s | vs grpc-js | server CPU/req (µs) | p50 / p99 (ms) | failed |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

function checkSection(result: CheckBenchResult): string {
  const { singleKey, manyKeys, halfLoad: h } = result;
  const list = (values: number[], digits: number) => values.map((value) => fixed(value, digits)).join(', ');
  const ceiling = (s: SaturationResult) => fixed(s.ratios.tollgate! / s.ratios.bare!);
  return `## Check (ext_authz) with Redis counters vs a null grpc-js ext_authz server

Tollgate runs the full Check on \`bench/catalog-realistic.yaml\` (12 endpoints, most with path parameters; a plan
with two rate-limit windows, one per subscription and one per key, and a monthly quota) with ${result.keys} keys of
${result.customers} customers in PostgreSQL and counters in Redis: key hash lookup, route with parameters,
entitlement, one Redis Lua call counting three counters, the response with identity headers, RateLimit headers and
signed dynamic metadata. The null servers answer OK without looking at the request
(\`bench/null-servers.ts\`): grpc-js, the baseline every ratio is taken against; the candidate transports
@connectrpc/connect-node and Tollgate's own (\`src/grpc/transport.ts\`), each with a null handler; and a bare
node:http2 responder framing the same bytes by hand, the ceiling of any gRPC server on node:http2.

**One key**: h2load (1 thread, 4 connections × 32 streams) sends one CheckRequest (GET /v2/products) over and over.
**Many keys**: \`bench/check-load.ts\` (a Node process, 4 connections × 32 streams) cycles through ${result.bodies}
CheckRequests over all ${result.keys} keys and every endpoint, with realistic headers. Its own CPU is part of the
machine's two cores, as h2load's is.

${result.rounds} rounds of ${result.durationS} s (after ${result.warmUpS} s of warm-up) per traffic, spread over ${result.forks} fresh sets of server
processes (each set loaded once, unmeasured, first). Each round measures every server back to back, starting one
further along the list each round, so that drift on the shared machine hits all alike; ratios are taken within a
round and the median over rounds is reported, with the median round's figures. Server CPU counts all of the server
process's threads (from /proc). While measuring, the hypervisor gave ${fixed(100 * result.stealShare, 1)}% of this machine's CPU time to other guests (steal).

### Saturation, many keys (the target: ≥ 1.3× grpc-js)

${saturationTable(manyKeys)}

Tollgate's ratio per round: ${list(manyKeys.tollgateRatios, 2)}; Tollgate / bare responder: ${ceiling(manyKeys)}×.

### Saturation, one key

${saturationTable(singleKey)}

Tollgate's ratio per round: ${list(singleKey.tollgateRatios, 2)}; Tollgate / bare responder: ${ceiling(singleKey)}×.

### Half of the null server's saturation rate, many keys (${h.rate} req/s; the target: ≤ +1 ms p99)

| | null grpc-js | Tollgate | added |
|---|---|---|---|
| throughput (req/s) | ${fixed(h.null.requestsPerSecond, 0)} | ${fixed(h.tollgate.requestsPerSecond, 0)} | |
| p50 (ms) | ${fixed(h.null.p50Ms)} | ${fixed(h.tollgate.p50Ms)} | ${fixed(h.addedP50Ms)} |
| p99 (ms) | ${fixed(h.null.p99Ms)} | ${fixed(h.tollgate.p99Ms)} | **${fixed(h.addedP99Ms)}**; rounds: ${list(h.addedP99sMs, 2)} |

Allow decisions counted by Tollgate's own metric, all forks: ${result.allowDecisions}.
`;
}

const resultsFile = new URL('./RESULTS.md', import.meta.url);
const scaleHeading = '## Scale: keys in the millions';

// `npm run bench -- scale` (or `soak`): the scale bench alone (long at 10M keys), replacing its section of RESULTS.md.
const args = process.argv.slice(2);
if (args.includes('scale') || args.includes('soak')) {
  const result = await runScaleBench(scaleOptions(), scaleParts(args));
  console.log(JSON.stringify(result, null, 2));
  const results = readFileSync(resultsFile, 'utf8');
  const at = results.indexOf(scaleHeading);
  const next = at < 0 ? -1 : results.indexOf('\n## ', at + scaleHeading.length);
  const section = scaleSection(result);
  writeFileSync(resultsFile, at < 0 ? `${results}\n${section}` : `${results.slice(0, at)}${section}${next < 0 ? '' : results.slice(next)}`);
  console.log('wrote the scale section of bench/RESULTS.md');
  process.exit(0);
}

const sections: string[] = [];
console.log('Check benchmark…');
const check = await runCheckBench();
console.log(JSON.stringify(check, null, 2));
sections.push(checkSection(check));

const tracingRuns: CheckTracingBenchResult[] = [];
for (const mode of ['sampled', 'ratio'] as const) {
  console.log(`Check tracing benchmark (${mode})…`);
  tracingRuns.push(await runCheckTracingBench(mode, { durationS: 3, forks: 2, roundsPerFork: 5, build: false }));
  console.log(JSON.stringify(tracingRuns.at(-1), null, 2));
}
sections.push(tracingSection(tracingRuns));

const als = await optional<AlsIngestResult>('./als-ingest.ts', 'runAlsIngestBench');
if (als) {
  // Each run has its own server and scratch database; PostgreSQL's state (checkpoints, cache) varies between them.
  const runs: AlsIngestResult[] = [];
  for (let run = 0; run < 3; run++) {
    console.log(`ALS ingest benchmark, run ${run + 1}…`);
    runs.push(await als());
    console.log(JSON.stringify(runs.at(-1), null, 2));
  }
  const rates = runs.map((run) => run.entriesPerSecond);
  const result = runs.find((run) => run.entriesPerSecond === [...rates].sort((a, b) => a - b)[1])!;
  sections.push(
    `## ALS ingest into PostgreSQL\n\n**${result.entriesPerSecond} entries/s** sustained, the median of ${runs.length} runs ` +
      `(runs: ${rates.join(', ')}; target ≥ 100,000): ${result.entries} entries over ${result.streams} gRPC streams into ` +
      `the real server's spool and PostgreSQL. The figure is absolute, so it moves with the machine: the null ext_authz ` +
      `server above, a fixed amount of work, did ${check.singleKey.servers['grpc-js']!.requestsPerSecond.toFixed(0)} req/s in this run ` +
      `(and ${check.singleKey.servers['grpc-js']!.cpuMicrosPerRequest.toFixed(1)} µs of CPU per request). CPU per entry in the median ` +
      `run, which moves less with the machine: Tollgate ${result.cpuMicrosPerEntry.tollgate} µs, PostgreSQL ` +
      `${result.cpuMicrosPerEntry.postgres} µs, the client playing Envoy ${result.cpuMicrosPerEntry.client} µs; on ` +
      `${cpus().length} cores their sum bounds the rate at ${Math.round((cpus().length * 1e6) / (result.cpuMicrosPerEntry.tollgate + result.cpuMicrosPerEntry.postgres + result.cpuMicrosPerEntry.client))} entries/s. The median run:\n\n\`\`\`json\n${JSON.stringify(result, null, 2)}\n\`\`\`\n`,
  );
}
const rating = await optional<Record<string, number>>('./rating.ts', 'runRatingBench');
if (rating) {
  console.log('Rating benchmark…');
  const result = await rating();
  console.log(JSON.stringify(result, null, 2));
  sections.push(
    `## Rating a month\n\n**${result.seconds} s** (target ≤ 30 s) to rate and finalize one month for ${result.customers} customers ` +
      `whose ${result.events} usage events are held as ${result.rollupRows} rollup rows (rating reads rollups, not events).\n\n` +
      `\`\`\`json\n${JSON.stringify(result, null, 2)}\n\`\`\`\n`,
  );
}

// Pieces against their library baselines, in this run (Tollgate issue 22): a dependency bump that undoes a gain shows.
console.log('Check pieces…');
const checkPiecesResult = await runCheckPiecesBench();
console.log(JSON.stringify(checkPiecesResult, null, 2));
sections.push(checkPiecesSection(checkPiecesResult));
console.log('ALS decoder piece…');
const alsDecoder = await runAlsDecoderPieceBench();
console.log(JSON.stringify(alsDecoder, null, 2));
sections.push(alsDecoderSection(alsDecoder));
console.log('Redis batch piece…');
const redisBatch = await runRedisBatchPieceBench();
console.log(JSON.stringify(redisBatch, null, 2));
sections.push(redisBatchSection(redisBatch));
console.log('Scale benchmark…');
const scale = await runScaleBench();
console.log(JSON.stringify(scale, null, 2));
sections.push(scaleSection(scale));

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${execFileSync('h2load', ['--version'], { encoding: 'utf8' }).split('\n')[0]}`;
writeFileSync(
  resultsFile,
  `# Benchmark results\n\nCommand: \`npm run bench\` · ${new Date().toISOString().slice(0, 10)} · ${machine}.\nh2load, Redis and PostgreSQL share the same two cores as the server under test.\n\n${sections.join('\n')}`,
);
console.log('wrote bench/RESULTS.md');
