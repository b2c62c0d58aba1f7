import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../src/identity/keys.js';
import { startTestApp, type TestApp } from './support/services.js';

describe('admin API', () => {
  let service: TestApp;
  beforeAll(async () => {
    service = await startTestApp({ mode: 'embedded' });
  });
  afterAll(async () => {
    await service?.close();
  });

  describe('happy path', () => {
    it('creates a customer, a key on a plan, lists and revokes it', async () => {
      const customer = await service.admin('POST', '/v1/customers', { id: 'globex', name: 'Globex', email: 'ops@globex.example' });
      expect(customer).toMatchObject({ status: 201, body: { id: 'globex', status: 'active', email: 'ops@globex.example' } });

      const created = await service.admin('POST', '/v1/keys', { customer: 'globex', plan: 'pro', name: 'ci' });
      expect(created.status).toBe(201);
      expect(created.body.key).toMatch(/^tg_[0-9A-Za-z]{40,}$/);
      expect(created.body.apiKey).toMatchObject({ customerId: 'globex', status: 'active', name: 'ci', prefix: created.body.key.slice(0, 9) });

      const subscriptions = await service.admin('GET', '/v1/customers/globex/subscriptions');
      expect(subscriptions.body.data).toHaveLength(1);
      expect(subscriptions.body.data[0]).toMatchObject({ planId: 'pro', productId: 'petstore', status: 'active' });

      const second = await service.admin('POST', '/v1/keys', { customer: 'globex', plan: 'pro' });
      expect(second.body.apiKey.subscriptionId).toBe(created.body.apiKey.subscriptionId);

      const listed = await service.admin('GET', '/v1/keys?customer=globex');
      expect(listed.body.data).toHaveLength(2);
      expect(JSON.stringify(listed.body)).not.toContain(created.body.key);

      const revoked = await service.admin('POST', `/v1/keys/${created.body.apiKey.id}/revoke`);
      expect(revoked.body).toMatchObject({ status: 'revoked' });
      expect(revoked.body.revokedAt).not.toBeNull();
    });

    it('changes plan and cancels subscriptions', async () => {
      await service.admin('POST', '/v1/customers', { id: 'initech', name: 'Initech' });
      const subscription = await service.admin('POST', '/v1/customers/initech/subscriptions', { plan: 'free' });
      expect(subscription.status).toBe(201);
      const changed = await service.admin('POST', `/v1/subscriptions/${subscription.body.id}/change-plan`, { plan: 'enterprise' });
      expect(changed.body.planId).toBe('enterprise');
      const canceled = await service.admin('POST', `/v1/subscriptions/${subscription.body.id}/cancel`);
      expect(canceled.body).toMatchObject({ status: 'canceled' });
      expect((await service.admin('POST', `/v1/subscriptions/${subscription.body.id}/cancel`)).status).toBe(409);
    });

    it('lists public plans with their limits', async () => {
      const plans = await service.admin('GET', '/v1/plans');
      expect(plans.body.data.map((plan: { id: string }) => plan.id)).toEqual(['free', 'pro', 'enterprise', 'pay-per-call', 'hybrid', 'metered']);
      expect(plans.body.data[0]).toMatchObject({ rateLimits: [{ requests: 10, windowSeconds: 60 }], quota: { units: 1000, whenExhausted: 'deny_429' } });
      const pricing = Object.fromEntries(plans.body.data.map((plan: { id: string; pricing: unknown }) => [plan.id, plan.pricing]));
      expect(pricing.free).toEqual({ currency: 'USD', mode: 'postpaid' });
      expect(pricing.pro).toEqual({ currency: 'USD', mode: 'postpaid', recurringFee: '49.00' });
      expect(pricing.enterprise.usage).toEqual({ model: 'per_unit', includedUnits: 1_000_000, unitPrice: '0.0004' });
      expect(pricing['pay-per-call']).toMatchObject({ mode: 'prepaid', setupFee: '5.00', endpointPrices: { read: '0.005', write: '0.02', image: '0.10', '*': '0.01' } });
      expect(pricing.metered.usage.tiers).toEqual([{ upTo: 100_000, unitPrice: '0.01' }, { upTo: 1_000_000, unitPrice: '0.005' }, { upTo: null, unitPrice: '0.003' }]);
    });

    it('serves an OpenAPI document describing every admin route', async () => {
      const response = await fetch(`${service.httpUrl}/openapi.json`);
      const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, { requestBody?: unknown }>> };
      expect(document.openapi).toBe('3.1.0');
      expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/v1/customers', '/v1/customers/{id}', '/v1/keys', '/v1/keys/{id}/revoke']));
      expect(document.paths['/v1/keys']!.post!.requestBody).toBeDefined();
    });

    it('names every operation with an operationId of its own, as client generators need', async () => {
      const document = (await (await fetch(`${service.httpUrl}/openapi.json`)).json()) as { paths: Record<string, Record<string, { operationId?: string }>> };
      const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ at: `${method} ${path}`, id: operation.operationId })));
      expect(operations.length).toBeGreaterThan(50);
      for (const { at, id } of operations) expect({ at, id }).toEqual({ at, id: expect.stringMatching(/^[a-z][A-Za-z]+$/) });
      const ids = operations.map(({ id }) => id);
      expect(ids.filter((id, index) => ids.indexOf(id) !== index)).toEqual([]);
      expect(document.paths['/v1/customers/{id}/wallet/top-ups']!.post!.operationId).toBe('topUpWallet');
    });
  });

  describe('errors', () => {
    it.each([
      ['a missing field', '/v1/customers', {}, 'name'],
      ['a wrong type', '/v1/customers', { name: 42 }, 'name'],
      ['an unknown field', '/v1/customers', { name: 'A', plan: 'free' }, 'plan'],
      ['a bad email', '/v1/customers', { name: 'A', email: 'nope' }, 'email'],
      ['a bad id', '/v1/customers', { id: 'has space', name: 'A' }, 'id'],
      ['neither plan nor subscription', '/v1/keys', { customer: 'x' }, 'plan'],
      ['an OAuth client without plan or subscription', '/v1/oauth-clients', { customer: 'x', clientId: 'c' }, 'plan'],
      ['an OAuth client with an unknown field', '/v1/oauth-clients', { customer: 'x', clientId: 'c', plan: 'free', scope: 'all' }, 'scope'],
    ])('answers 400 naming the field for %s', async (_case, path, body, field) => {
      const response = await service.admin('POST', path, body);
      expect(response.status).toBe(400);
      expect(response.body.error).toMatchObject({ code: 'invalid_request', field });
      expect(response.body.error.message).toContain(field);
    });

    it('answers 400 for a body that is not JSON', async () => {
      const response = await fetch(`${service.httpUrl}/v1/customers`, {
        method: 'POST',
        headers: { authorization: 'Bearer test-admin-token-0123456789', 'content-type': 'application/json' },
        body: '{"name":',
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: 'invalid_request', field: 'body' } });
    });

    it('answers 400 for a malformed percent-escape in the path', async () => {
      const response = await service.admin('GET', '/v1/customers/%E0%A4%A');
      expect(response.status).toBe(400);
      expect(response.body.error).toMatchObject({ code: 'invalid_request', field: 'id' });
    });

    it('answers 400 naming the field for a NUL byte in a path id or a body value', async () => {
      const inPath = await service.admin('GET', '/v1/customers/a%00b');
      expect(inPath.status).toBe(400);
      expect(inPath.body.error).toMatchObject({ code: 'invalid_request', field: 'id' });
      const inBody = await service.admin('POST', '/v1/customers', { name: 'Nul\u0000Corp' });
      expect(inBody.status).toBe(400);
      expect(inBody.body.error).toMatchObject({ code: 'invalid_request' });
    });

    it.each([
      ['an admin route, announced by Content-Length', '/v1/customers', true],
      ['an admin route, chunked', '/v1/customers', false],
      ['the public Stripe webhook', '/webhooks/stripe', true],
    ])('answers 413 to a body over 1 MB on %s and closes the connection without reading the rest', async (_case, path, announced) => {
      const { hostname, port } = new URL(service.httpUrl);
      const socket = connect(Number(port), hostname);
      let answer = '';
      socket.on('data', (chunk) => (answer += chunk));
      socket.on('error', () => {});
      const closed = new Promise((resolve) => socket.once('close', resolve));
      const length = announced ? 'Content-Length: 2000000' : 'Transfer-Encoding: chunked';
      socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-admin-token-0123456789\r\nContent-Type: application/json\r\n${length}\r\n\r\n`);
      // Well over the limit but short of the announced length: the server must not wait for the rest.
      const part = Buffer.alloc(1100 * 1024, 'a');
      socket.write(announced ? part : Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]));
      const started = Date.now();
      await closed;
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(answer.toLowerCase()).toContain('connection: close');
      expect(answer).toContain('"code":"payload_too_large"');
    });

    it('answers 404 for unknown customers, keys and routes, 405 for a wrong method', async () => {
      expect((await service.admin('GET', '/v1/customers/nobody')).status).toBe(404);
      expect((await service.admin('POST', '/v1/keys/key_nope/revoke')).status).toBe(404);
      expect((await service.admin('POST', '/v1/keys', { customer: 'nobody', plan: 'free' })).status).toBe(404);
      expect((await service.admin('GET', '/v1/nothing')).status).toBe(404);
      expect((await service.admin('GET', '/v1/customers/nobody/alerts')).status).toBe(404);
      expect((await service.admin('DELETE', '/v1/customers')).status).toBe(405);
    });

    it('answers 400 for a page cursor past the range of row ids, and 404 for such an id', async () => {
      const huge = '99999999999999999999999';
      for (const path of [`/v1/alerts/deliveries?after=${huge}`, `/v1/stripe/outbox?after=${huge}`]) {
        const response = await service.admin('GET', path);
        expect([response.status, response.body.error?.field], path).toEqual([400, 'after']);
      }
      expect((await service.admin('POST', `/v1/alerts/deliveries/${huge}/retry`)).status).toBe(404);
      expect((await service.admin('GET', '/v1/alerts/deliveries?after=9223372036854775807')).status).toBe(200);
    });

    it('answers 409 for a duplicate customer and a second subscription to the same product', async () => {
      await service.admin('POST', '/v1/customers', { id: 'hooli', name: 'Hooli' });
      expect((await service.admin('POST', '/v1/customers', { id: 'hooli', name: 'Hooli' })).status).toBe(409);
      await service.admin('POST', '/v1/keys', { customer: 'hooli', plan: 'free' });
      const conflicting = await service.admin('POST', '/v1/keys', { customer: 'hooli', plan: 'pro' });
      expect(conflicting.status).toBe(409);
      expect(conflicting.body.error.message).toMatch(/change the subscription's plan/);
    });

    it('answers 400 for an unknown plan and 403 past the plan key limit', async () => {
      await service.admin('POST', '/v1/customers', { id: 'umbrella', name: 'Umbrella' });
      expect((await service.admin('POST', '/v1/keys', { customer: 'umbrella', plan: 'platinum' })).body.error).toMatchObject({ code: 'invalid_request', field: 'plan' });
      await service.admin('POST', '/v1/keys', { customer: 'umbrella', plan: 'free' });
      await service.admin('POST', '/v1/keys', { customer: 'umbrella', plan: 'free' });
      const third = await service.admin('POST', '/v1/keys', { customer: 'umbrella', plan: 'free' });
      expect(third.status).toBe(403);
      expect(third.body.error.message).toMatch(/at most 2 keys/);
    });
  });

  describe('security', () => {
    it('refuses requests without the admin token or with a wrong one', async () => {
      const anonymous = await fetch(`${service.httpUrl}/v1/customers`);
      expect(anonymous.status).toBe(401);
      const wrong = await fetch(`${service.httpUrl}/v1/customers`, { headers: { authorization: 'Bearer test-admin-token-0123456780' } });
      expect(wrong.status).toBe(401);
      expect(await wrong.json()).toMatchObject({ error: { code: 'unauthorized' } });
    });

    it('stores only a hash of each key', async () => {
      await service.admin('POST', '/v1/customers', { id: 'vault', name: 'Vault' });
      const created = await service.admin('POST', '/v1/keys', { customer: 'vault', plan: 'free' });
      const rows = await service.app.db.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [created.body.apiKey.id]);
      expect(rows[0]!.hash).toBe(hashApiKey(created.body.key));
      expect(JSON.stringify(rows)).not.toContain(created.body.key);
    });

    it('leaves health, readiness, metrics and the OpenAPI document public', async () => {
      for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
        expect((await fetch(`${service.httpUrl}${path}`)).status, path).toBe(200);
      }
    });
  });
});
