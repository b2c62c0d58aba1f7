import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { periodContaining } from '../src/rating/period.js';
import { FakeEnvoy, forwardedHeaders } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';
import { testUsageIdentity } from './support/usage.js';

/**
 * Issue #3's acceptance test: Envoy's side of ext_authz played with a gRPC client on the canonical protos,
 * against the embedded mode (PGlite + memory counters) and against Redis + PostgreSQL.
 */
describe.each(['embedded', 'production'] as const)('Check acceptance (%s)', (mode) => {
  let service: TestApp;
  let envoy: FakeEnvoy;
  let suffix = 0;

  beforeAll(async () => {
    service = await startTestApp({ mode });
    envoy = new FakeEnvoy(service.grpcAddress);
  });

  afterAll(async () => {
    envoy?.close();
    await service?.close();
  });

  async function newKey(plan: string): Promise<{ key: string; keyId: string; customerId: string; subscriptionId: string }> {
    const customerId = `acme-${plan}-${++suffix}`;
    expect((await service.admin('POST', '/v1/customers', { id: customerId, name: 'Acme' })).status).toBe(201);
    const created = await service.admin('POST', '/v1/keys', { customer: customerId, plan });
    expect(created.status).toBe(201);
    await service.app.identities.refresh();
    return { key: created.body.key, keyId: created.body.apiKey.id, customerId, subscriptionId: created.body.apiKey.subscriptionId };
  }

  it('gives a free key 10 GET /api/v1/pets, then 429 with Retry-After, RateLimit headers and upgrade_url', async () => {
    const { key } = await newKey('free');
    for (let i = 0; i < 10; i++) {
      const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
      expect(outcome.allowed, `request ${i + 1}`).toBe(true);
      expect(outcome.responseHeaders['ratelimit-remaining']).toBe(String(9 - i));
      expect(outcome.responseHeaders['ratelimit-limit']).toBe('10');
    }
    const denied = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    expect(denied.allowed).toBe(false);
    expect(denied.httpStatus).toBe(429);
    expect(denied.grpcCode).toBe(8);
    expect(Number(denied.responseHeaders['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(denied.responseHeaders['retry-after'])).toBeLessThanOrEqual(120);
    expect(denied.responseHeaders['ratelimit-remaining']).toBe('0');
    expect(denied.responseHeaders['content-type']).toBe('application/json');
    expect(denied.body).toMatchObject({
      error: { code: 'rate_limited', limit: 10, window: '1m', upgrade_url: 'https://petstore.example.com/pricing' },
    });
  });

  it('answers 403 to free on GET /api/v1/analytics and OK to pro', async () => {
    const free = await newKey('free');
    const denied = await envoy.check({ method: 'GET', path: '/api/v1/analytics', key: free.key });
    expect(denied.httpStatus).toBe(403);
    expect(denied.body).toMatchObject({ error: { code: 'not_entitled' } });

    const pro = await newKey('pro');
    const allowed = await envoy.check({ method: 'GET', path: '/api/v1/analytics', key: pro.key });
    expect(allowed.allowed).toBe(true);
    expect(allowed.upstreamHeaders['x-tollgate-plan-id']).toBe('pro');
  });

  it('answers 401 without a key and with an unknown key', async () => {
    const missing = await envoy.check({ method: 'GET', path: '/api/v1/pets' });
    expect(missing.httpStatus).toBe(401);
    expect(missing.body).toMatchObject({ error: { code: 'missing_key' } });
    const unknown = await envoy.check({ method: 'GET', path: '/api/v1/pets', key: 'tg_not-a-real-key' });
    expect(unknown.httpStatus).toBe(401);
    expect(unknown.body).toMatchObject({ error: { code: 'invalid_key' } });
  });

  it('accepts the key as Authorization: Bearer too', async () => {
    const { key } = await newKey('pro');
    const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', headers: { authorization: `Bearer ${key}` } });
    expect(outcome.allowed).toBe(true);
  });

  it('rejects a revoked key with 401 within 1 s, without an explicit cache refresh', async () => {
    const { key, keyId } = await newKey('pro');
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    expect((await service.admin('POST', `/v1/keys/${keyId}/revoke`)).status).toBe(200);
    const revokedAt = Date.now();
    let outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    while (outcome.allowed && Date.now() - revokedAt < 1_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    }
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
    expect(outcome.httpStatus).toBe(401);
    expect(outcome.body).toMatchObject({ error: { code: 'key_revoked' } });
  });

  it('moves a key to its new plan within 1 s of a plan change', async () => {
    const { key, subscriptionId } = await newKey('free');
    expect((await envoy.check({ method: 'GET', path: '/api/v1/analytics', key })).httpStatus).toBe(403);
    expect((await service.admin('POST', `/v1/subscriptions/${subscriptionId}/change-plan`, { plan: 'pro' })).status).toBe(200);
    const changedAt = Date.now();
    let outcome = await envoy.check({ method: 'GET', path: '/api/v1/analytics', key });
    while (!outcome.allowed && Date.now() - changedAt < 1_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      outcome = await envoy.check({ method: 'GET', path: '/api/v1/analytics', key });
    }
    expect(outcome.allowed).toBe(true);
  });

  it('counts POST /api/v1/pets/:id/image as 10 quota units', async () => {
    const { key } = await newKey('pro');
    const first = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    expect(first.responseHeaders['x-quota-remaining']).toBe('49999');
    const image = await envoy.check({ method: 'POST', path: '/api/v1/pets/42/image', key });
    expect(image.allowed).toBe(true);
    expect(image.responseHeaders['x-quota-remaining']).toBe('49989');
    expect(image.metadata).toMatchObject({ endpoint_id: 'upload-pet-image', weight: 10 });
  });

  it('never lets a client-sent identity header reach the upstream', async () => {
    const { key, customerId } = await newKey('pro');
    const spoofed = {
      'x-tollgate-customer-id': 'someone-else',
      'x-tollgate-plan-id': 'enterprise',
      'x-tollgate-admin': 'true',
    };
    const raw = await envoy.checkRaw({
      attributes: {
        request: {
          http: {
            method: 'GET',
            path: '/api/v1/pets',
            host: 'api.petstore.example.com',
            headers: { ':method': 'GET', ':path': '/api/v1/pets', 'x-api-key': key, ...spoofed },
          },
        },
      },
    });
    // Envoy appends to a client header only when append is true: ours must carry an explicit BoolValue that is
    // false (an empty wrapper on the wire, so it decodes with `value` absent).
    for (const option of raw.ok_response!.headers) {
      expect(option.append).toBeDefined();
      expect(option.append!.value ?? false).toBe(false);
    }
    const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key, headers: spoofed });
    const upstream = forwardedHeaders(outcome.requestHeaders, outcome);
    expect(upstream['x-tollgate-customer-id']).toBe(customerId);
    expect(upstream['x-tollgate-plan-id']).toBe('pro');
    expect(upstream['x-tollgate-admin']).toBeUndefined();
    expect(outcome.headersToRemove).toEqual(['x-tollgate-admin']);
  });

  it('sends customer, plan, product, endpoint, weight, key id, period and a signed usage id as dynamic metadata', async () => {
    const { key, keyId, customerId, subscriptionId } = await newKey('pro');
    const [subscription] = (await service.admin('GET', `/v1/customers/${customerId}/subscriptions`)).body.data as { periodAnchor: string }[];
    const outcome = await envoy.check({ method: 'POST', path: '/api/v1/pets', key, headers: { 'x-request-id': 'chosen-by-client' } });
    expect(outcome.metadata).toEqual({
      request_id: 'chosen-by-client',
      customer_id: customerId,
      subscription_id: subscriptionId,
      plan_id: 'pro',
      product_id: 'petstore',
      endpoint_id: 'create-pet',
      weight: 2,
      key_id: keyId,
      period_start: periodContaining(Date.parse(subscription!.periodAnchor), Date.now()).start,
      decision: 'allow',
      usage_id: expect.stringMatching(/^[\w-]{17,}$/),
      usage_sig: expect.stringMatching(/^[\w-]{22}$/),
    });
    expect(testUsageIdentity.verify(outcome.metadata)).toMatchObject({ valid: true, usageId: outcome.metadata.usage_id });
    // The same request id again: a usage id of its own.
    const again = await envoy.check({ method: 'POST', path: '/api/v1/pets', key, headers: { 'x-request-id': 'chosen-by-client' } });
    expect(again.metadata.usage_id).not.toBe(outcome.metadata.usage_id);
  });

  it('answers 402 for a suspended account, saying why, and lets it through again once reactivated', async () => {
    const { key, customerId } = await newKey('pro');
    // An operator's suspension (its reason is the operator's note, not for the customer's eyes) asks for no payment.
    await service.admin('PATCH', `/v1/customers/${customerId}`, { status: 'suspended', statusReason: 'abuse report #12' });
    await service.app.identities.refresh();
    const suspended = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    expect(suspended.httpStatus).toBe(402);
    expect(suspended.body).toMatchObject({ error: { code: 'account_suspended', reason: 'suspended_by_provider' } });
    expect(JSON.stringify(suspended.body)).not.toMatch(/settle|balance|abuse/);
    // Dunning's suspension for an unpaid invoice asks the customer to pay.
    await service.admin('PATCH', `/v1/customers/${customerId}`, { status: 'suspended', statusReason: 'payment_overdue: Stripe invoice in_1 unpaid' });
    await service.app.identities.refresh();
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).body).toMatchObject({
      error: { code: 'account_suspended', reason: 'payment_overdue', message: expect.stringMatching(/overdue payment; settle the outstanding balance/) },
    });
    await service.admin('PATCH', `/v1/customers/${customerId}`, { status: 'active' });
    await service.app.identities.refresh();
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
  });

  it('answers a malformed Check with a 400 denial, not a gRPC error', async () => {
    const raw = await envoy.checkRaw({});
    expect(raw.status.code).not.toBe(0);
    expect(raw.denied_response?.status.code).toBe('BadRequest');
  });
});
