import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, startRole, type RunningRole } from '../src/app.js';
import { listenPorts } from '../src/roles.js';
import { main } from '../src/cli/main.js';
import { loadConfig } from '../src/config/config.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { freePort } from './support/ports.js';
import { processWaitMs, spawnCli } from './support/serve-process.js';
import { adminToken, createTestDatabase, testRedisUrl } from './support/services.js';
import { removeRedisKeys, testRedisPrefix } from './support/test-run.js';
import { testUsageSigningKey } from './support/usage.js';

/**
 * The edge and the control role as two processes of one service (issue 23): they share only PostgreSQL and Redis.
 * Each runs its jobs on its own manual clock; a test waits for an outcome by advancing them a bounded number of
 * times, whatever carries a change from one process to the other (a poll of the database or a push).
 */
describe('edge and control roles on one PostgreSQL and Redis', () => {
  const syncIntervalMs = 250;
  const edgeTimers = new ManualClock(0);
  const controlTimers = new ManualClock(0);
  const dataDirs: string[] = [];
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let env: Record<string, string>;
  let edge: RunningRole;
  let control: RunningRole;
  let envoy: FakeEnvoy;
  let als: AccessLogClient;
  const edgeUrl = () => `http://127.0.0.1:${edge.http.port}`;
  const controlUrl = () => `http://127.0.0.1:${control.http.port}`;
  const asAdmin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
  const admin = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${controlUrl()}${path}`, { method, headers: asAdmin, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as any };
  };
  const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();

  /** Advances both processes' jobs by one sync interval until `outcome` holds; at most 40 intervals (10 s of their time). */
  async function eventually<T>(outcome: () => Promise<T>, holds: (value: T) => boolean): Promise<T> {
    let value = await outcome();
    for (let round = 0; round < 40 && !holds(value); round++) {
      await Promise.all([edgeTimers.advance(syncIntervalMs), controlTimers.advance(syncIntervalMs)]);
      value = await outcome();
    }
    return value;
  }

  /** The gRPC port the control is configured with, as the edge's would be: it must open nothing there. */
  let controlGrpcPort: number;
  const start = (role: 'edge' | 'control', timers: ManualClock, settings: Record<string, string> = {}) => {
    const dataDir = mkdtempSync(join(tmpdir(), `tollgate-${role}-`));
    dataDirs.push(dataDir);
    return startRole(loadConfig({ ...env, ...settings, TOLLGATE_ROLE: role, TOLLGATE_DATA_DIR: dataDir }), silentLogger, { timers });
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    env = {
      TOLLGATE_CATALOG: 'examples/petstore.yaml',
      TOLLGATE_GRPC_HOST: '127.0.0.1',
      TOLLGATE_GRPC_PORT: '0',
      TOLLGATE_HTTP_HOST: '127.0.0.1',
      TOLLGATE_HTTP_PORT: '0',
      TOLLGATE_ADMIN_TOKEN: adminToken,
      TOLLGATE_USAGE_SIGNING_KEY: testUsageSigningKey,
      TOLLGATE_SYNC_INTERVAL_MS: String(syncIntervalMs),
      TOLLGATE_SHUTDOWN_GRACE_MS: '2000',
      TOLLGATE_DATABASE_URL: database.url,
      TOLLGATE_REDIS_URL: testRedisUrl,
      TOLLGATE_REDIS_PREFIX: testRedisPrefix('roles'),
      // Exact counts need every call counted in Redis: a busy machine must not push one into the failure mode.
      TOLLGATE_REDIS_TIMEOUT_MS: '5000',
    };
    // The control role first: it is the one an operator reaches, and the edge must not need it to start.
    controlGrpcPort = await freePort();
    control = await start('control', controlTimers, { TOLLGATE_GRPC_PORT: String(controlGrpcPort) });
    edge = await start('edge', edgeTimers);
    envoy = new FakeEnvoy(`127.0.0.1:${edge.edge!.grpc.port}`);
    als = new AccessLogClient(`127.0.0.1:${edge.edge!.grpc.port}`);
  });
  afterAll(async () => {
    als?.close();
    envoy?.close();
    await edge?.stop();
    await control?.stop();
    if (env?.TOLLGATE_REDIS_PREFIX) await removeRedisKeys(testRedisUrl, env.TOLLGATE_REDIS_PREFIX);
    await database?.drop();
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  });

  it('runs each role\'s parts only', () => {
    expect(edge.edge).toBeDefined();
    expect(edge.control).toBeUndefined();
    expect(control.control).toBeDefined();
    expect(control.edge).toBeUndefined();
    // With Redis, identities come on demand: both poll the records' version; only the control writes and rebuilds them.
    expect(control.scheduler.names).toEqual(expect.arrayContaining(['rating', 'usage alert evaluation', 'identity version poll', 'identity rebuild', 'identity publish retry']));
    expect(control.scheduler.names).not.toContain('usage flush');
    expect(edge.scheduler.names).toEqual(expect.arrayContaining(['usage flush', 'spool fsync', 'identity version poll']));
    for (const job of ['rating', 'usage alert evaluation', 'identity rebuild', 'identity publish retry']) expect(edge.scheduler.names).not.toContain(job);
  });

  it('a key made through the control\'s admin API is allowed on the edge; its access log is metered and reported by the control', async () => {
    expect((await admin('POST', '/v1/customers', { id: 'split', name: 'Split' })).status).toBe(201);
    const created = await admin('POST', '/v1/keys', { customer: 'split', plan: 'pro' });
    expect(created.status).toBe(201);
    const outcome = await eventually(() => envoy.check({ method: 'GET', path: '/api/v1/pets', key: created.body.key }), (result) => result.allowed);
    expect(outcome.allowed).toBe(true);
    expect(outcome.metadata.customer_id).toBe('split');

    const stream = als.open();
    await stream.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, method: 'GET', status: 200 })]);
    expect(await stream.end()).toEqual({});
    const usage = await eventually(
      () => admin('GET', '/v1/customers/split/usage'),
      (report) => report.body.subscriptions?.[0]?.totals.calls === 1,
    );
    expect(usage.body.subscriptions[0].totals).toMatchObject({ calls: 1, units: 1, billableCalls: 1 });
  });

  it('answers no admin route on the edge, only health and metrics', async () => {
    const customers = await fetch(`${edgeUrl()}/v1/customers`, { headers: asAdmin });
    expect(customers.status).toBe(404);
    expect((await fetch(`${edgeUrl()}/webhooks/stripe`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${edgeUrl()}/healthz`)).status).toBe(200);
    expect((await fetch(`${edgeUrl()}/readyz`)).status).toBe(200);
    const metrics = await metricsOf(edgeUrl());
    expect(metrics).toMatch(/tollgate_build_info\{[^}]*role="edge"[^}]*\} 1/);
    expect(metrics).toContain('tollgate_check_decisions_total');
    expect(metrics).toContain('tollgate_spool_entries');
    expect(metrics).not.toContain('tollgate_billing_runs_total');
    expect(metrics).not.toContain('tollgate_active_subscriptions');
  });

  it('has no gRPC port in the control role, and reports only what it runs', async () => {
    expect(listenPorts(control.config).map((port) => port.name)).toEqual(['HTTP']);
    expect(listenPorts(edge.config).map((port) => port.name)).toEqual(['gRPC', 'HTTP']);
    expect(control.config.grpc.port).toBe(controlGrpcPort);
    expect(await connects(controlGrpcPort)).toBe(false);
    const metrics = await metricsOf(controlUrl());
    expect(metrics).toMatch(/tollgate_build_info\{[^}]*role="control"[^}]*\} 1/);
    expect(metrics).toContain('tollgate_billing_runs_total');
    expect(metrics).toContain('tollgate_active_subscriptions');
    expect(metrics).not.toContain('tollgate_check_decisions_total');
    expect(metrics).not.toContain('tollgate_spool_entries');
    expect((await fetch(`${controlUrl()}/readyz`)).status).toBe(200);
  });
});

/** True when something accepts a TCP connection on the port of 127.0.0.1. */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('role errors', () => {
  it('refuses an edge or control process without the shared PostgreSQL and Redis, saying why', () => {
    expect(() => loadConfig({ TOLLGATE_ROLE: 'edge' })).toThrow(/TOLLGATE_ROLE=edge needs the shared PostgreSQL \(TOLLGATE_DATABASE_URL\): the embedded PGlite serves one process/);
    expect(() => loadConfig({ TOLLGATE_ROLE: 'control', TOLLGATE_DATABASE_URL: 'postgres://db/x' })).toThrow(/TOLLGATE_ROLE=control needs the shared Redis \(TOLLGATE_REDIS_URL\)/);
    const shared = { TOLLGATE_DATABASE_URL: 'postgres://db/x', TOLLGATE_REDIS_URL: 'redis://redis:6379' };
    expect(() => loadConfig({ ...shared, TOLLGATE_ROLE: 'edge', TOLLGATE_PORTAL_PORT: '8081' })).toThrow(/portal runs in the control role/);
    expect(() => loadConfig({ ...shared, TOLLGATE_ROLE: 'all' })).not.toThrow();
    expect(() => loadConfig({ TOLLGATE_ROLE: 'gateway' })).toThrow(/TOLLGATE_ROLE/);
    expect(loadConfig({}).role).toBe('all');
  });

  it('refuses startApp for a single role: it returns every part', async () => {
    const config = loadConfig({ TOLLGATE_ROLE: 'edge', TOLLGATE_DATABASE_URL: 'postgres://db/x', TOLLGATE_REDIS_URL: 'redis://redis:6379' });
    await expect(startApp(config, silentLogger)).rejects.toThrow(/startRole/);
  });

  it('serve --role takes all, edge or control', async () => {
    let stderr = '';
    const code = await main(['serve', '--role', 'gateway'], { stdout: () => {}, stderr: (text) => void (stderr += text), env: {} });
    expect(code).toBe(2);
    expect(stderr).toContain('--role must be all, edge, control, not "gateway"');
    let help = '';
    expect(await main(['serve', '--help'], { stdout: (text) => void (help += text), stderr: () => {}, env: {} })).toBe(0);
    expect(help).toContain('Usage: tollgate serve [--role ROLE]\n');
  });

  it('tollgate serve --role edge on the embedded database exits 2 naming what the edge needs', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-role-'));
    try {
      const child = spawnCli(['serve', '--role', 'edge'], { env: { PATH: process.env.PATH, TOLLGATE_DATA_DIR: dataDir } });
      let stderr = '';
      child.stderr!.on('data', (chunk) => (stderr += chunk));
      const exited = await new Promise<number | null>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no exit within ${processWaitMs} ms: ${stderr}`)), processWaitMs);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve(code);
        });
      });
      expect(exited).toBe(2);
      expect(stderr).toContain('TOLLGATE_ROLE=edge needs the shared PostgreSQL (TOLLGATE_DATABASE_URL)');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
