import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessLogClient, httpEntry, type EntryFacts } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { startTestApp, type TestApp } from './support/services.js';

/**
 * Issue 20: usage follows the Check, not what a client or an access-log writer can set. Checks through ext_authz,
 * their access-log entries through ALS (as Envoy chains them, or altered), on PGlite and on PostgreSQL + Redis.
 */
describe.each(['embedded', 'production'] as const)('server-issued usage identity (%s)', (mode) => {
  let service: TestApp;
  let envoy: FakeEnvoy;
  let als: AccessLogClient;
  let suffix = 0;

  beforeAll(async () => {
    service = await startTestApp({ mode });
    envoy = new FakeEnvoy(service.grpcAddress);
    als = new AccessLogClient(service.grpcAddress);
  });
  afterAll(async () => {
    als?.close();
    envoy?.close();
    await service?.close();
  });

  async function newCustomer(): Promise<{ customerId: string; key: string; startedAt: number }> {
    const customerId = `usage-${mode}-${++suffix}`;
    await service.admin('POST', '/v1/customers', { id: customerId, name: customerId });
    const { body } = await service.admin('POST', '/v1/keys', { customer: customerId, plan: 'pro' });
    await service.app.identities.refresh();
    const [subscription] = (await service.admin('GET', `/v1/customers/${customerId}/subscriptions`)).body.data as { startedAt: string }[];
    return { customerId, key: body.key, startedAt: Date.parse(subscription!.startedAt) };
  }

  async function log(entries: EntryFacts[]): Promise<void> {
    const stream = als.open();
    await stream.send(entries.map(httpEntry));
    expect(await stream.end()).toEqual({});
    await service.app.metering.meter.flush();
  }

  async function totals(customerId: string) {
    const { body } = await service.admin('GET', `/v1/customers/${customerId}/usage`);
    return body.subscriptions[0].totals as { calls: number; units: number; billableCalls: number; billableUnits: number };
  }

  it('bills every call of a client that sends the same x-request-id each time', async () => {
    const { customerId, key } = await newCustomer();
    const calls = [];
    for (let i = 0; i < 5; i++) calls.push(await envoy.check({ method: 'GET', path: '/api/v1/pets', key, headers: { 'x-request-id': 'always-the-same' } }));
    expect(calls.every((call) => call.allowed)).toBe(true);
    await log(calls.map((call) => ({ requestId: 'always-the-same', authz: call.metadata })));
    expect(await totals(customerId)).toMatchObject({ calls: 5, units: 5, billableCalls: 5, billableUnits: 5 });
    // Envoy logging one of those calls again (a retried stream) bills nothing more.
    await log([{ requestId: 'always-the-same', authz: calls[0]!.metadata }]);
    expect(await totals(customerId)).toMatchObject({ calls: 5, billableCalls: 5 });
  });

  it('records forged, altered and missing metadata as not billable, with the reason, and bills no one for it', async () => {
    const payer = await newCustomer();
    const victim = await newCustomer();
    const genuine = (await envoy.check({ method: 'GET', path: '/api/v1/pets', key: payer.key })).metadata;
    const victims = (await envoy.check({ method: 'GET', path: '/api/v1/pets', key: victim.key })).metadata;
    const requestId = `forgeries-${mode}`;
    await log([
      { requestId, authz: { ...genuine, weight: 100 } },
      { requestId, authz: { ...genuine, customer_id: victim.customerId, subscription_id: victims.subscription_id! } },
      { requestId, authz: { ...genuine, usage_id: 'invented', usage_sig: 'AAAAAAAAAAAAAAAAAAAAAA' } },
      { requestId, authz: Object.fromEntries(Object.entries(genuine).filter(([name]) => name !== 'usage_sig' && name !== 'usage_id')) },
      { requestId },
    ]);
    const events = await service.app.db.query<{ reason: string; billable: boolean; decision: string | null }>(
      'SELECT reason, billable, decision FROM usage_events WHERE request_id = $1 ORDER BY reason',
      [requestId],
    );
    expect(events).toEqual([
      { reason: 'bad_signature', billable: false, decision: null },
      { reason: 'bad_signature', billable: false, decision: null },
      { reason: 'bad_signature', billable: false, decision: null },
      { reason: 'no_authz_metadata', billable: false, decision: null },
      { reason: 'unsigned', billable: false, decision: null },
    ]);
    // Only the genuine entries count, each for its own customer.
    await log([{ requestId, authz: genuine }]);
    expect(await totals(payer.customerId)).toMatchObject({ calls: 1, units: 1, billableCalls: 1 });
    expect(await totals(victim.customerId)).toMatchObject({ calls: 0, units: 0, billableCalls: 0 });
  });

  it("counts a call whose log timestamp lies before its subscription's start in the period the Check decided on", async () => {
    const { customerId, key, startedAt } = await newCustomer();
    const calls = [];
    for (let i = 0; i < 3; i++) calls.push(await envoy.check({ method: 'GET', path: '/api/v1/pets', key }));
    // A proxy whose clock runs a little behind Tollgate's: by its clock these calls came before the subscription.
    await log(calls.map((call, i) => ({ requestId: `early-${i}`, authz: call.metadata, startMs: startedAt - 5 })));
    expect(await totals(customerId)).toMatchObject({ calls: 3, units: 3, billableCalls: 3 });
  });
});
