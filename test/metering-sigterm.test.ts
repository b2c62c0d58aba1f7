import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { freePort } from './support/ports.js';
import { processTestTimeoutMs, processWaitMs, spawnCli, startedLine, testDir, waitForOutput } from './support/serve-process.js';
import { adminToken, createTestDatabase } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

/** The real server as a child process, stopped with SIGTERM while Envoy is streaming access logs to it. */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const isSegment = (name: string) => name.endsWith('.copy');

interface StopReport {
  recorded: number;
  flushed: boolean;
  leftInSpool: number;
}

class ServerProcess {
  private readonly logs: Record<string, unknown>[] = [];
  private output = '';
  private readonly exited: Promise<number | null>;

  private constructor(
    private readonly child: ChildProcess,
    readonly grpcAddress: string,
    private readonly httpUrl: string,
  ) {
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      this.output += chunk.toString('utf8');
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line.startsWith('{')) this.logs.push(JSON.parse(line) as Record<string, unknown>);
    });
    this.exited = new Promise((resolve) => child.once('exit', resolve));
  }

  static async start(env: Record<string, string>): Promise<ServerProcess> {
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const child = spawnCli(['serve'], {
      env: { ...process.env, ...env, TOLLGATE_GRPC_PORT: String(grpcPort), TOLLGATE_HTTP_PORT: String(httpPort) },
      stderr: 'inherit',
    });
    const server = new ServerProcess(child, `127.0.0.1:${grpcPort}`, `http://127.0.0.1:${httpPort}`);
    // Its signal handlers are in place once it says so: a SIGTERM before would kill it outright.
    await waitForOutput(child, () => server.output.includes(startedLine), 'its start', () => server.output);
    await expect.poll(() => fetch(`${server.httpUrl}/readyz`).then((r) => r.status, () => 0), { timeout: processWaitMs, interval: 100 }).toBe(200);
    return server;
  }

  async entriesReceived(): Promise<number> {
    const text = await (await fetch(`${this.httpUrl}/metrics`)).text();
    return Number(/^tollgate_als_entries_received_total (\d+)/m.exec(text)?.[1] ?? 0);
  }

  /** SIGTERM, then the shutdown report the process logged before exiting. */
  async terminate(): Promise<StopReport> {
    this.child.kill('SIGTERM');
    expect(await this.exited).toBe(0);
    const stopped = this.logs.find((log) => log.msg === 'metering stopped');
    expect(stopped).toBeDefined();
    return stopped as unknown as StopReport;
  }

}

/** Streams entries with unique request ids on two streams until the server ends them; resolves once it has `atLeast`. */
function streamUntilEnded(server: ServerProcess, prefix: string, atLeast: number) {
  const als = new AccessLogClient(server.grpcAddress);
  cleanups.push(() => als.close());
  let sent = 0;
  const streams = [als.open(), als.open()].map(async (stream, s) => {
    let ended = false;
    void stream.answer.then(() => (ended = true));
    for (let batch = 0; !ended; batch++) {
      const entries = Array.from({ length: 100 }, (_, i) => {
        const requestId = `${prefix}-${s}-${batch}-${i}`;
        return httpEntry({ requestId, authz: { customer_id: 'cus_1', subscription_id: 'sub_1', plan_id: 'pro', endpoint_id: 'list-pets', weight: 1, decision: 'allow' } });
      });
      await stream.send(entries);
      sent += entries.length;
      await sleep(2);
    }
  });
  return {
    receivedEnough: expect.poll(() => server.entriesReceived(), { timeout: processWaitMs, interval: 50 }).toBeGreaterThanOrEqual(atLeast),
    ended: Promise.all(streams).then(() => sent),
  };
}

describe('SIGTERM while Envoy streams access logs', { timeout: processTestTimeoutMs }, () => {
  it('keeps what it received in the spool when PostgreSQL is down, replays it on restart, and drains into PostgreSQL: nothing is lost', async () => {
    const database = await createTestDatabase();
    const proxy = await TcpProxy.forUrl(database.url).start();
    const dataDir = testDir('sigterm');
    const direct = new pg.Client({ connectionString: database.url });
    cleanups.push(
      () => database.drop(),
      () => proxy.close(),
      () => direct.end(),
    );
    const env = {
      TOLLGATE_CATALOG: 'examples/petstore.yaml',
      TOLLGATE_DATA_DIR: dataDir,
      TOLLGATE_DATABASE_URL: proxy.rewrite(database.url),
      TOLLGATE_GRPC_HOST: '127.0.0.1',
      TOLLGATE_HTTP_HOST: '127.0.0.1',
      TOLLGATE_ADMIN_TOKEN: adminToken,
      TOLLGATE_LOG_LEVEL: 'info',
      TOLLGATE_SHUTDOWN_GRACE_MS: '5000',
      // Out of reach, so nothing is written before the signal: the shutdown path has all of it to save.
      TOLLGATE_USAGE_BATCH_SIZE: '10000000',
      TOLLGATE_USAGE_FLUSH_MS: '600000',
    };
    // 1. PostgreSQL unreachable at the signal: what was received stays in the spool.
    const first = await ServerProcess.start(env);
    const firstStream = streamUntilEnded(first, 'a', 2_000);
    await firstStream.receivedEnough;
    await proxy.cut();
    const firstReport = await first.terminate();
    expect(await firstStream.ended).toBeGreaterThanOrEqual(firstReport.recorded);
    expect(firstReport).toMatchObject({ flushed: false, leftInSpool: firstReport.recorded });
    expect(firstReport.recorded).toBeGreaterThanOrEqual(2_000);
    expect(readdirSync(join(dataDir, 'spool')).filter(isSegment).length).toBeGreaterThan(0);

    // 2. Restarted with PostgreSQL back, it replays the spool; SIGTERM mid-stream then writes everything received.
    await proxy.restore();
    const second = await ServerProcess.start(env);
    const secondStream = streamUntilEnded(second, 'b', 2_000);
    await secondStream.receivedEnough;
    const secondReport = await second.terminate();
    await secondStream.ended;
    expect(secondReport).toMatchObject({ flushed: true, leftInSpool: 0 });
    expect(secondReport.recorded).toBeGreaterThanOrEqual(2_000);
    await direct.connect();
    const [stored] = (await direct.query<{ count: number; runs: string[] }>(
      "SELECT count(*)::int AS count, array_agg(DISTINCT split_part(request_id, '-', 1) ORDER BY split_part(request_id, '-', 1)) AS runs FROM usage_events",
    )).rows;
    expect(stored).toEqual({ count: firstReport.recorded + secondReport.recorded, runs: ['a', 'b'] });
    expect(readdirSync(join(dataDir, 'spool')).filter(isSegment)).toEqual([]);
  });
});
