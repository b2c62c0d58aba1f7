// The alerting rules shipped for Prometheus (deploy/prometheus/rules.yml) and their promtool unit tests
// (rules.test.yml), checked with Debian's promtool; test/deploy.test.ts keeps the PrometheusRule equal to them.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { promtool } from './support/promtool.js';

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels: { severity: string };
  annotations: { summary: string; description: string };
}

const rulesFile = 'deploy/prometheus/rules.yml';
const rules = (parse(readFileSync(rulesFile, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((group) => group.rules);

describe('alerting rules', () => {
  it('pass promtool check rules', () => {
    expect(promtool(['check', 'rules', rulesFile])).toContain(`SUCCESS: ${rules.length} rules found`);
  });

  it('pass their promtool unit tests', () => {
    expect(promtool(['test', 'rules', 'deploy/prometheus/rules.test.yml'])).toContain('SUCCESS');
  });

  it('cover each condition that costs money, paging only for those hurting every call or billing now', () => {
    const severities = Object.fromEntries(rules.map((rule) => [rule.alert, rule.labels.severity]));
    expect(severities).toEqual({
      TollgateQuotaStoreDown: 'critical',
      TollgateCheckErrors: 'critical',
      TollgateCheckLatencyHigh: 'warning',
      TollgateAccessLogsMissing: 'critical',
      TollgateUsageIngestLagging: 'warning',
      TollgateUsageEventsRejected: 'warning',
      TollgateUsageUnsigned: 'warning',
      TollgateStripeDeadLetters: 'warning',
      TollgateAlertDeliveriesDead: 'warning',
      TollgateEventsLagging: 'warning',
      TollgateEventsDeadLettered: 'warning',
    });
  });

  it('keep the namespace and job of the replicas they aggregate, and say what happened', () => {
    for (const rule of rules) {
      // Every aggregation keeps the labels a Kubernetes scrape adds, so one alert names one deployment.
      for (const [, labels] of rule.expr.matchAll(/\b(?:sum|max|min) by \(([^)]*)\)/g)) {
        expect(labels!.split(',').map((label) => label.trim()), rule.alert).toEqual(expect.arrayContaining(['namespace', 'job']));
      }
      expect(rule.annotations.summary.length, rule.alert).toBeGreaterThan(20);
      expect(rule.annotations.description, rule.alert).toContain('{{ $labels.namespace }}/{{ $labels.job }}');
    }
  });

  it('query only metrics Tollgate exports', () => {
    const source = readFileSync('src/metrics/metrics.ts', 'utf8');
    for (const rule of rules) {
      for (const [metric] of rule.expr.matchAll(/\btollgate_[a-z0-9_]+/g)) {
        expect(source, `${rule.alert}: ${metric}`).toContain(`'${metric!.replace(/_bucket$/, '')}'`);
      }
    }
  });
});
