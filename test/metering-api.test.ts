import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { jsonOf, runCli } from './support/cli.js';
import { FakeEnvoy } from './support/envoy.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

/**
 * Usage reports end to end on the embedded stack: Checks through ext_authz, their access-log entries through ALS
 * carrying the Check's dynamic metadata, as Envoy chains them, then the admin, self-service and CLI views.
 */

let service: TestApp;
let envoy: FakeEnvoy;
let als: AccessLogClient;
const keys: Record<string, string> = {};

beforeAll(async () => {
  service = await startTestApp({ mode: 'embedded' });
  envoy = new FakeEnvoy(service.grpcAddress);
  als = new AccessLogClient(service.grpcAddress);
  for (const customer of ['acme', 'globex']) {
    await service.admin('POST', '/v1/customers', { id: customer, name: customer });
    keys[customer] = (await service.admin('POST', '/v1/keys', { customer, plan: 'pro' })).body.key;
  }
  await service.app.identities.refresh();
});
afterAll(async () => {
  als?.close();
  envoy?.close();
  await service?.close();
});

/** One request through Envoy: the Check, then the access-log entry Envoy writes once the response is sent. */
async function callApi(key: string, method: string, path: string, status: number, responseBodyBytes = 1_000) {
  const outcome = await envoy.check({ method, path, key });
  const stream = als.open();
  await stream.send([
    httpEntry({
      requestId: outcome.requestHeaders['x-request-id']!,
      authz: outcome.metadata,
      method,
      status: outcome.allowed ? status : outcome.httpStatus,
      requestHeadersBytes: 100,
      requestBodyBytes: 0,
      responseHeadersBytes: 0,
      responseBodyBytes,
    }),
  ]);
  expect(await stream.end()).toEqual({});
  return outcome;
}

const selfUsage = (headers: Record<string, string>, query = '') => fetch(`${service.httpUrl}/v1/self/usage${query}`, { headers });

describe('usage reports', () => {
  beforeAll(async () => {
    for (let i = 0; i < 3; i++) await callApi(keys.acme!, 'GET', '/api/v1/pets', 200);
    await callApi(keys.acme!, 'POST', '/api/v1/pets/7/image', 404, 50);
    expect((await callApi(keys.acme!, 'GET', '/api/v1/webhooks', 200)).allowed).toBe(false); // not in Pro
    await callApi(keys.globex!, 'GET', '/api/v1/pets/1', 200);
    await service.app.metering.meter.flush();
  });

  it('reports the current period per subscription: totals, endpoints, bytes and the remaining quota', async () => {
    const { status, body } = await service.admin('GET', '/v1/customers/acme/usage');
    expect(status).toBe(200);
    expect(body.customerId).toBe('acme');
    expect(body.subscriptions).toHaveLength(1);
    const [subscription] = body.subscriptions;
    expect(subscription).toMatchObject({
      planId: 'pro',
      productId: 'petstore',
      status: 'active',
      totals: { calls: 4, units: 13, billableCalls: 4, billableUnits: 13, deniedCalls: 1, requestBytes: 400, responseBytes: 3_050 },
      quota: { limit: 50_000, used: 13, remaining: 49_987 },
    });
    expect(Date.parse(subscription.period.start)).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(subscription.period.end)).toBeGreaterThan(Date.now());
    expect(subscription.endpoints).toEqual([
      expect.objectContaining({ endpointId: 'list-pets', calls: 3, units: 3, responseBytes: 3_000 }),
      expect.objectContaining({ endpointId: 'upload-pet-image', calls: 1, units: 10, billableUnits: 10 }),
      expect.objectContaining({ endpointId: 'webhooks', calls: 0, units: 0, deniedCalls: 1 }),
    ]);
  });

  it('takes ?period=YYYY-MM as the billing period starting in that month', async () => {
    const current = (await service.admin('GET', '/v1/customers/acme/usage')).body.subscriptions[0];
    const thisMonth = await service.admin('GET', `/v1/customers/acme/usage?period=${current.period.start.slice(0, 7)}`);
    expect(thisMonth.body.subscriptions[0]).toEqual(current);
    const nextYear = `${new Date().getUTCFullYear() + 1}-01`;
    const future = await service.admin('GET', `/v1/customers/acme/usage?period=${nextYear}`);
    expect(future.body.subscriptions[0].totals.calls).toBe(0);
    expect(future.body.subscriptions[0].period.start.slice(0, 7)).toBe(nextYear);
    const beforeSubscribing = await service.admin('GET', '/v1/customers/acme/usage?period=2020-01');
    expect(beforeSubscribing.body.subscriptions).toEqual([]);
    expect((await service.admin('GET', '/v1/customers/acme/usage?period=2026-13')).status).toBe(400);
    expect((await service.admin('GET', '/v1/customers/nobody/usage')).status).toBe(404);
  });

  it('lets a customer read their own usage, and only theirs, with their API key', async () => {
    const admin = (await service.admin('GET', '/v1/customers/acme/usage')).body;
    const withHeader = await selfUsage({ 'x-api-key': keys.acme! });
    expect(withHeader.status).toBe(200);
    expect(await withHeader.json()).toEqual(admin);
    const withBearer = await selfUsage({ authorization: `Bearer ${keys.globex}` });
    const globex = (await withBearer.json()) as { customerId: string; subscriptions: { totals: object }[] };
    expect(globex.customerId).toBe('globex');
    expect(globex.subscriptions[0]!.totals).toMatchObject({ calls: 1, units: 1 });
    expect((await selfUsage({})).status).toBe(401);
    expect((await selfUsage({ 'x-api-key': 'tg_not-a-key' })).status).toBe(401);
    expect((await selfUsage({ authorization: `Bearer ${adminToken}` })).status).toBe(401);
  });

  it('reconciles the quota counter with metered units, and shows calls not metered yet', async () => {
    const balanced = await service.admin('GET', '/v1/customers/acme/usage/reconcile');
    expect(balanced.body).toMatchObject({
      customerId: 'acme',
      pendingEvents: 0,
      subscriptions: [{ planId: 'pro', counterUnits: 13, meteredUnits: 13, difference: 0 }],
    });
    // A call Envoy allowed but whose access-log entry has not arrived (or was lost on Envoy's side).
    expect((await envoy.check({ method: 'POST', path: '/api/v1/pets', key: keys.acme! })).allowed).toBe(true);
    const behind = await service.admin('GET', '/v1/customers/acme/usage/reconcile');
    expect(behind.body.subscriptions[0]).toMatchObject({ counterUnits: 15, meteredUnits: 13, difference: 2 });
  });

  it('is available from the CLI', async () => {
    const env = { TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken };
    const usage = await runCli(env, 'usage', '--customer', 'acme', '--period', new Date().toISOString().slice(0, 7), '--json');
    const reconciliation = await runCli(env, 'usage', 'reconcile', '--customer', 'acme', '--json');
    expect([usage.code, reconciliation.code]).toEqual([0, 0]);
    expect(jsonOf(usage).subscriptions[0].totals.units).toBe(13);
    expect(jsonOf(reconciliation).subscriptions[0].meteredUnits).toBe(13);
  });
});

describe('usage of a past period', () => {
  const clock = new ManualClock(Date.parse('2026-10-01T00:00:00Z'));
  let past: TestApp;
  beforeAll(async () => {
    past = await startTestApp({ mode: 'embedded', clock });
  });
  afterAll(async () => {
    await past?.close();
  });

  it('shows the plan and quota it was counted under, not the plan the subscription has now', async () => {
    await past.admin('POST', '/v1/customers', { id: 'upgraded', name: 'Upgraded' });
    const { apiKey } = (await past.admin('POST', '/v1/keys', { customer: 'upgraded', plan: 'free' })).body;
    clock.set(Date.parse('2026-11-05T00:00:00Z'));
    expect((await past.admin('POST', `/v1/subscriptions/${apiKey.subscriptionId}/change-plan`, { plan: 'pro' })).status).toBe(200);
    const october = (await past.admin('GET', '/v1/customers/upgraded/usage?period=2026-10')).body.subscriptions[0];
    expect(october).toMatchObject({ planId: 'free', quota: { limit: 1_000 } });
    const november = (await past.admin('GET', '/v1/customers/upgraded/usage')).body.subscriptions[0];
    expect(november).toMatchObject({ planId: 'pro', quota: { limit: 50_000 } });
  });
});
