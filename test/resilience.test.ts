import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { hashApiKey } from '../src/accounts/keys.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../src/kernel/logger.js';
import { FakeEnvoy } from './support/envoy.js';
import { adminToken, startTestApp, testDatabaseUrl, testRedisUrl, type TestApp } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

/** What the Check does when Redis or PostgreSQL goes away, per configured failure mode. */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startWithProxies(env: Record<string, string> = {}) {
  const redis = await TcpProxy.forUrl(testRedisUrl).start();
  const database = await TcpProxy.forUrl(testDatabaseUrl).start();
  const service = await startTestApp({ mode: 'production', proxies: { redis, database }, env: { TOLLGATE_REDIS_TIMEOUT_MS: '100', ...env } });
  const envoy = new FakeEnvoy(service.grpcAddress);
  cleanups.push(() => redis.close(), () => database.close(), () => service.close(), () => envoy.close());
  return { service, envoy, redis, database };
}

async function freeKey(service: TestApp, customer: string): Promise<string> {
  await service.admin('POST', '/v1/customers', { id: customer, name: customer });
  const created = await service.admin('POST', '/v1/keys', { customer, plan: 'free' });
  await service.app.identities.refresh();
  return created.body.key;
}

describe('Redis unreachable', () => {
  it('closed: denies with 503 limits_unavailable, and counts again once Redis is back', async () => {
    const { service, envoy, redis } = await startWithProxies({ TOLLGATE_REDIS_FAILURE_MODE: 'closed' });
    const key = await freeKey(service, 'closed-co');
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    await redis.cut();
    const denied = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    expect(denied).toMatchObject({ allowed: false, httpStatus: 503, body: { error: { code: 'limits_unavailable' } } });
    expect(denied.responseHeaders['retry-after']).toBe('1');
    await redis.restore();
    await expect.poll(async () => (await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed, { timeout: 10_000, interval: 100 }).toBe(true);
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_counter_store_failures_total\{mode="closed"\} [1-9]/);
  });

  it('open: allows without counting', async () => {
    const { service, envoy, redis } = await startWithProxies({ TOLLGATE_REDIS_FAILURE_MODE: 'open' });
    const key = await freeKey(service, 'open-co');
    await redis.cut();
    for (let i = 0; i < 15; i++) {
      const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
      expect(outcome.allowed).toBe(true);
      expect(outcome.metadata.degraded).toBe('open');
      expect(outcome.responseHeaders['ratelimit-remaining']).toBeUndefined();
    }
  });

  it('local: keeps enforcing the limits in this replica', async () => {
    const { service, envoy, redis } = await startWithProxies({ TOLLGATE_REDIS_FAILURE_MODE: 'local' });
    const key = await freeKey(service, 'local-co');
    await redis.cut();
    for (let i = 0; i < 10; i++) expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).httpStatus).toBe(429);
  });

  it('starts and serves in its failure mode when Redis is down from the start', async () => {
    const redis = new TcpProxy('127.0.0.1', 1); // nothing listens on port 1
    await redis.start();
    await redis.cut();
    const service = await startTestApp({ mode: 'production', proxies: { redis }, env: { TOLLGATE_REDIS_FAILURE_MODE: 'closed' } });
    cleanups.push(() => service.close());
    const envoy = new FakeEnvoy(service.grpcAddress);
    cleanups.push(() => envoy.close());
    const key = await freeKey(service, 'dead-redis-co');
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).httpStatus).toBe(503);
  });
});

describe('PostgreSQL unreachable', () => {
  it('keeps deciding from memory, answers the admin API with 503, and resumes when it is back', async () => {
    const { service, envoy, database } = await startWithProxies();
    const key = await freeKey(service, 'pg-down-co');
    await database.cut();
    for (let i = 0; i < 10; i++) expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).httpStatus).toBe(429);
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key: 'tg_unknown' })).httpStatus).toBe(401);

    const admin = await service.admin('POST', '/v1/customers', { id: 'later', name: 'Later' });
    expect(admin.status).toBe(503);
    expect(admin.body.error.code).toBe('unavailable');
    await expect.poll(() => service.app.identities.synced, { timeout: 5_000 }).toBe(false);

    await database.restore();
    await expect.poll(async () => (await service.admin('POST', '/v1/customers', { id: 'later', name: 'Later' })).status, { timeout: 10_000, interval: 200 }).toBe(201);
    await expect.poll(() => service.app.identities.synced, { timeout: 5_000 }).toBe(true);
  });

  it('restarts from the identity snapshot while PostgreSQL is down', async () => {
    const { service, database } = await startWithProxies();
    const key = await freeKey(service, 'snapshot-co');
    // The snapshot is rewritten at most every 5 s after a change.
    const snapshotHasKey = () => {
      try {
        return readFileSync(`${service.dataDir}/identity-snapshot.json`, 'utf8').includes(hashApiKey(key));
      } catch {
        return false;
      }
    };
    await expect.poll(snapshotHasKey, { timeout: 12_000, interval: 200 }).toBe(true);
    await database.cut();
    // A restart: the data directory is one server's at a time.
    await service.app.stop();
    const restarted = await startTestApp({
      mode: 'embedded',
      env: { TOLLGATE_DATA_DIR: service.dataDir, TOLLGATE_DATABASE_URL: database.rewrite(testDatabaseUrl) },
    });
    cleanups.push(() => restarted.app.stop());
    const envoy = new FakeEnvoy(restarted.grpcAddress);
    cleanups.push(() => envoy.close());
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
  });
});

describe('secrets', () => {
  it('never writes API keys or the admin token to the logs or metrics', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const service = await startTestApp({ mode: 'embedded', logger: createLogger('trace', sink) });
    cleanups.push(() => service.close());
    const envoy = new FakeEnvoy(service.grpcAddress);
    cleanups.push(() => envoy.close());
    const key = await freeKey(service, 'secretive');
    for (let i = 0; i < 12; i++) await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    await envoy.check({ method: 'GET', path: '/api/v1/pets', key: `${key}x` });
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(lines.length).toBeGreaterThan(0);
    for (const text of [lines.join(''), metrics]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain(adminToken);
    }
  });
});
