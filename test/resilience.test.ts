import { readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { identitySnapshotIntervalMs } from '../src/identity/identity-cache.js';
import { hashApiKey } from '../src/identity/keys.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { createLogger } from '../src/kernel/logger.js';
import { FakeEnvoy } from './support/envoy.js';
import { adminToken, createTestDatabase, startTestApp, testDatabaseUrl, testRedisUrl, type TestApp } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

/** What the Check does when Redis or PostgreSQL goes away, per configured failure mode. */

// Each test starts a service of its own (a database, migrations, Redis): slow on a busy machine, so a roomy bound; the
// waits below end as soon as what they wait for happens, and their bound only has to be passed by a busy machine.
vi.setConfig({ testTimeout: 120_000 });
const waitMs = 60_000;

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

/** PostgreSQL without Redis: the Check reads the identity mirror (and its snapshot file), not identity on demand. */
async function startMirrorWithProxy(timers?: ManualClock) {
  const database = await TcpProxy.forUrl(testDatabaseUrl).start();
  const created = await createTestDatabase();
  const service = await startTestApp({ mode: 'embedded', env: { TOLLGATE_DATABASE_URL: database.rewrite(created.url) }, ...(timers ? { timers } : {}) });
  const envoy = new FakeEnvoy(service.grpcAddress);
  cleanups.push(() => database.close(), () => created.drop(), () => service.close(), () => envoy.close());
  return { service, envoy, database };
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
    await expect.poll(async () => (await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed, { timeout: waitMs, interval: 100 }).toBe(true);
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_quota_store_failures_total\{mode="closed"\} [1-9]/);
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

describe('Redis slow, or Node slow', () => {
  const pets = { method: 'GET', path: '/api/v1/pets' };
  const metric = async (service: TestApp, pattern: RegExp) => Number((await (await fetch(`${service.httpUrl}/metrics`)).text()).match(pattern)?.[1] ?? 0);

  /** Direct to Redis (an in-process proxy would stall with the test), on a clock that stays in one rate-limit window. */
  async function startDirect(env: Record<string, string>) {
    const service = await startTestApp({ mode: 'production', clock: new ManualClock(Date.UTC(2026, 10, 2, 12)), env });
    const envoy = new FakeEnvoy(service.grpcAddress);
    cleanups.push(
      async () => {
        const redis = new Redis(testRedisUrl);
        const keys = await redis.keys(`${service.env.TOLLGATE_REDIS_PREFIX}:*`);
        if (keys.length > 0) await redis.del(...keys);
        redis.disconnect();
      },
      () => service.close(),
      () => envoy.close(),
    );
    return { service, envoy };
  }

  it('charges nothing for the Checks refused during a Redis hang once Redis runs them', async () => {
    const { service, envoy } = await startDirect({ TOLLGATE_REDIS_FAILURE_MODE: 'closed', TOLLGATE_REDIS_TIMEOUT_MS: '100' });
    const key = await freeKey(service, 'hang-co');
    expect((await envoy.check({ ...pets, key })).responseHeaders['x-quota-remaining']).toBe('999');

    // Scripts wait while writes are paused; the pause lifts by itself if the test dies before unpausing.
    const operator = new Redis(testRedisUrl);
    cleanups.push(() => void operator.disconnect());
    await operator.call('CLIENT', 'PAUSE', '3000', 'WRITE');
    try {
      for (let wave = 0; wave < 2; wave++) {
        const refused = await Promise.all(Array.from({ length: 10 }, () => envoy.check({ ...pets, key })));
        expect(refused.map((outcome) => outcome.httpStatus)).toEqual(Array(10).fill(503));
      }
    } finally {
      await operator.call('CLIENT', 'UNPAUSE');
    }
    // The free plan's 10 a minute, all still there but the first: nothing of the 20 refused calls was counted.
    const after = [];
    for (let i = 0; i < 10; i++) after.push(await envoy.check({ ...pets, key }));
    expect(after.map((outcome) => outcome.httpStatus)).toEqual([...Array(9).fill(200), 429]);
    expect(after[8]!.responseHeaders['x-quota-remaining']).toBe('990');
    expect(await metric(service, /tollgate_quota_store_late_replies_total\{outcome="discarded"\} (\d+)/)).toBeGreaterThanOrEqual(2);
  });

  it('an event-loop stall while Checks wait on Redis causes no fallback and lets no extra call through', async () => {
    const { service, envoy } = await startDirect({ TOLLGATE_REDIS_FAILURE_MODE: 'local', TOLLGATE_REDIS_TIMEOUT_MS: '50' });
    const key = await freeKey(service, 'stall-co');
    for (let i = 0; i < 5; i++) expect((await envoy.check({ ...pets, key })).allowed).toBe(true);

    // Blocks the event loop for 200 ms right after the first consume script goes out, before its reply can be read.
    const write = Socket.prototype.write;
    let stalled = false;
    Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      const written = (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
      if (!stalled && String(chunk).toLowerCase().includes('evalsha')) {
        stalled = true;
        process.nextTick(() => {
          const until = performance.now() + 200;
          while (performance.now() < until);
        });
      }
      return written;
    } as typeof write;
    cleanups.push(() => void (Socket.prototype.write = write));

    const outcomes = await Promise.all(Array.from({ length: 7 }, () => envoy.check({ ...pets, key })));
    Socket.prototype.write = write;
    expect(stalled).toBe(true);
    expect(outcomes.map((outcome) => outcome.httpStatus).sort()).toEqual([200, 200, 200, 200, 200, 429, 429]);
    expect(await metric(service, /tollgate_quota_store_failures_total\{mode="local"\} (\d+)/)).toBe(0);
  });
});

describe('readiness', () => {
  it('closed: not ready while Redis is down, ready again once it is back', async () => {
    const { service, redis } = await startWithProxies({ TOLLGATE_REDIS_FAILURE_MODE: 'closed' });
    const readyz = async () => {
      const response = await fetch(`${service.httpUrl}/readyz`);
      return { status: response.status, counters: ((await response.json()) as { checks: { counters: boolean } }).checks.counters };
    };
    expect(await readyz()).toEqual({ status: 200, counters: true });
    await redis.cut();
    await expect.poll(readyz, { timeout: waitMs, interval: 50 }).toEqual({ status: 503, counters: false });
    await redis.restore();
    await expect.poll(readyz, { timeout: waitMs, interval: 100 }).toEqual({ status: 200, counters: true });
  });

  it('local: stays ready while Redis is down, serving from local counters', async () => {
    const { service, envoy, redis } = await startWithProxies({ TOLLGATE_REDIS_FAILURE_MODE: 'local' });
    const key = await freeKey(service, 'ready-local-co');
    await redis.cut();
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    const metrics = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/tollgate_quota_store_failures_total\{mode="local"\} [1-9]/);
    expect((await fetch(`${service.httpUrl}/readyz`)).status).toBe(200);
  });
});

describe('PostgreSQL unreachable', () => {
  it('keeps deciding from memory, answers the admin API with 503, and resumes when it is back', async () => {
    const { service, envoy, database } = await startMirrorWithProxy();
    const key = await freeKey(service, 'pg-down-co');
    await database.cut();
    for (let i = 0; i < 10; i++) expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).httpStatus).toBe(429);
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key: 'tg_unknown' })).httpStatus).toBe(401);

    const admin = await service.admin('POST', '/v1/customers', { id: 'later', name: 'Later' });
    expect(admin.status).toBe(503);
    expect(admin.body.error.code).toBe('unavailable');
    await expect.poll(() => service.app.identities.synced, { timeout: waitMs }).toBe(false);

    await database.restore();
    await expect.poll(async () => (await service.admin('POST', '/v1/customers', { id: 'later', name: 'Later' })).status, { timeout: waitMs, interval: 200 }).toBe(201);
    await expect.poll(() => service.app.identities.synced, { timeout: waitMs }).toBe(true);
  });

  it('restarts from the identity snapshot while PostgreSQL is down', async () => {
    // The app's jobs on a manual clock: the snapshot job is rewritten when the test moves it on, not 5 s later.
    const timers = new ManualClock(0);
    const { service, database } = await startMirrorWithProxy(timers);
    const key = await freeKey(service, 'snapshot-co');
    const snapshotHasKey = () => {
      try {
        return readFileSync(`${service.dataDir}/identity-snapshot.json`, 'utf8').includes(hashApiKey(key));
      } catch {
        return false;
      }
    };
    // Not written with the change itself, but by the snapshot job within its interval.
    expect(snapshotHasKey()).toBe(false);
    await timers.advance(identitySnapshotIntervalMs);
    expect(snapshotHasKey()).toBe(true);
    await database.cut();
    // A restart: the data directory is one server's at a time.
    await service.app.stop();
    const restarted = await startTestApp({
      mode: 'embedded',
      env: { TOLLGATE_DATA_DIR: service.dataDir, TOLLGATE_DATABASE_URL: database.rewrite(testDatabaseUrl) },
    });
    cleanups.push(() => restarted.close());
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
