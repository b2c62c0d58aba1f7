import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { Clock, Timers } from '../../src/kernel/clock.js';
import { silentLogger, type Logger } from '../../src/kernel/logger.js';
import type { TcpProxy } from './tcp-proxy.js';
import { removeRedisKeys, testDatabaseName, testRedisPrefix, withPgClient } from './test-run.js';
import { testUsageSigningKey } from './usage.js';
import { seedEmbeddedDatabase } from './pglite-template.js';

export const testRedisUrl = process.env.TOLLGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const testDatabaseUrl = process.env.TOLLGATE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const adminToken = 'test-admin-token-0123456789';

export const uniqueName = (prefix: string) => `${prefix}_${randomBytes(6).toString('hex')}`;

/**
 * A fresh PostgreSQL database for one test file, named for this run (test/support/test-run.ts); drop() removes it.
 * `migrated` copies the database test/global-setup.ts migrated for this run (migrating one took about a second);
 * without it the database is empty, for tests of migrating. Commits do not wait for the WAL flush: a test database
 * need not survive a crash of PostgreSQL itself, and every commit stays atomic and visible at once to other sessions.
 */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const name = testDatabaseName();
  const template = options.migrated ? process.env.TOLLGATE_TEST_DATABASE_TEMPLATE : undefined;
  await withPgClient(testDatabaseUrl, async (admin) => {
    await admin.query(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`);
    await admin.query(`ALTER DATABASE ${name} SET synchronous_commit = off`);
  });
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      await withPgClient(testDatabaseUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

export interface TestAppOptions {
  mode: 'embedded' | 'production';
  env?: Record<string, string>;
  clock?: Clock;
  /** The time the app's background jobs run on: a ManualClock runs them when the test advances it, and only then. */
  timers?: Timers;
  logger?: Logger;
  /** Route the production-mode PostgreSQL and Redis connections through proxies the test can cut. */
  proxies?: { database?: TcpProxy; redis?: TcpProxy };
}

export interface TestApp {
  app: App;
  grpcAddress: string;
  httpUrl: string;
  dataDir: string;
  /** The environment the app was configured from, to start more replicas of it. */
  env: Record<string, string>;
  /** Calls the admin API as an operator. */
  admin<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/**
 * Starts the whole service in-process on ephemeral ports: embedded (PGlite + memory counters) or production
 * (a fresh PostgreSQL database + Redis with a unique key prefix).
 */
export async function startTestApp(options: TestAppOptions): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-test-'));
  const database = options.mode === 'production' ? await createTestDatabase({ migrated: true }) : undefined;
  if (!database) seedEmbeddedDatabase(dataDir);
  const env: Record<string, string> = {
    TOLLGATE_CATALOG: 'examples/petstore.yaml',
    TOLLGATE_DATA_DIR: dataDir,
    TOLLGATE_GRPC_HOST: '127.0.0.1',
    TOLLGATE_GRPC_PORT: '0',
    TOLLGATE_HTTP_HOST: '127.0.0.1',
    TOLLGATE_HTTP_PORT: '0',
    TOLLGATE_ADMIN_TOKEN: adminToken,
    // Shared by every test app, as replicas must share it; tests sign access-log entries of their own with it.
    TOLLGATE_USAGE_SIGNING_KEY: testUsageSigningKey,
    TOLLGATE_SYNC_INTERVAL_MS: '100',
    TOLLGATE_SHUTDOWN_GRACE_MS: '2000',
    // Billing tests move a manual clock just past period ends; they assume a five-minute finalization grace.
    TOLLGATE_BILLING_FINALIZE_AFTER_MS: '300000',
    ...(database
      ? {
          TOLLGATE_DATABASE_URL: options.proxies?.database?.rewrite(database.url) ?? database.url,
          TOLLGATE_REDIS_URL: options.proxies?.redis?.rewrite(testRedisUrl) ?? testRedisUrl,
          TOLLGATE_REDIS_PREFIX: testRedisPrefix('app'),
        }
      : {}),
    ...options.env,
  };
  const app = await startApp(loadConfig(env), options.logger ?? silentLogger, {
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.timers ? { timers: options.timers } : {}),
  });
  const httpUrl = `http://127.0.0.1:${app.http.port}`;
  return {
    app,
    grpcAddress: `127.0.0.1:${app.grpc.port}`,
    httpUrl,
    dataDir,
    env,
    admin: async (method, path, body) => {
      const response = await fetch(`${httpUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    },
    close: async () => {
      try {
        await app.stop();
      } finally {
        // Straight to Redis, not through a proxy the test may have cut; also the keys of replicas sharing the prefix.
        if (env.TOLLGATE_REDIS_URL && env.TOLLGATE_REDIS_PREFIX) await removeRedisKeys(testRedisUrl, env.TOLLGATE_REDIS_PREFIX);
        await database?.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
