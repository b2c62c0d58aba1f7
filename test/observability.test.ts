import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeEnvoy } from './support/envoy.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

/** Every panel of the Grafana dashboard must query metrics the service really exports. */
describe('metrics and dashboard', () => {
  let service: TestApp;
  let exposition: string;

  beforeAll(async () => {
    service = await startTestApp({ mode: 'production' });
    const envoy = new FakeEnvoy(service.grpcAddress);
    await service.admin('POST', '/v1/customers', { id: 'observed', name: 'Observed' });
    const { body } = await service.admin('POST', '/v1/keys', { customer: 'observed', plan: 'free' });
    await service.app.identities.refresh();
    for (let i = 0; i < 12; i++) await envoy.check({ method: 'GET', path: '/api/v1/pets', key: body.key });
    await envoy.check({ method: 'GET', path: '/api/v1/pets' });
    envoy.close();
    // What Prometheus scrapes: the public operational metrics and, with the token, the business ones.
    const business = await fetch(`${service.httpUrl}/metrics/business`, { headers: { authorization: `Bearer ${adminToken}` } });
    exposition = (await (await fetch(`${service.httpUrl}/metrics`)).text()) + (await business.text());
  });
  afterAll(async () => {
    await service?.close();
  });

  const exported = () => {
    const names = new Set<string>();
    for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(name!);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
      if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(`${name}${suffix}`);
    }
    return names;
  };

  /** Label names each metric declares, read from the registry (series with no samples yet still declare them). */
  const labelNamesByMetric = () =>
    new Map(
      [...service.app.metrics.registry.getMetricsAsArray(), ...service.app.metrics.businessRegistry.getMetricsAsArray()].map((metric) => [metric.name, new Set((metric as unknown as { labelNames: string[] }).labelNames ?? [])]),
    );

  it('counts Check decisions by result, reason and plan after traffic', () => {
    expect(exposition).toMatch(/tollgate_check_decisions_total\{result="allow",reason="",plan="free"\} 10/);
    expect(exposition).toMatch(/tollgate_check_decisions_total\{result="deny",reason="rate_limited",plan="free"\} 2/);
    expect(exposition).toMatch(/tollgate_check_decisions_total\{result="deny",reason="missing_key",plan=""\} 1/);
    expect(exposition).toMatch(/tollgate_check_duration_seconds_count 13/);
    expect(exposition).toMatch(/tollgate_db_query_duration_seconds_count [1-9]/);
    expect(exposition).toMatch(/tollgate_active_subscriptions\{plan="free"\} 1/);
    // 12 keyed Checks reached Redis; the 13th had no key.
    expect(exposition).toMatch(/tollgate_counter_store_duration_seconds_count\{store="redis"\} 12/);
  });

  it('follows Prometheus naming conventions and keeps labels bounded', () => {
    for (const [, name, type] of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      expect(name).toMatch(/^tollgate_[a-z0-9_]+$/);
      if (type === 'counter') expect(name).toMatch(/_total$/);
      if (type === 'histogram') expect(name).toMatch(/_(seconds|bytes|entries|units)$/);
    }
    expect(exposition).not.toContain('observed');
    expect(exposition).not.toMatch(/key_[0-9A-Za-z]{10}/);
  });

  it('has a dashboard whose every query names exported metrics', () => {
    const dashboard = JSON.parse(readFileSync('deploy/grafana/tollgate.json', 'utf8')) as { panels: Panel[]; uid: string };
    expect(dashboard.uid).toBe('tollgate');
    const names = exported();
    const queried = dashboard.panels.filter((panel) => panel.type !== 'row').flatMap((panel) => {
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      return panel.targets!.flatMap((target) => [...target.expr.matchAll(/\btollgate_[a-z0-9_]+/g)].map(([metric]) => ({ panel: panel.title, metric: metric! })));
    });
    expect(queried.length).toBeGreaterThan(20);
    const missing = queried.filter(({ metric }) => !names.has(metric));
    expect(missing).toEqual([]);
  });

  it('groups dashboard queries only by labels the metrics carry', () => {
    const dashboard = JSON.parse(readFileSync('deploy/grafana/tollgate.json', 'utf8')) as { panels: Panel[] };
    const labelsOf = labelNamesByMetric();
    for (const panel of dashboard.panels) {
      for (const { expr } of panel.targets ?? []) {
        const metrics = [...expr.matchAll(/\btollgate_[a-z0-9_]+/g)].map(([metric]) => metric!.replace(/_(bucket|sum|count)$/, ''));
        const grouping = [...expr.matchAll(/by \(([^)]*)\)/g)].flatMap(([, list]) => list!.split(',').map((label) => label.trim()));
        for (const label of grouping.filter((l) => l !== 'le' && l !== 'instance')) {
          expect(metrics.some((metric) => labelsOf.get(metric)?.has(label)), `${panel.title}: ${label} in ${expr}`).toBe(true);
        }
      }
    }
  });
});
