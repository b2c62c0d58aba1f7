import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { MemoryCounterStore } from '../src/counters/memory.js';
import { ResilientCounterStore } from '../src/counters/resilient.js';
import { CounterStoreUnavailable, walletKey } from '../src/counters/store.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, testRedisUrl, type TestApp } from './support/services.js';

/**
 * Issue #5: prepaid wallets end to end. Envoy's side is played over gRPC (Check and access logs); usage reaches the
 * invoice through metering; the ledger and the invoice must agree to the cent.
 */

const at = (iso: string) => Date.parse(iso);
const minutes = (n: number) => n * 60_000;

describe.each(['embedded', 'production'] as const)('prepaid wallets (%s)', (mode) => {
  let service: TestApp;
  let envoy: FakeEnvoy;
  let accessLogs: AccessLogClient;
  const clock = new ManualClock(at('2026-11-01T10:00:00Z'));
  let suffix = 0;

  beforeAll(async () => {
    service = await startTestApp({ mode, clock });
    await service.app.ratingLoop.stop();
    envoy = new FakeEnvoy(service.grpcAddress);
    accessLogs = new AccessLogClient(service.grpcAddress);
  });
  afterAll(async () => {
    envoy?.close();
    accessLogs?.close();
    await service?.close();
  });

  async function customer(): Promise<string> {
    const id = `wallet-${mode}-${++suffix}`;
    expect((await service.admin('POST', '/v1/customers', { id, name: id })).status).toBe(201);
    return id;
  }

  const topUp = (customerId: string, amount: string, reference: string) =>
    service.admin('POST', `/v1/customers/${customerId}/wallet/top-ups`, { amount, reference });
  const wallet = async (customerId: string) => (await service.admin('GET', `/v1/customers/${customerId}/wallet`)).body.data[0];
  const ledger = async (customerId: string) => (await service.admin('GET', `/v1/customers/${customerId}/wallet/ledger`)).body.data as Entry[];

  it('charges a purchase and every call to the wallet, denies 402 at once when it is empty, and the ledger agrees with the invoice', async () => {
    clock.set(at('2026-11-01T10:00:00Z'));
    const id = await customer();
    expect((await topUp(id, '6.00', 'order-1')).status).toBe(201);
    const purchase = await service.admin('POST', `/v1/customers/${id}/purchases`, { plan: 'pay-per-call' });
    expect(purchase.status).toBe(201);
    expect(purchase.body.wallets).toEqual([expect.objectContaining({ currency: 'USD', balance: '1.00', available: '1.00' })]);
    const subscriptionId = purchase.body.subscription.id as string;
    const created = await service.admin('POST', '/v1/keys', { customer: id, subscription: subscriptionId });
    await service.app.identities.refresh();
    const key = created.body.key as string;

    // $1.00 left: 100 reads at $0.005, 10 writes at $0.02 and 3 images at $0.10.
    const calls = [
      ...Array.from({ length: 100 }, () => ({ method: 'GET', path: '/api/v1/pets' })),
      ...Array.from({ length: 10 }, () => ({ method: 'POST', path: '/api/v1/pets' })),
      ...Array.from({ length: 3 }, () => ({ method: 'POST', path: '/api/v1/pets/7/image' })),
    ];
    const stream = accessLogs.open();
    for (const call of calls) {
      clock.advance(1_000);
      const outcome = await envoy.check({ ...call, key });
      expect(outcome.allowed, `${call.method} ${call.path}`).toBe(true);
      // What Envoy's access logger then sends: the Check's metadata and the upstream's answer.
      await stream.send([
        httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, method: call.method, status: 200, startMs: clock.now() }),
      ]);
    }
    const denied = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    expect(denied).toMatchObject({
      allowed: false,
      httpStatus: 402,
      body: { error: { code: 'wallet_exhausted', balance: '0.00', price: '0.005', currency: 'USD', plan: 'pay-per-call' } },
    });
    await stream.end();
    await service.app.metering.meter.flush();
    expect(await wallet(id)).toMatchObject({ balance: '1.00', available: '0.00', exhausted: true, lowBalance: true });

    // The period ends; the next pass settles the calls into the ledger and finalizes the invoice.
    clock.set(at('2026-12-01T10:00:00Z') + minutes(6));
    await service.app.ratingLoop.runOnce();
    const [invoice] = (await service.admin('GET', `/v1/customers/${id}/invoices?status=finalized`)).body.data;
    const detail = (await service.admin('GET', `/v1/invoices/${invoice.id}`)).body;
    expect(detail).toMatchObject({ mode: 'prepaid', status: 'finalized', total: '6.00', calls: 113 });
    expect(detail.lines.map((line: { kind: string; description: string; amount: string }) => [line.kind, line.description, line.amount])).toEqual([
      ['setup_fee', 'Setup fee', '5.00'],
      ['endpoint_usage', '3 calls to image at 0.10 USD', '0.30'],
      ['endpoint_usage', '100 calls to read at 0.005 USD', '0.50'],
      ['endpoint_usage', '10 calls to write at 0.02 USD', '0.20'],
    ]);
    const entries = await ledger(id);
    expect(entries.map((entry) => [entry.kind, entry.amount])).toEqual([
      ['top_up', '6.00'],
      ['setup_fee', '-5.00'],
      ['usage', '-1.00'],
    ]);
    const charged = entries.filter((entry) => entry.subscriptionId === subscriptionId && entry.periodStart === invoice.periodStart);
    expect(charged.reduce((sum, entry) => sum + Math.round(Number(entry.amount) * 100), 0)).toBe(-600);
    expect(entries.at(-1)!.balanceAfter).toBe('0.00');
    expect(await (await fetch(`${service.httpUrl}/metrics`)).text()).toMatch(/tollgate_prepaid_wallets\{currency="USD",state="exhausted"\} [1-9]/);

    // A top-up lets calls through again at once.
    await topUp(id, '1.00', 'order-2');
    expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    expect(await (await fetch(`${service.httpUrl}/metrics`)).text()).toMatch(/tollgate_invoices_finalized_total\{mode="prepaid"\} [1-9]/);
  });

  it('refuses a purchase the wallet cannot pay for with 402 insufficient_funds, and keeps nothing of it', async () => {
    const id = await customer();
    await topUp(id, '3.00', 'order-1');
    const refused = await service.admin('POST', `/v1/customers/${id}/purchases`, { plan: 'pay-per-call' });
    expect(refused.status).toBe(402);
    expect(refused.body.error).toMatchObject({ code: 'insufficient_funds' });
    expect(refused.body.error.message).toMatch(/has 3.00 USD, short of the 5.00 USD due now \(setup fee 5.00\)/);
    expect((await service.admin('GET', `/v1/customers/${id}/subscriptions`)).body.data).toEqual([]);
    expect((await ledger(id)).map((entry) => entry.kind)).toEqual(['top_up']);
  });

  it('tops up once per client reference and keeps the ledger append-only', async () => {
    const id = await customer();
    const first = await topUp(id, '50.00', 'R-1');
    const again = await topUp(id, '50.00', 'R-1');
    expect([first.status, again.status]).toEqual([201, 200]);
    expect(again.body.entry.id).toBe(first.body.entry.id);
    const conflicting = await topUp(id, '60.00', 'R-1');
    expect(conflicting.status).toBe(409);
    expect(await ledger(id)).toHaveLength(1);
    expect(await wallet(id)).toMatchObject({ balance: '50.00', available: '50.00', lowBalance: false });
    await expect(service.app.db.query('UPDATE wallet_entries SET amount = 1 WHERE customer_id = $1', [id])).rejects.toThrow(/append-only/);
    await expect(service.app.db.query('DELETE FROM wallet_entries WHERE customer_id = $1', [id])).rejects.toThrow(/append-only/);

    const patched = await service.admin('PATCH', `/v1/customers/${id}/wallet`, { lowBalanceThreshold: '75.00' });
    expect(patched.body).toMatchObject({ lowBalanceThreshold: '75.00', lowBalance: true });
    const wrong = await service.admin('PATCH', `/v1/customers/${id}/wallet`, { lowBalanceThreshold: '1.001' });
    expect([wrong.status, wrong.body.error.field]).toEqual([400, 'lowBalanceThreshold']);
    // More than a wallet can hold (and than PostgreSQL's bigint) is refused by name, not a 500.
    const huge = await service.admin('PATCH', `/v1/customers/${id}/wallet`, { lowBalanceThreshold: '99999999999999999999999' });
    expect([huge.status, huge.body.error.field]).toEqual([400, 'lowBalanceThreshold']);
    expect((await topUp(id, '0', 'R-2')).status).toBe(400);
    // Beyond what the counters hold exactly (2^53 micro-cents, about $90M).
    expect((await topUp(id, '90071993.00', 'R-3')).body.error).toMatchObject({ code: 'invalid_request', field: 'amount' });
  });

  it.runIf(mode === 'production')('rebuilds a lost mirror from the ledger, less the spend not yet settled', async () => {
    clock.set(at('2026-12-05T00:00:00Z'));
    const id = await customer();
    await topUp(id, '5.10', 'order-1');
    const created = await service.admin('POST', '/v1/keys', { customer: id, plan: 'pay-per-call' });
    await service.app.identities.refresh();
    const key = created.body.key as string;
    for (let i = 0; i < 3; i++) expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    expect(await wallet(id)).toMatchObject({ balance: '0.10', available: '0.085' });

    const redis = new Redis(testRedisUrl);
    try {
      await redis.del(walletKey(service.app.config.redis.prefix, id, 'w:USD'));
      expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).httpStatus).toBe(402);
      await service.app.ratingLoop.runOnce();
      // The whole cent of the 3 reads (0.015) is settled into the ledger; the half cent left is subtracted.
      expect(await wallet(id)).toMatchObject({ balance: '0.09', available: '0.085' });
      expect((await ledger(id)).map((entry) => [entry.kind, entry.amount])).toEqual([['top_up', '5.10'], ['setup_fee', '-5.00'], ['usage', '-0.01']]);
      expect((await envoy.check({ method: 'GET', path: '/api/v1/pets', key })).allowed).toBe(true);
    } finally {
      redis.disconnect();
    }
  });
});

interface Entry {
  kind: string;
  amount: string;
  balanceAfter: string;
  subscriptionId: string | null;
  periodStart: string | null;
}

describe('a wallet is spent only where its mirror lives', () => {
  it('denies (503) a prepaid call while the shared counter store is down, even in the local failure mode', async () => {
    const clock = new ManualClock(at('2026-11-01T00:00:00Z'));
    const down = Object.assign(new MemoryCounterStore(clock), {
      consume: async () => {
        throw new CounterStoreUnavailable(new Error('connection refused'));
      },
    });
    const store = new ResilientCounterStore(down, 'local', new MemoryCounterStore(clock), silentLogger);
    const now = clock.now();
    const walletLimit = { kind: 'wallet', name: 'w:USD', cost: 500_000, spentName: 'ws:s', periodStart: now, periodEnd: now + minutes(60) } as const;
    expect(await store.consumeOrDegrade({ scope: 'c', now, limits: [walletLimit] })).toEqual({ degraded: 'closed' });
    const rateLimit = { kind: 'sliding', name: 'rl', limit: 10, windowMs: minutes(1), cost: 1 } as const;
    expect(await store.consumeOrDegrade({ scope: 'c', now, limits: [rateLimit] })).toMatchObject({ allowed: true });
    await store.close();
  });
});

