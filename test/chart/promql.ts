import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHART_DIR } from './helm.js';

// Finds the metric names a PromQL expression reads, and the names a /metrics page exports, so the dashboard and the
// alert rules can be checked against what the processes really serve.

const KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'and', 'or', 'unless', 'inf', 'nan',
]);

/** Metric names used in a PromQL expression (or a Grafana `label_values(metric, label)` query). */
export function metricNamesIn(expression: string): Set<string> {
  const names = new Set<string>();
  // Grafana's label_values(metric{...}, label): only the first argument is a metric.
  const labelValues = /^\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*[{,]/.exec(expression);
  if (labelValues) return new Set([labelValues[1]!]);
  const stripped = expression
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings: label values, regexes
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range and subquery durations
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\$\{?\w+\}?/g, ' '); // Grafana variables such as $__rate_interval
  for (const match of stripped.matchAll(/[a-zA-Z_:][\w:]*/g)) {
    const word = match[0];
    const after = stripped.slice(match.index + word.length).trimStart();
    if (after.startsWith('(')) continue; // a function or aggregation
    if (KEYWORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word)) continue;
    names.add(word);
  }
  return names;
}

/**
 * The series names a Prometheus text page offers, from its `# TYPE` lines, so a metric counts even before its first
 * observation: a histogram `x` offers `x_bucket`, `x_sum` and `x_count`.
 */
export function exportedNames(page: string): Set<string> {
  const names = new Set<string>();
  for (const match of page.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = match as unknown as [string, string, string];
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

export interface DashboardTarget { expr?: string; format?: string; instant?: boolean }
export interface DashboardPanel {
  type: string;
  title?: string;
  targets?: DashboardTarget[];
  panels?: DashboardPanel[];
  fieldConfig?: { defaults?: { unit?: string }; overrides?: unknown[] };
}
export interface Dashboard { panels: DashboardPanel[]; templating: { list: { name: string; query?: string | { query?: string } }[] } }

export function readDashboard(): Dashboard {
  return JSON.parse(readFileSync(join(CHART_DIR, 'dashboards/nosana-secrets.json'), 'utf8')) as Dashboard;
}

/** Every panel, nested rows included. */
export function dashboardPanels(dashboard: Dashboard = readDashboard()): DashboardPanel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...dashboardPanels({ ...dashboard, panels: panel.panels ?? [] })]);
}

/** Every expression of the dashboard (panels, nested rows, template variables), with where it is. */
export function dashboardExpressions(dashboard: Dashboard = readDashboard()): { where: string; expr: string }[] {
  const found: { where: string; expr: string }[] = [];
  for (const panel of dashboardPanels(dashboard)) {
    for (const target of panel.targets ?? []) if (target.expr) found.push({ where: `panel "${panel.title}"`, expr: target.expr });
  }
  for (const variable of dashboard.templating.list) {
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    if (query?.includes('(')) found.push({ where: `template variable ${variable.name}`, expr: query });
  }
  return found;
}
