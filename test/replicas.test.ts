import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey as hashOf } from '../src/identity/keys.js';
import { startApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { leadershipApplicationName } from '../src/store/leadership.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/**
 * Two stateless replicas on one PostgreSQL and one Redis, as a Kubernetes Service would run them. Each one's jobs run
 * on a manual clock: a change made on one is asserted on the other after one identity sync interval has passed.
 */
describe('replicas', () => {
  let first: TestApp;
  let second: App;
  let envoyA: FakeEnvoy;
  let envoyB: FakeEnvoy;
  const syncIntervalMs = 250;
  const firstTimers = new ManualClock(0);
  const secondTimers = new ManualClock(0);
  const oneSyncLater = () => Promise.all([firstTimers.advance(syncIntervalMs), secondTimers.advance(syncIntervalMs)]);

  beforeAll(async () => {
    // Exact counts need every call counted in Redis: a busy machine must not push one into the failure mode.
    const env = { TOLLGATE_SYNC_INTERVAL_MS: String(syncIntervalMs), TOLLGATE_REDIS_TIMEOUT_MS: '5000' };
    first = await startTestApp({ mode: 'production', env, timers: firstTimers });
    second = await startApp(loadConfig({ ...first.env, TOLLGATE_DATA_DIR: `${first.dataDir}/second` }), silentLogger, { timers: secondTimers });
    envoyA = new FakeEnvoy(first.grpcAddress);
    envoyB = new FakeEnvoy(`127.0.0.1:${second.grpc.port}`);
  });
  afterAll(async () => {
    envoyA?.close();
    envoyB?.close();
    await second?.stop();
    await first?.close();
  });

  it('share rate limits through Redis', async () => {
    await first.admin('POST', '/v1/customers', { id: 'shared', name: 'Shared' });
    const { body } = await first.admin('POST', '/v1/keys', { customer: 'shared', plan: 'free' });
    await oneSyncLater();
    expect(await second.identities.lookup(hashOf(body.key))).toBeDefined();
    const results = [];
    for (let i = 0; i < 12; i++) results.push((await (i % 2 ? envoyA : envoyB).check({ method: 'GET', path: '/api/v1/pets', key: body.key })).allowed);
    expect(results.filter(Boolean)).toHaveLength(10);
  });

  it('see a key revoked on the other replica by its next identity sync', async () => {
    await first.admin('POST', '/v1/customers', { id: 'revoked-elsewhere', name: 'R' });
    const { body } = await first.admin('POST', '/v1/keys', { customer: 'revoked-elsewhere', plan: 'pro' });
    await oneSyncLater();
    expect((await envoyB.check({ method: 'GET', path: '/api/v1/pets', key: body.key })).allowed).toBe(true);
    await first.admin('POST', `/v1/keys/${body.apiKey.id}/revoke`);
    await oneSyncLater();
    expect((await envoyB.check({ method: 'GET', path: '/api/v1/pets', key: body.key })).httpStatus).toBe(401);
  });

  it('have one leader; when its session dies the other takes over within seconds and rates at once', async () => {
    expect([first.app.leadership.leading, second.leadership.leading]).toEqual([true, false]);
    const ledPasses = async () => (await second.metrics.billingRuns.get()).values.find((value) => value.labels.result === 'led')?.value ?? 0;
    expect(await ledPasses()).toBe(0);
    const admin = new pg.Client({ connectionString: first.env.TOLLGATE_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND pid <> pg_backend_pid()', [leadershipApplicationName]);
    } finally {
      await admin.end();
    }
    // The follower's session is ended too (both are "tollgate leadership" sessions): it reconnects at its next attempt.
    await expect.poll(() => first.app.leadership.leading, { timeout: 5_000, interval: 10 }).toBe(false);
    // Attempts every 1–2 s on the second replica's clock; the first replica's clock stands still, so it does not compete.
    for (let attempt = 0; attempt < 5 && !second.leadership.leading; attempt++) await secondTimers.advance(2_000);
    expect(second.leadership.leading).toBe(true);
    expect(second.leadership.epoch).toBe(first.app.leadership.epoch + 1);
    // Well within the rating job's 30 s interval: its pass ran because leadership was gained.
    expect(await ledPasses()).toBe(1);
  });
});
