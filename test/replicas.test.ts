import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey as hashOf } from '../src/identity/keys.js';
import { startApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config/config.js';
import { silentLogger } from '../src/kernel/logger.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/** Two stateless replicas on one PostgreSQL and one Redis, as a Kubernetes Service would run them. */
describe('replicas', () => {
  let first: TestApp;
  let second: App;
  let envoyA: FakeEnvoy;
  let envoyB: FakeEnvoy;

  beforeAll(async () => {
    first = await startTestApp({ mode: 'production', env: { TOLLGATE_SYNC_INTERVAL_MS: '250' } });
    second = await startApp(loadConfig({ ...first.env, TOLLGATE_DATA_DIR: `${first.dataDir}/second` }), silentLogger);
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
    await expect.poll(() => second.identities.resolve(hashOf(body.key)) !== undefined, { timeout: 2_000, interval: 20 }).toBe(true);
    const results = [];
    for (let i = 0; i < 12; i++) results.push((await (i % 2 ? envoyA : envoyB).check({ method: 'GET', path: '/api/v1/pets', key: body.key })).allowed);
    expect(results.filter(Boolean)).toHaveLength(10);
  });

  it('see a key revoked on the other replica within a second', async () => {
    await first.admin('POST', '/v1/customers', { id: 'revoked-elsewhere', name: 'R' });
    const { body } = await first.admin('POST', '/v1/keys', { customer: 'revoked-elsewhere', plan: 'pro' });
    await expect.poll(async () => (await envoyB.check({ method: 'GET', path: '/api/v1/pets', key: body.key })).allowed, { timeout: 2_000, interval: 20 }).toBe(true);
    await first.admin('POST', `/v1/keys/${body.apiKey.id}/revoke`);
    const revokedAt = Date.now();
    await expect
      .poll(async () => (await envoyB.check({ method: 'GET', path: '/api/v1/pets', key: body.key })).httpStatus, { timeout: 1_000, interval: 20 })
      .toBe(401);
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
  });
});
