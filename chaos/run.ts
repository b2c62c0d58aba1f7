/**
 * `npm run chaos [-- SCENARIO…] [--quick]`: breaks Redis, PostgreSQL and the server itself under load, sends
 * hostile webhooks and fuzzed inputs, and writes the figures to docs/RELIABILITY.md. Every process it breaks is its
 * own (Redis, PostgreSQL and Tollgate on free loopback ports); the shared services are not touched.
 *
 * A run of every scenario without --quick writes docs/RELIABILITY.md; a partial or quick run writes its Markdown to a
 * temporary file instead, so the published figures always come from one whole run.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PostgresServer } from './processes.js';
import type { ScenarioContext, ScenarioResult } from './scenario.js';
import { fuzz } from './scenarios/fuzz.js';
import { ingestKill } from './scenarios/ingest-kill.js';
import { postgresOutage } from './scenarios/postgres-outage.js';
import { redisOutage } from './scenarios/redis-outage.js';
import { stripeWebhooks } from './scenarios/stripe-webhooks.js';

const scenarios: Record<string, (context: ScenarioContext) => Promise<ScenarioResult>> = {
  'redis-outage': redisOutage,
  'postgres-outage': postgresOutage,
  'ingest-kill': ingestKill,
  'stripe-webhooks': stripeWebhooks,
  fuzz,
};

const { values, positionals } = parseArgs({ allowPositionals: true, options: { quick: { type: 'boolean', default: false } } });
const unknown = positionals.filter((name) => !(name in scenarios));
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}; scenarios: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const selected = positionals.length > 0 ? positionals : Object.keys(scenarios);
const quick = values.quick;

const scratch = mkdtempSync(join(tmpdir(), 'tollgate-chaos-'));
let dataDirs = 0;
const postgres = await PostgresServer.start();
const results: ScenarioResult[] = [];
try {
  for (const name of selected) {
    console.log(`\n== ${name}${quick ? ' (quick)' : ''}`);
    const started = Date.now();
    const result = await scenarios[name]!({
      quick,
      postgres,
      dataDir: () => mkdtempSync(join(scratch, `${name}-${++dataDirs}-`)),
      log: (line) => console.log(`  ${line}`),
    });
    results.push(result);
    console.log(`  (${((Date.now() - started) / 1000).toFixed(0)} s; ${result.findings.length} finding(s))`);
    for (const finding of result.findings) console.log(`  FINDING: ${finding}`);
  }
} finally {
  await postgres.remove();
  rmSync(scratch, { recursive: true, force: true });
}

const complete = !quick && selected.length === Object.keys(scenarios).length;
const target = complete ? new URL('../docs/RELIABILITY.md', import.meta.url).pathname : join(tmpdir(), `tollgate-chaos-${Date.now()}.md`);
writeFileSync(target, report(results));
console.log(`\nwrote ${target}${complete ? '' : ' (a partial or quick run; docs/RELIABILITY.md is written by a full run)'}`);

function report(results: ScenarioResult[]): string {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'} (nproc ${cpus().length}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, Linux`;
  const command = `npm run chaos${quick ? ' -- --quick' : ''}${positionals.length > 0 ? ` ${positionals.join(' ')}` : ''}`;
  const findings = results.flatMap((result) => result.findings.map((finding) => `- **${result.title}**: ${finding}`));
  const cell = (text: string) => text.replaceAll('|', '\\|').replaceAll('\n', ' ');
  const sections = results.map(
    (result) =>
      `## ${result.title}\n\n${result.description}\n\n| ${result.table.head.map(cell).join(' | ')} |\n|${result.table.head.map(() => '---').join('|')}|\n` +
      result.table.rows.map((row) => `| ${row.map(cell).join(' | ')} |`).join('\n') +
      '\n',
  );
  return `# Reliability figures

Written by the chaos harness (\`chaos/\`): command \`${command}\` · ${new Date().toISOString().slice(0, 10)} · ${machine}.
The harness starts its own Redis (\`redis-server --save ''\`), its own PostgreSQL (\`initdb\` into a temporary directory)
and Tollgate servers (\`tollgate serve\` as child processes), breaks them, and drives them with gRPC clients on Envoy's
canonical protos. Load generator, Redis, PostgreSQL and the server under test share the same ${cpus().length} cores.

## Findings

${findings.length > 0 ? findings.join('\n') : 'None: no crash, hang, 500, gRPC INTERNAL, lost or doubled usage.'}

${sections.join('\n')}`;
}
