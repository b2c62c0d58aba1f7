/**
 * Child process for the Check benchmark: `null` serves an ext_authz server that always answers OK (same grpc-js,
 * same protos: the baseline); `tollgate` serves the real Check with Redis counters. Prints one JSON line when ready.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';

/** The servers run the compiled dist/ code, as `npm start` does (check.ts builds it first). */
const dist = async <T>(path: string): Promise<T> => (await import(new URL(`../dist/${path}`, import.meta.url).href)) as T;
const { startApp } = await dist<typeof import('../src/app.js')>('app.js');
const { loadConfig } = await dist<typeof import('../src/config/config.js')>('config/config.js');
const { loadEnvoyServices } = await dist<typeof import('../src/grpc/protos.js')>('grpc/protos.js');
const { silentLogger } = await dist<typeof import('../src/kernel/logger.js')>('kernel/logger.js');

const kind = process.argv[2];
// Exit normally on SIGINT so --cpu-prof can write its profile.
process.once('SIGINT', () => process.exit(0));

if (kind === 'null') {
  const server = new grpc.Server();
  server.addService(loadEnvoyServices().authorization, {
    Check: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, { status: { code: 0 } }),
  });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) throw error;
    process.stdout.write(`${JSON.stringify({ port })}\n`);
  });
} else if (kind === 'tollgate') {
  const app = await startApp(
    loadConfig({
      TOLLGATE_CATALOG: 'bench/catalog.yaml',
      TOLLGATE_DATA_DIR: mkdtempSync(join(tmpdir(), 'tollgate-bench-')),
      TOLLGATE_GRPC_HOST: '127.0.0.1',
      TOLLGATE_GRPC_PORT: '0',
      TOLLGATE_HTTP_HOST: '127.0.0.1',
      TOLLGATE_HTTP_PORT: '0',
      TOLLGATE_ADMIN_TOKEN: 'bench-admin-token-0123456789',
      // Production shape: records in PostgreSQL (the hot path never queries it), counters in Redis.
      TOLLGATE_DATABASE_URL: process.env.TOLLGATE_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
      TOLLGATE_REDIS_URL: process.env.TOLLGATE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      TOLLGATE_REDIS_PREFIX: `bench${process.pid}`,
      TOLLGATE_REDIS_FAILURE_MODE: 'closed',
      TOLLGATE_LOG_LEVEL: 'silent',
    }),
    silentLogger,
  );
  const customerId = `bench-${process.pid}-${Date.now()}`;
  await app.accounts.createCustomer({ id: customerId, name: 'Bench' });
  const { key } = await app.accounts.createKey({ customerId, planId: 'unbounded' });
  await app.identities.refresh();
  process.stdout.write(`${JSON.stringify({ port: app.grpc.port, httpPort: app.http.port, key })}\n`);
} else {
  throw new Error('usage: check-servers.ts null|tollgate');
}
