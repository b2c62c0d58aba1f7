/**
 * PostgreSQL stops (fast shutdown: connections cut) for a minute while Checks and their access logs flow; it comes
 * back and the usage rows are counted against the calls sent.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CheckLoad, formatOutcomes, summarize } from '../load.js';
import { RedisServer, TollgateServer } from '../processes.js';
import type { ScenarioContext, ScenarioResult } from '../scenario.js';
import { settledUsageRows } from '../usage-rows.js';

export async function postgresOutage({ quick, postgres, dataDir, log }: ScenarioContext): Promise<ScenarioResult> {
  const outageMs = quick ? 3_000 : 60_000;
  const steadyMs = quick ? 1_000 : 5_000;
  const ratePerSecond = 200;
  const findings: string[] = [];
  const redis = await RedisServer.start();
  const databaseUrl = await postgres.createDatabase();
  const server = await TollgateServer.start({ TOLLGATE_DATABASE_URL: databaseUrl, TOLLGATE_REDIS_URL: redis.url, TOLLGATE_DATA_DIR: dataDir() });
  try {
    const key = await server.customerKey('postgres-outage');
    await sleep(500);
    const load = new CheckLoad({ address: server.grpcAddress, key, ratePerSecond, accessLogs: true });
    await sleep(steadyMs);
    const stoppedAt = load.now();
    await postgres.stop();
    log(`PostgreSQL stopped at ${Math.round(stoppedAt)} ms`);
    let readyDuring = 0;
    let probes = 0;
    let down = true;
    const probing = (async () => {
      while (down) {
        probes++;
        if ((await server.http('/readyz', { signal: AbortSignal.timeout(1_000) }).then((r) => r.status, () => 0)) === 200) readyDuring++;
        await sleep(1_000);
      }
    })();
    await sleep(outageMs);
    await postgres.launch();
    down = false;
    await probing;
    const returnedAt = load.now();
    log(`PostgreSQL back at ${Math.round(returnedAt)} ms`);
    await sleep(steadyMs);
    await load.stop();
    const during = summarize(load.calls, stoppedAt, returnedAt);
    const all = summarize(load.calls);
    const errors = (outcomes: Record<string, number>) =>
      Object.entries(outcomes).filter(([outcome]) => outcome.startsWith('error')).reduce((sum, [, count]) => sum + count, 0);
    const sent = load.entriesSent;
    const rows = await settledUsageRows(postgres, databaseUrl, sent);
    const lost = Math.max(0, sent - rows.events);
    const doubled = Math.max(0, rows.rolledUp - rows.attributed);
    const figures = {
      outageS: ((returnedAt - stoppedAt) / 1000).toFixed(1),
      checksDuring: during.calls,
      checkErrorsDuring: errors(during.outcomes),
      decisionsDuring: formatOutcomes(during.outcomes),
      latencyDuring: `${during.p50Ms} / ${during.p99Ms}`,
      readyzDuring: `${readyDuring}/${probes} ready`,
      checksTotal: all.calls,
      entriesSent: sent,
      entriesDropped: load.entriesDropped,
      usageRows: rows.events,
      rolledUp: rows.rolledUp,
      lost,
      doubled,
    };
    log(JSON.stringify(figures));
    if (figures.checkErrorsDuring > 0) findings.push(`${figures.checkErrorsDuring} Checks failed (gRPC errors) while PostgreSQL was down.`);
    if (lost > 0) findings.push(`${lost} of ${sent} access-log entries sent never became usage rows (PostgreSQL stopped for ${outageMs / 1000} s).`);
    if (rows.events > sent) findings.push(`${rows.events - sent} more usage rows than entries sent.`);
    if (doubled > 0) findings.push(`the rollups count ${doubled} calls more than the usage rows hold (usage counted twice).`);
    if (!server.running) findings.push('the server exited.');
    return {
      title: 'PostgreSQL outage while Checks and access logs flow',
      description:
        `${ratePerSecond} Checks/s with Redis up; each call's access-log entry (its request id and the Check's dynamic metadata, as Envoy ` +
        `copies it) goes on one of two long-lived ALS streams. After ${steadyMs / 1000} s PostgreSQL is stopped (fast shutdown) for ` +
        `${outageMs / 1000} s, then started again; the load goes on for ${steadyMs / 1000} s more. Usage rows are counted once they stop ` +
        `changing. /readyz was probed once a second during the outage.`,
      table: {
        head: ['outage (s)', 'Checks during', 'Check errors during', 'decisions during', 'p50 / p99 during (ms)', '/readyz during', 'entries sent', 'usage rows', 'lost', 'doubled'],
        rows: [[figures.outageS, String(figures.checksDuring), String(figures.checkErrorsDuring), figures.decisionsDuring, figures.latencyDuring, figures.readyzDuring, String(sent), String(rows.events), String(lost), String(doubled)]],
      },
      findings,
    };
  } finally {
    await server.stop();
    await redis.kill();
  }
}
