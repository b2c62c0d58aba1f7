import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { version } from '../src/kernel/index.js';
import { AccessLogClient, httpEntry } from './support/access-log.js';
import { FakeEnvoy } from './support/envoy.js';
import { promtool } from './support/promtool.js';
import { adminToken, startTestApp, type TestApp } from './support/services.js';

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: { name: string; query?: { query: string } }[] };
}

const readDashboard = () => JSON.parse(readFileSync('deploy/grafana/tollgate.json', 'utf8')) as Dashboard;

/** Counters whose label values are open-ended (Stripe's event types and error codes): no series until they occur. */
const countersWithOpenLabels = ['tollgate_stripe_webhook_events_total', 'tollgate_stripe_meter_errors_total'];

/** Every panel of the Grafana dashboard must query metrics the service really exports. */
describe('metrics and dashboard', () => {
  let service: TestApp;
  let exposition: string;
  let operational: string;
  let businessExposition: string;
  /** The first scrape, before any Check or access log. */
  let atStart: string;

  beforeAll(async () => {
    service = await startTestApp({ mode: 'production', env: { TOLLGATE_BUILD_COMMIT: '0123abcd' } });
    atStart = await (await fetch(`${service.httpUrl}/metrics`)).text();
    const envoy = new FakeEnvoy(service.grpcAddress);
    await service.admin('POST', '/v1/customers', { id: 'observed', name: 'Observed' });
    const { body } = await service.admin('POST', '/v1/keys', { customer: 'observed', plan: 'free' });
    await service.app.identities.refresh();
    for (let i = 0; i < 12; i++) await envoy.check({ method: 'GET', path: '/api/v1/pets', key: body.key });
    await envoy.check({ method: 'GET', path: '/api/v1/pets' });
    envoy.close();
    // Access logs of a denied call and of one claiming an allow without the Check's signature: stored, not billed.
    const accessLogs = new AccessLogClient(service.grpcAddress);
    const stream = accessLogs.open();
    await stream.send([
      httpEntry({ requestId: 'denied-1', status: 429, authz: { decision: 'deny', reason: 'rate_limited', plan_id: 'free' } }),
      httpEntry({ requestId: 'forged-1', authz: { decision: 'allow', customer_id: 'observed', subscription_id: 'forged', plan_id: 'free', weight: 1 } }),
    ]);
    await stream.end();
    accessLogs.close();
    // What Prometheus scrapes: the public operational metrics and, with the token, the business ones.
    const business = await fetch(`${service.httpUrl}/metrics/business`, { headers: { authorization: `Bearer ${adminToken}` } });
    operational = await (await fetch(`${service.httpUrl}/metrics`)).text();
    businessExposition = await business.text();
    exposition = operational + businessExposition;
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
    expect(exposition).toMatch(/tollgate_quota_store_duration_seconds_count\{store="redis"\} 12/);
  });

  it('counts access-log entries stored but not billed, by reason, and the streams open and ended', () => {
    expect(exposition).toMatch(/^tollgate_usage_events_not_billable_total\{reason="denied"\} 1$/m);
    expect(exposition).toMatch(/^tollgate_usage_events_not_billable_total\{reason="unsigned"\} 1$/m);
    expect(exposition).toMatch(/^tollgate_usage_events_not_billable_total\{reason="bad_signature"\} 0$/m);
    expect(exposition).toMatch(/^tollgate_als_streams_open 0$/m);
    expect(exposition).toMatch(/^tollgate_als_streams_ended_total\{outcome="closed"\} 1$/m);
  });

  it('says which version, commit, Node.js and role run, as tollgate_build_info 1', () => {
    const line = `tollgate_build_info{version="${version}",node_version="${process.version}",commit="0123abcd",role="all"} 1`;
    expect(atStart.split('\n')).toContain(line);
  });

  it('has a series for every known label value of the labelled counters before their first event', () => {
    const labelsOf = labelNamesByMetric();
    const counters = [...atStart.matchAll(/^# TYPE (\S+) counter$/gm)].map(([, name]) => name!);
    const labelled = counters.filter((name) => (labelsOf.get(name)?.size ?? 0) > 0 && !countersWithOpenLabels.includes(name));
    expect(labelled.length).toBeGreaterThan(10);
    for (const name of labelled) expect(atStart, name).toMatch(new RegExp(`^${name}\\{[^}]+\\} 0$`, 'm'));
    // The ones alerts watch, by name.
    for (const series of [
      'tollgate_quota_store_failures_total{mode="closed"} 0',
      'tollgate_alert_deliveries_total{result="dead"} 0',
      'tollgate_stripe_sync_attempts_total{kind="invoice.finalized",result="dead"} 0',
      'tollgate_usage_flush_failures_total{outcome="rejected"} 0',
      'tollgate_check_decisions_total{result="deny",reason="internal_error",plan=""} 0',
      'tollgate_check_decisions_total{result="deny",reason="limits_unavailable",plan="enterprise"} 0',
      'tollgate_check_decisions_total{result="allow",reason="",plan="metered"} 0',
    ]) {
      expect(atStart.split('\n')).toContain(series);
    }
  });

  it('passes promtool check metrics on a real scrape', () => {
    // promtool reads the exposition on standard input and exits non-zero naming each problem it finds.
    expect(promtool(['check', 'metrics'], operational)).toBe('');
    expect(promtool(['check', 'metrics'], businessExposition)).toBe('');
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
    const dashboard = readDashboard();
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

  it('filters every dashboard query by the job and namespace variables', () => {
    const dashboard = readDashboard();
    const variables = new Map(dashboard.templating.list.map((variable) => [variable.name, variable]));
    expect(variables.get('job')?.query?.query).toBe('label_values(tollgate_build_info, job)');
    expect(variables.get('namespace')?.query?.query).toBe('label_values(tollgate_build_info{job=~"$job"}, namespace)');
    const selectors = dashboard.panels.flatMap((panel) =>
      (panel.targets ?? []).flatMap(({ expr }) => [...expr.matchAll(/\btollgate_[a-z0-9_]+(\{[^}]*\})?/g)].map(([selector]) => ({ panel: panel.title, selector }))),
    );
    expect(selectors.length).toBeGreaterThan(40);
    const unfiltered = selectors.filter(({ selector }) => !selector.includes('job=~"$job"') || !selector.includes('namespace=~"$namespace"'));
    expect(unfiltered).toEqual([]);
  });

  it('has panels for the open access-log streams and the rejected and unbilled usage events', () => {
    const queries = readDashboard().panels.flatMap((panel) => (panel.targets ?? []).map(({ expr }) => expr));
    for (const metric of ['tollgate_als_streams_open', 'tollgate_usage_events_rejected_total', 'tollgate_usage_events_not_billable_total']) {
      expect(queries.some((expr) => expr.includes(metric)), metric).toBe(true);
    }
  });

  it('groups dashboard queries only by labels the metrics carry', () => {
    const dashboard = readDashboard();
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
