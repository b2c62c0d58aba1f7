/**
 * Redis stops answering for a while under Check load, once per failure mode and per way of breaking it: SIGSTOP
 * (Redis hangs: every call waits for TOLLGATE_REDIS_TIMEOUT_MS) and SIGKILL (connections refused until a new, empty
 * Redis starts on the same port).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CheckLoad, formatOutcomes, summarize } from '../load.js';
import { RedisServer, TollgateServer } from '../processes.js';
import type { ScenarioContext, ScenarioResult } from '../scenario.js';

const failureModes = ['closed', 'open', 'local'] as const;
const breaks = ['SIGSTOP', 'SIGKILL'] as const;

export async function redisOutage({ quick, postgres, dataDir, log }: ScenarioContext): Promise<ScenarioResult> {
  const outageMs = quick ? 3_000 : 20_000;
  const steadyMs = quick ? 1_000 : 5_000;
  const ratePerSecond = 200;
  const rows: string[][] = [];
  const findings: string[] = [];
  for (const mode of failureModes) {
    for (const how of breaks) {
      const redis = await RedisServer.start();
      const server = await TollgateServer.start({
        TOLLGATE_DATABASE_URL: await postgres.createDatabase(),
        TOLLGATE_REDIS_URL: redis.url,
        TOLLGATE_REDIS_FAILURE_MODE: mode,
        TOLLGATE_DATA_DIR: dataDir(),
      });
      try {
        const key = await server.customerKey(`redis-${mode}-${how}`.toLowerCase());
        await sleep(500); // the identity cache syncs every 100 ms
        const load = new CheckLoad({ address: server.grpcAddress, key, ratePerSecond });
        await sleep(steadyMs);
        const failuresAt = async () => server.metric('tollgate_quota_store_failures_total');
        const brokeAt = load.now();
        redis.signal(how);
        await sleep(outageMs);
        if (how === 'SIGSTOP') redis.signal('SIGCONT');
        else {
          await redis.kill();
          await redis.launch();
        }
        const returnedAt = load.now();
        // Recovery: until the server stops applying its failure mode, seen in its failures counter.
        let failures = await failuresAt();
        let lastFailureAt = returnedAt;
        const watchUntil = load.now() + (quick ? 5_000 : 15_000);
        while (load.now() < watchUntil) {
          await sleep(50);
          const now = await failuresAt();
          if (now > failures) lastFailureAt = load.now();
          failures = now;
        }
        await load.stop();
        const before = summarize(load.calls, 0, brokeAt);
        const during = summarize(load.calls, brokeAt, returnedAt);
        const after = summarize(load.calls, lastFailureAt + 100);
        const errors = Object.entries(during.outcomes).filter(([outcome]) => outcome.startsWith('error')).reduce((sum, [, count]) => sum + count, 0);
        const recoveryMs = Math.round(lastFailureAt - returnedAt);
        const row = {
          mode,
          how,
          outageS: ((returnedAt - brokeAt) / 1000).toFixed(1),
          before: `${before.p50Ms} / ${before.p99Ms}`,
          calls: during.calls,
          errors,
          decisions: formatOutcomes(during.outcomes),
          latency: `${during.p50Ms} / ${during.p99Ms} (max ${during.maxMs})`,
          recoveryMs,
          afterRecovery: formatOutcomes(after.outcomes),
          failuresCounted: failures,
        };
        log(JSON.stringify(row));
        rows.push([mode, how, row.outageS, row.before, String(row.calls), String(errors), row.decisions, row.latency, `${recoveryMs}`, row.afterRecovery]);
        if (errors > 0) findings.push(`Redis ${how}, failure mode ${mode}: ${errors} Checks failed as gRPC errors during the outage (Envoy's error path) instead of the mode's decision.`);
        const wrong = Object.keys(during.outcomes).filter((outcome) => !outcome.startsWith('error') && outcome !== 'allowed' && !(mode === 'closed' && outcome === 'denied 503'));
        if (wrong.length > 0) findings.push(`Redis ${how}, failure mode ${mode}: decisions the mode does not make during the outage (${formatOutcomes(during.outcomes)}).`);
        const afterBad = Object.keys(after.outcomes).filter((outcome) => outcome !== 'allowed');
        if (afterBad.length > 0) findings.push(`Redis ${how}, failure mode ${mode}: after recovery some Checks were not allowed (${formatOutcomes(after.outcomes)}).`);
        if (!server.running) findings.push(`Redis ${how}, failure mode ${mode}: the server exited.`);
      } finally {
        await server.stop();
        await redis.kill();
      }
    }
  }
  return {
    title: 'Redis outage under Check load',
    description:
      `${ratePerSecond} Checks/s from 4 HTTP/2 connections (grpc-js on Envoy's protos), one key on a plan whose limits never bind. ` +
      `After ${steadyMs / 1000} s of steady load Redis is broken for ${outageMs / 1000} s: SIGSTOP (it hangs; SIGCONT after) or SIGKILL ` +
      `(refused; a new, empty Redis on the same port after). TOLLGATE_REDIS_TIMEOUT_MS is the default 50 ms. Decisions and latency ` +
      `(p50 / p99 ms, as the client saw them) are those of the Checks sent during the outage; recovery is the time from Redis ` +
      `being back to the server's last use of its failure mode (tollgate_quota_store_failures_total, polled every 50 ms).`,
    table: {
      head: ['failure mode', 'break', 'outage (s)', 'p50 / p99 before (ms)', 'Checks during', 'gRPC errors', 'decisions during', 'p50 / p99 during (ms)', 'recovery (ms)', 'after recovery'],
      rows,
    },
    findings,
  };
}
