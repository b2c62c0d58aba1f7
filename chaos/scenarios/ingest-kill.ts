/**
 * The server is stopped mid-ingest, by SIGTERM (it drains) or SIGKILL (it cannot), and started again on the same
 * spool directory and database: the usage rows are counted against the entries it had received.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CheckLoad } from '../load.js';
import { RedisServer, TollgateServer } from '../processes.js';
import type { ScenarioContext, ScenarioResult } from '../scenario.js';
import { settledUsageRows } from '../usage-rows.js';

export async function ingestKill({ quick, postgres, dataDir, log }: ScenarioContext): Promise<ScenarioResult> {
  const ingestMs = quick ? 2_000 : 10_000;
  const ratePerSecond = 300;
  const rows: string[][] = [];
  const findings: string[] = [];
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const redis = await RedisServer.start();
    const env = { TOLLGATE_DATABASE_URL: await postgres.createDatabase(), TOLLGATE_REDIS_URL: redis.url, TOLLGATE_DATA_DIR: dataDir() };
    const first = await TollgateServer.start(env);
    let second: TollgateServer | undefined;
    try {
      const key = await first.customerKey(`ingest-${signal.toLowerCase()}`);
      await sleep(500);
      const load = new CheckLoad({ address: first.grpcAddress, key, ratePerSecond, accessLogs: true });
      await sleep(ingestMs);
      // The last count of entries the server decoded (and spooled) before the signal: a lower bound of what it had.
      const received = await first.metric('tollgate_als_entries_received_total');
      first.signal(signal);
      const exit = await first.exited;
      await load.stop();
      const stopReport = first.logs().find((line) => line.msg === 'metering stopped') as { recorded?: number; leftInSpool?: number } | undefined;
      second = await TollgateServer.start(env);
      const expected = stopReport?.recorded ?? received;
      const usage = await settledUsageRows(postgres, env.TOLLGATE_DATABASE_URL, expected);
      const lostOfReceived = Math.max(0, expected - usage.events);
      const doubled = Math.max(0, usage.rolledUp - usage.attributed);
      const figures = {
        signal,
        exit: exit.signal ?? `code ${exit.code}`,
        entriesSent: load.entriesSent,
        receivedBeforeSignal: received,
        recordedPerStopLog: stopReport?.recorded ?? null,
        leftInSpool: stopReport?.leftInSpool ?? null,
        usageRows: usage.events,
        lostOfReceived,
        notReceived: Math.max(0, load.entriesSent - usage.events - lostOfReceived),
        duplicates: doubled,
      };
      log(JSON.stringify(figures));
      rows.push([
        signal,
        figures.exit,
        String(load.entriesSent),
        `≥ ${received}${stopReport ? ` (stop log: ${stopReport.recorded}, ${stopReport.leftInSpool} left in spool)` : ''}`,
        String(usage.events),
        String(lostOfReceived),
        String(figures.notReceived),
        String(doubled),
      ]);
      if (lostOfReceived > 0) findings.push(`${signal} during ingest: ${lostOfReceived} entries the server had received were not stored after the restart.`);
      if (doubled > 0) findings.push(`${signal} during ingest: the rollups count ${doubled} calls more than the usage rows (doubled after the spool replay).`);
      if (signal === 'SIGTERM' && exit.code !== 0) findings.push(`SIGTERM during ingest: the server exited with ${exit.signal ?? exit.code}, not 0.`);
    } finally {
      await first.stop();
      await second?.stop();
      await redis.kill();
    }
  }
  return {
    title: 'SIGTERM and SIGKILL during ingest, then restart',
    description:
      `${ratePerSecond} Checks/s, each followed by its access-log entry (the Check's dynamic metadata, as Envoy copies it) on two ALS ` +
      `streams; after ${ingestMs / 1000} s the server gets the signal, and a new server starts on the same spool directory and database. ` +
      `"Received" is the server's own count of decoded entries read just before the signal (a lower bound; after SIGTERM the count its ` +
      `shutdown log reports). Lost = received − usage rows; entries sent after the server stopped reading are Envoy's loss (ALS is ` +
      `fire-and-forget), shown apart as "sent, never received". Doubled = calls in the rollups beyond the usage rows.`,
    table: { head: ['signal', 'exit', 'entries sent', 'received by the server', 'usage rows after restart', 'lost', 'sent, never received', 'doubled'], rows },
    findings,
  };
}
