/**
 * `npm run bench`: every benchmark, each against a baseline measured in the same run, written to bench/RESULTS.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { AlsIngestResult } from './als-ingest.js';
import { runCheckBench, type CheckBenchResult } from './check.js';

const optional = async <T>(module: string, exportName: string): Promise<(() => Promise<T>) | undefined> => {
  if (!existsSync(new URL(module, import.meta.url))) return undefined;
  return (await import(module))[exportName] as () => Promise<T>;
};

const fixed = (value: number, digits = 2) => value.toFixed(digits);

function checkSection(result: CheckBenchResult): string {
  const { saturation: s, halfLoad: h } = result;
  const list = (values: number[], digits: number) => values.map((value) => fixed(value, digits)).join(', ');
  return `## Check (ext_authz) with Redis counters vs a null ext_authz server

h2load, 1 thread, 4 connections; saturation with 32 concurrent streams each; then paced at half of the null
server's saturation rate (${h.rate} req/s). Tollgate runs the full Check: key hash lookup, plan and entitlement,
one Redis Lua call counting a rate limit and a quota, the response with identity headers, RateLimit headers and
dynamic metadata. The null server is the same grpc-js, protos and server options, answering OK without looking
at the request.
${result.rounds} rounds of ${result.durationS} s (after ${result.warmUpS} s of warm-up) for each load, spread over ${result.forks} fresh pairs of server processes per load
(each pair loaded once, unmeasured, before its rounds). A round measures both servers back to back, the null server
first in even rounds and Tollgate first in odd ones, so that drift on the shared machine hits both: throughput and CPU
are medians over the rounds (the ratio is the median of the rounds' ratios), and the half-load rows show the round with
the median added p99. Server CPU per request counts all of the server process's threads (from /proc), over warm-up and
measurement. While the rounds ran, the hypervisor gave ${fixed(100 * result.stealShare, 1)}% of this machine's CPU time to other guests (steal).

| | null server | Tollgate | ratio / added |
|---|---|---|---|
| saturation throughput (req/s) | ${fixed(s.null.requestsPerSecond, 0)} | ${fixed(s.tollgate.requestsPerSecond, 0)} | **${fixed(s.ratio)}×** (target ≥ 0.85×); rounds: ${list(s.ratios, 2)} |
| server CPU per request (µs) | ${fixed(s.null.cpuMicrosPerRequest, 1)} | ${fixed(s.tollgate.cpuMicrosPerRequest, 1)} | ${fixed(s.cpuRatio)}× |
| saturation p50 / p99 (ms) | ${fixed(s.null.p50Ms)} / ${fixed(s.null.p99Ms)} | ${fixed(s.tollgate.p50Ms)} / ${fixed(s.tollgate.p99Ms)} | |
| half-load throughput (req/s) | ${fixed(h.null.requestsPerSecond, 0)} | ${fixed(h.tollgate.requestsPerSecond, 0)} | |
| half-load p50 (ms) | ${fixed(h.null.p50Ms)} | ${fixed(h.tollgate.p50Ms)} | +${fixed(h.addedP50Ms)} |
| half-load p99 (ms) | ${fixed(h.null.p99Ms)} | ${fixed(h.tollgate.p99Ms)} | **+${fixed(h.addedP99Ms)}** (target ≤ +1 ms); rounds: ${list(h.addedP99sMs, 2)} |

Failed requests: null ${s.null.failed + h.null.failed}, Tollgate ${s.tollgate.failed + h.tollgate.failed} (median rounds).
Allow decisions counted by Tollgate's own metric, all forks: ${result.allowDecisions}.
`;
}

const sections: string[] = [];
console.log('Check benchmark…');
const check = await runCheckBench();
console.log(JSON.stringify(check, null, 2));
sections.push(checkSection(check));

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
      `server above, a fixed amount of work, did ${check.saturation.null.requestsPerSecond.toFixed(0)} req/s in this run ` +
      `(and ${check.saturation.null.cpuMicrosPerRequest.toFixed(1)} µs of CPU per request). CPU per entry in the median ` +
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

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${execFileSync('h2load', ['--version'], { encoding: 'utf8' }).split('\n')[0]}`;
writeFileSync(
  new URL('./RESULTS.md', import.meta.url),
  `# Benchmark results\n\nCommand: \`npm run bench\` · ${new Date().toISOString().slice(0, 10)} · ${machine}.\nh2load, Redis and PostgreSQL share the same two cores as the server under test.\n\n${sections.join('\n')}`,
);
console.log('wrote bench/RESULTS.md');
