import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/kernel/clock.js';
import { silentLogger } from '../src/kernel/logger.js';
import { cachedBusinessMetrics } from '../src/reports/business-gauges.js';
import { SqlBusinessRecords } from '../src/reports/sql-records.js';
import type { Db } from '../src/store/db.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { jsonOf, runCli } from './support/cli.js';
import { FakeEnvoy } from './support/envoy.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

const at = (iso: string) => Date.parse(iso);

/**
 * Issue #8: business metrics from the records, on fixtures placed in time with the clock. November 2026 is the
 * period under test; customers a…g exist before it, h…l are created in it. First calls go through the real
 * Check and access-log path.
 */
const metricsToken = 'business-metrics-token-0123456789';

describe('business metrics', () => {
  const clock = new ManualClock(at('2026-10-01T00:00:00Z'));
  let service: TestApp;
  let envoy: FakeEnvoy;
  let als: AccessLogClient;

  beforeAll(async () => {
    service = await startTestApp({ mode: 'embedded', clock, env: { TOLLGATE_METRICS_TOKEN: metricsToken } });
    await service.app.ratingLoop.stop();
    envoy = new FakeEnvoy(service.grpcAddress);
    als = new AccessLogClient(service.grpcAddress);
    await buildFixtures();
  });
  afterAll(async () => {
    als?.close();
    envoy?.close();
    await service?.close();
  });

  const admin = async (method: string, path: string, body?: unknown) => {
    const response = await service.admin(method, path, body);
    expect(response.status, `${method} ${path}: ${JSON.stringify(response.body)}`).toBeLessThan(300);
    return response.body;
  };
  const customer = (id: string, when: string) => {
    clock.set(at(when));
    return admin('POST', '/v1/customers', { id, name: id });
  };
  const subscribe = async (customerId: string, plan: string, when: string): Promise<string> => {
    clock.set(at(when));
    return (await admin('POST', `/v1/customers/${customerId}/subscriptions`, { plan })).id;
  };
  const changePlan = (subscriptionId: string, plan: string, when: string) => {
    clock.set(at(when));
    return admin('POST', `/v1/subscriptions/${subscriptionId}/change-plan`, { plan });
  };
  const cancel = (subscriptionId: string, when: string) => {
    clock.set(at(when));
    return admin('POST', `/v1/subscriptions/${subscriptionId}/cancel`);
  };
  /** One allowed call through the Check and the access log, at `when`. */
  const call = async (customerId: string, when: string) => {
    clock.set(at(when));
    const { key } = await admin('POST', '/v1/keys', { customer: customerId, subscription: (await admin('GET', `/v1/customers/${customerId}/subscriptions`)).data[0].id });
    await service.app.identities.refresh();
    const outcome = await envoy.check({ method: 'GET', path: '/api/v1/pets', key });
    expect(outcome.allowed).toBe(true);
    const stream = als.open();
    await stream.send([httpEntry({ requestId: outcome.requestHeaders['x-request-id']!, authz: outcome.metadata, startMs: clock.now() })]);
    expect(await stream.end()).toEqual({});
  };

  async function buildFixtures() {
    // Before November: six paying customers (a: pro, b: enterprise, c: pro, d: hybrid, e: free then pro, g:
    // metered, which pays for usage only) and f, who stays free.
    for (const id of ['a', 'b', 'c', 'd', 'e', 'g']) await customer(id, '2026-10-01T00:00:00Z');
    await customer('f', '2026-10-05T00:00:00Z');
    const a = await subscribe('a', 'pro', '2026-10-01T00:00:00Z');
    const b = await subscribe('b', 'enterprise', '2026-10-01T00:00:00Z');
    const c = await subscribe('c', 'pro', '2026-10-01T00:00:00Z');
    const d = await subscribe('d', 'hybrid', '2026-10-01T00:00:00Z');
    const e = await subscribe('e', 'free', '2026-10-01T00:00:00Z');
    await subscribe('g', 'metered', '2026-10-01T00:00:00Z');
    await subscribe('f', 'free', '2026-10-05T00:00:00Z');
    await changePlan(e, 'pro', '2026-10-15T00:00:00Z');
    await call('a', '2026-10-02T00:00:00Z');

    // November: b contracts, c cancels, d downgrades to free, a expands.
    await changePlan(b, 'pro', '2026-11-10T00:00:00Z');
    await cancel(c, '2026-11-15T00:00:00Z');
    await changePlan(d, 'free', '2026-11-20T00:00:00Z');
    await changePlan(a, 'enterprise', '2026-11-20T00:00:00Z');

    // New in November: h (free, first call after 1 h, then pro), i (pro, first call after 2 h), j (free, first
    // call after 2 days), k (no subscription) and l (free, no call).
    await customer('h', '2026-11-02T00:00:00Z');
    const h = await subscribe('h', 'free', '2026-11-02T00:00:00Z');
    await call('h', '2026-11-02T01:00:00Z');
    await changePlan(h, 'pro', '2026-11-12T00:00:00Z');
    await customer('i', '2026-11-03T00:00:00Z');
    await subscribe('i', 'pro', '2026-11-03T00:00:00Z');
    await call('i', '2026-11-03T02:00:00Z');
    await customer('j', '2026-11-04T00:00:00Z');
    await subscribe('j', 'free', '2026-11-04T00:00:00Z');
    await call('j', '2026-11-06T00:00:00Z');
    await customer('k', '2026-11-05T00:00:00Z');
    await customer('l', '2026-11-06T00:00:00Z');
    await subscribe('l', 'free', '2026-11-06T00:00:00Z');
    await service.app.metering.meter.flush();
    clock.set(at('2026-12-01T00:10:00Z'));
  }

  const november = {
    period: '2026-11',
    from: '2026-11-01T00:00:00.000Z',
    end: '2026-12-01T00:00:00.000Z',
    complete: true,
    // a enterprise; b, e, h, i pro.
    mrr: [
      {
        currency: 'USD',
        mrr: '695.00',
        byPlan: [
          { planId: 'enterprise', subscriptions: 1, mrr: '499.00' },
          { planId: 'pro', subscriptions: 4, mrr: '196.00' },
        ],
      },
    ],
    // a, b, e, g, h, i.
    payingCustomers: 6,
    // c canceled and d went free, of a, b, c, d, e, g.
    churn: { payingAtStart: 6, churned: 2, rate: 2 / 6 },
    // e, f, h, j, l started free (d started on hybrid; k never subscribed); e converted in October, h in November.
    freeToPaid: { startedFree: 5, converted: 2, convertedInPeriod: 1, rate: 0.4 },
    // h, i, j of h, i, j, k, l; waits of 1 h, 2 h and 2 days (a's October call is not November's).
    activation: { newCustomers: 5, activated: 3, rate: 0.6, timeToFirstCall: { medianSeconds: 7_200, p90Seconds: 172_800 } },
    // a, b, c, d, e paid 49 + 499 + 49 + 49 + 49 at the start; now a 499, b 49, e 49.
    netRevenueRetention: [{ currency: 'USD', startingMrr: '695.00', retainedMrr: '597.00', rate: 597 / 695 }],
  };

  it('computes each metric of a past month exactly, on the admin API', async () => {
    expect(await admin('GET', '/v1/reports/business?period=2026-11')).toEqual(november);
  });

  it('reads a month from its records alone, whenever asked: October, before November happened', async () => {
    expect(await admin('GET', '/v1/reports/business?period=2026-10')).toMatchObject({
      complete: true,
      // a, b, c, d and e (pro since October 15).
      mrr: [{ currency: 'USD', mrr: '695.00' }],
      payingCustomers: 6,
      // States are read at the month's first instant, when a, b, c, d and g had just subscribed.
      churn: { payingAtStart: 5, churned: 0, rate: 0 },
      freeToPaid: { startedFree: 2, converted: 1, convertedInPeriod: 1, rate: 0.5 },
      activation: { newCustomers: 7, activated: 1, timeToFirstCall: { medianSeconds: 86_400, p90Seconds: 86_400 } },
      netRevenueRetention: [{ currency: 'USD', startingMrr: '646.00', retainedMrr: '646.00', rate: 1 }],
    });
  });

  it('defaults to the running month, read up to now, with MRR equal to the MRR report', async () => {
    const december = await admin('GET', '/v1/reports/business');
    expect(december).toMatchObject({ period: '2026-12', end: '2026-12-01T00:10:00.000Z', complete: false, payingCustomers: 6 });
    const mrrReport = await admin('GET', '/v1/reports/mrr');
    expect(december.mrr.map(({ currency, mrr }: { currency: string; mrr: string }) => ({ currency, mrr }))).toEqual(
      mrrReport.totals.map(({ currency, mrr }: { currency: string; mrr: string }) => ({ currency, mrr })),
    );
  });

  it('refuses a malformed period', async () => {
    const response = await service.admin('GET', '/v1/reports/business?period=2026-13');
    expect(response.status).toBe(400);
    expect(response.body.error).toMatchObject({ code: 'invalid_request', field: 'period' });
  });

  it('keeps revenue figures off the public /metrics: /metrics/business takes the admin or the metrics token', async () => {
    const operational = await (await fetch(`${service.httpUrl}/metrics`)).text();
    expect(operational).toContain('tollgate_check_decisions_total');
    expect(operational).not.toContain('tollgate_business_');
    const business = (token?: string) => fetch(`${service.httpUrl}/metrics/business`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    expect((await business()).status).toBe(401);
    expect((await business('not-the-metrics-token-0123456789')).status).toBe(401);
    for (const token of [metricsToken, adminToken]) {
      const response = await business(token);
      expect(response.status).toBe(200);
      const exposition = await response.text();
      expect(exposition).toContain('tollgate_business_mrr_minor_units');
      expect(exposition).not.toContain('tollgate_check_decisions_total');
    }
  });

  it('exports the trailing 30 days as Prometheus gauges labelled by currency and plan only', async () => {
    // 30 days back from December 1, 00:10 holds the same changes and new customers as November.
    const exposition = await (await fetch(`${service.httpUrl}/metrics/business`, { headers: { authorization: `Bearer ${metricsToken}` } })).text();
    const value = (series: string) => {
      const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${series} `));
      expect(line, series).toBeDefined();
      return Number(line!.slice(series.length + 1));
    };
    expect(value('tollgate_business_mrr_minor_units{currency="USD",plan="enterprise"}')).toBe(49_900);
    expect(value('tollgate_business_mrr_minor_units{currency="USD",plan="pro"}')).toBe(19_600);
    expect(value('tollgate_business_paying_customers')).toBe(6);
    expect(value('tollgate_business_churn_ratio')).toBeCloseTo(2 / 6, 12);
    expect(value('tollgate_business_free_to_paid_ratio')).toBe(0.4);
    expect(value('tollgate_business_activation_ratio')).toBe(0.6);
    expect(value('tollgate_business_time_to_first_call_median_seconds')).toBe(7_200);
    expect(value('tollgate_business_time_to_first_call_p90_seconds')).toBe(172_800);
    expect(value('tollgate_business_net_revenue_retention_ratio{currency="USD"}')).toBeCloseTo(597 / 695, 12);
    expect(value('tollgate_business_metrics_computed_timestamp_seconds')).toBe(at('2026-12-01T00:10:00Z') / 1000);
  });

  it('computes the gauges once per scrape and max age, and keeps the last values while the database fails', async () => {
    let failing = false;
    let queries = 0;
    const db: Db = {
      kind: service.app.db.kind,
      query: (sql, params) => {
        queries += 1;
        return failing ? Promise.reject(new Error('connection refused')) : service.app.db.query(sql, params);
      },
      transaction: (fn) => service.app.db.transaction(fn),
      withAdvisoryLock: (lockId, fn) => service.app.db.withAdvisoryLock(lockId, fn),
      close: async () => {},
    };
    const deps = { records: new SqlBusinessRecords(db), catalog: () => service.app.catalog, clock, logger: silentLogger };
    const cached = cachedBusinessMetrics(deps, 60_000);
    const [first, second] = await Promise.all([cached(), cached()]);
    expect(second).toBe(first);
    const perComputation = queries;
    expect(await cached()).toBe(first);
    expect(queries).toBe(perComputation);

    const uncached = cachedBusinessMetrics(deps, 0);
    const computed = await uncached();
    expect(computed).toMatchObject({ payingCustomers: 6 });
    failing = true;
    expect(await uncached()).toBe(computed);
    expect(await cachedBusinessMetrics(deps, 0)()).toBeUndefined();
  });

  it('prints the report from the CLI', async () => {
    const printed = await runCli({ TOLLGATE_URL: service.httpUrl, TOLLGATE_ADMIN_TOKEN: adminToken }, 'report', 'business', '--period', '2026-11', '--json');
    expect(jsonOf(printed)).toEqual(november);
  });
});
