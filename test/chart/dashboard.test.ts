// The Grafana dashboard: every expression parses as PromQL (Prometheus's own promtool says so), every panel's unit
// fits what its metrics measure, the job and pod filters reach every panel, and the panel on call needs is there.
import { describe, expect, it } from 'vitest';
import { promtool, writeRuleFile } from './promtool.js';
import { dashboardExpressions, dashboardPanels, metricNamesIn, readDashboard } from './promql.js';

/** Grafana's variables, replaced as Grafana would before it sends a query. */
function substituteVariables(expr: string): string {
  return expr.replaceAll('$__rate_interval', '2m').replaceAll('$__interval', '30s').replace(/\$\{?(namespace|job|pod)\}?/g, '.*');
}

/** label_values(selector, label) asks Prometheus for the series of the selector: that selector is the PromQL. */
function promqlOf(expr: string): string {
  const labelValues = /^\s*label_values\((.*),\s*[a-zA-Z_]\w*\s*\)\s*$/s.exec(expr);
  return substituteVariables(labelValues ? labelValues[1]! : expr);
}

type Measure = 'seconds' | 'ratio' | 'per second' | 'bytes' | 'up or down' | 'count';

/**
 * What an expression measures, from the type its metric names say by Prometheus's naming rules (a counter ends in
 * _total or is a histogram's _count, a histogram's series end in _bucket, units are suffixes) and what is done to it.
 */
function measureOf(expr: string): Measure {
  const names = [...metricNamesIn(expr)];
  if (/histogram_quantile\(/.test(expr) && names.every((n) => /_(seconds|sec)_bucket$/.test(n))) return 'seconds';
  const counters = names.every((n) => /_(total|count)$/.test(n));
  if (counters && /\brate\(/.test(expr)) {
    // seconds per second (CPU), or one rate divided by another: a fraction.
    if (names.every((n) => n.endsWith('_seconds_total')) || /\)\s*\/\s*sum\(/.test(expr)) return 'ratio';
    return 'per second';
  }
  if (names.every((n) => n.endsWith('_bytes'))) return 'bytes';
  if (names.every((n) => n.endsWith('_up'))) return 'up or down';
  return 'count';
}

/** Grafana units that show each measure truthfully. */
const UNITS: Record<Measure, string[]> = {
  seconds: ['s', 'ms'],
  ratio: ['percentunit'],
  'per second': ['ops', 'reqps', 'rps', 'cps'],
  bytes: ['bytes', 'decbytes'],
  'up or down': ['bool', 'bool_on_off'],
  count: ['short', 'none'],
};

describe('the Grafana dashboard', () => {
  it('has expressions that Prometheus parses (promtool check rules), template variables included', async () => {
    const expressions = dashboardExpressions();
    expect(expressions.length).toBeGreaterThan(25);
    const file = writeRuleFile([{
      name: 'dashboard',
      rules: expressions.map(({ expr }, i) => ({ record: `dashboard:expression_${i}`, expr: promqlOf(expr) })),
    }]);
    const check = await promtool(['check', 'rules', file]);
    expect(check.code, `${check.output}\n${expressions.map((e, i) => `expression_${i}: ${e.where}`).join('\n')}`).toBe(0);
    expect(check.output).toContain(`SUCCESS: ${expressions.length} rules found`);
  });

  it('would refuse an expression that does not parse, so the check above can fail', async () => {
    const check = await promtool(['check', 'rules', writeRuleFile([{ name: 'broken', rules: [{ record: 'x', expr: 'sum(rate(a[5m])' }] }])]);
    expect(check.code).not.toBe(0);
    expect(check.output).toMatch(/unclosed left parenthesis|parse error/);
  });

  it('gives every panel one unit that fits what all its queries measure', () => {
    const wrong: string[] = [];
    for (const panel of dashboardPanels()) {
      const targets = (panel.targets ?? []).filter((t) => t.expr && metricNamesIn(t.expr).size > 0 && !t.expr.includes('ALERTS'));
      if (targets.length === 0) continue;
      const measures = new Set(targets.map((t) => measureOf(t.expr!)));
      const unit = panel.fieldConfig?.defaults?.unit;
      if (measures.size > 1) wrong.push(`"${panel.title}" mixes ${[...measures].join(' and ')} under one unit`);
      for (const measure of measures) {
        if (!unit || !UNITS[measure].includes(unit)) wrong.push(`"${panel.title}" shows ${measure} with unit ${unit ?? '(none)'}; use ${UNITS[measure].join(' or ')}`);
      }
    }
    expect(wrong).toEqual([]);
    // The classification itself: the two mistakes of 0.1.0 are caught.
    expect(measureOf('min by (backend) (nosana_secrets_storage_up{namespace=~"$namespace"})')).toBe('up or down');
    expect(measureOf('max(nosana_secrets_operator_queue_depth)')).not.toBe(measureOf('histogram_quantile(0.99, sum by (le) (rate(nosana_secrets_operator_reconcile_duration_seconds_bucket[5m])))'));
  });

  it('filters every panel of this release\'s processes by the namespace, job and pod variables', () => {
    const variables = readDashboard().templating.list.map((v) => v.name);
    expect(variables).toEqual(expect.arrayContaining(['namespace', 'job', 'pod']));
    const unfiltered = dashboardExpressions()
      .filter(({ where, expr }) => where.startsWith('panel') && expr.includes('nosana_secrets_'))
      .filter(({ expr }) => [...expr.matchAll(/nosana_secrets_\w+(\{[^}]*\})?/g)].some((m) => !['$namespace', '$job', '$pod'].every((v) => (m[1] ?? '').includes(v))))
      .map(({ where, expr }) => `${where}: ${expr}`);
    expect(unfiltered).toEqual([]);
  });

  it('lists the bindings that are not Ready with their reason, and shows the CSI driver and Nosana RPC', () => {
    const panels = dashboardPanels();
    const table = panels.find((p) => p.type === 'table' && p.targets?.some((t) => t.expr?.includes('nosana_secrets_operator_binding_condition')));
    expect(table?.targets?.[0]).toMatchObject({ format: 'table', instant: true });
    expect(table?.targets?.[0]?.expr).toMatch(/by \(binding_namespace, binding, status, reason\).*status!="True"/);
    const names = new Set(panels.flatMap((p) => (p.targets ?? []).flatMap((t) => [...metricNamesIn(t.expr ?? '')])));
    expect([...names]).toEqual(expect.arrayContaining([
      'node_publish_error_total', 'node_publish_total', 'nosana_secrets_nosana_request_duration_seconds_bucket',
    ]));
  });
});
